// Package devcluster runs a complete small mailfleet site in one process on
// the loopback interface, for development (`mailfleetd dev -data DIR`): a
// real slapd (a child process, with a config generated under DIR), two
// store instances, two front-end nodes and the balancer, each role on its
// own 127.0.0.x address with free ports. It seeds one account per instance
// in the directory (the reference's entry shape), creates its mailbox on
// its instance, and writes DIR/topology/, the same cluster in the topology
// language, which `mailfleet validate` accepts.
//
// Everything it keeps lives under DIR: the throwaway secrets and account
// passwords (DIR/topology/secrets, mode 0600, made once and kept across restarts),
// the directory's database, the instances' mail, the logs and the ports of
// the last run, which a restart takes again when they are free.
//
// Like every runtime package it must not import spec, render or remote:
// the topology is written from a text template.
package devcluster
