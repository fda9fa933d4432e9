// Package lab builds a topology's hosts on one Linux machine, so that
// `mailfleet apply` can deploy to them exactly as to real hosts: a network
// namespace per node and router, a switch namespace with a bridge per
// network, a workstation namespace routed through the router, a power switch
// (PDU) per fence device, and per node a persistent mount namespace whose
// /etc, /var, /usr/local, /usr/sbin are overlays kept under the lab's state
// directory. lab/DESIGN.md is the contract.
//
// The lab never touches the machine's own network (no link, address or route
// in the root namespace) nor its files outside /var/lib/mailfleet/lab: every
// change of a node lands in its overlay upper directories. It runs the
// machine's tools (ip, unshare, nsenter, setsid, sshd) as child processes and
// must not import render, remote or the daemons.
package lab
