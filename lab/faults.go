package lab

import (
	"fmt"
	"syscall"
	"time"
)

// LinkDown cuts node's network cables at the switch (every network, or
// only network when it is not empty): the node keeps running and keeps its
// addresses, but no frame reaches it or leaves it, as when a cable or a
// switch port fails.
func (l *Lab) LinkDown(node, network string) error { return l.setLinks(node, network, "down") }

// LinkUp plugs node's cables back in.
func (l *Lab) LinkUp(node, network string) error { return l.setLinks(node, network, "up") }

func (l *Lab) setLinks(node, network, state string) error {
	h := l.Host(node)
	if h == nil || !h.Booted() {
		return fmt.Errorf("lab: no node or router %q", node)
	}
	n := 0
	at := time.Now()
	for _, ifc := range h.Ifaces {
		if network != "" && ifc.Network != network {
			continue
		}
		if err := run("ip", "-n", l.Switch, "link", "set", ifc.Veth, state); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("lab: %s has no link on network %q", node, network)
	}
	l.logf("%s: %d link(s) %s at %s", node, n, state, at.Format(time.RFC3339Nano))
	return nil
}

// Freeze stops every process of node (SIGSTOP), as a hung kernel or a
// machine stalled on its storage would: its sockets stay open and its
// addresses answer ARP, but nothing it runs moves. Processes the node
// starts later do not exist: nothing of it runs until Thaw.
func (l *Lab) Freeze(node string) error { return l.signalNode(node, syscall.SIGSTOP) }

// Thaw lets node's processes run again (SIGCONT).
func (l *Lab) Thaw(node string) error { return l.signalNode(node, syscall.SIGCONT) }

func (l *Lab) signalNode(node string, sig syscall.Signal) error {
	h := l.Host(node)
	if h == nil || !h.Booted() {
		return fmt.Errorf("lab: no node or router %q", node)
	}
	return l.withNodeLock(node, func() error {
		nets, mnts := l.nodeNamespaces(h)
		// Repeat until no new process appears: one may fork while the
		// others are being stopped.
		done := map[int]bool{}
		at := time.Now()
		for round := 0; round < 50; round++ {
			fresh := 0
			for _, pid := range pidsIn(nets, mnts) {
				if done[pid] {
					continue
				}
				if err := syscall.Kill(pid, sig); err == nil {
					done[pid] = true
					fresh++
				}
			}
			if fresh == 0 || sig == syscall.SIGCONT {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		l.logf("%s: %s (%d processes) at %s", node, map[syscall.Signal]string{syscall.SIGSTOP: "frozen", syscall.SIGCONT: "thawed"}[sig], len(done), at.Format(time.RFC3339Nano))
		return nil
	})
}
