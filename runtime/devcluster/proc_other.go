//go:build !linux

package devcluster

import "syscall"

// childAttrs puts slapd in a process group of its own (a Ctrl-C in the
// terminal reaches the cluster, which stops slapd last, in order).
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
