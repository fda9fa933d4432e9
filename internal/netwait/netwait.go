// Package netwait waits for a freshly started server to accept
// connections, and finds free ports: what `mailfleetd dev`, the tests'
// slapd harness and the benchmarks each did with a loop of their own. It
// imports nothing of mailfleet.
package netwait

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ErrExited is Listening's error when the server's process ended first
// (its port was taken, say).
var ErrExited = errors.New("the server exited before it listened")

// Listening returns once addr accepts a TCP connection. It fails with
// ErrExited when exited (nil: never) is closed first, with ctx's error when
// ctx ends, and with an error naming addr when within has passed.
func Listening(ctx context.Context, addr string, exited <-chan struct{}, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-exited:
			return ErrExited
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreePort is a TCP port of ip that was free a moment ago.
func FreePort(ip netip.Addr) (int, error) {
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
