package devcluster

import "syscall"

// childAttrs puts slapd in a process group of its own (a Ctrl-C in the
// terminal reaches the cluster, which stops slapd last, in order) and has
// the kernel send it SIGTERM should this process die without stopping it.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
