// Package testutil holds the few helpers every package's tests share:
// waiting for a condition without asserting anything about time, and
// finding a free port. It is for tests (and test harnesses) only, and
// imports nothing of mailfleet.
package testutil

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

// Eventually calls f until it returns nil, backing off from 10 ms to
// 200 ms between calls, and fails the test with f's last error once
// within has passed. The bound only keeps a broken build from hanging:
// nothing is asserted about how long it took, so give a loaded machine
// room (a minute is a good default).
func Eventually(t testing.TB, within time.Duration, what string, f func() error) {
	t.Helper()
	EventuallyEvery(t, within, 0, what, f)
}

// EventuallyEvery is Eventually for a costly f (one that runs commands,
// say), called every interval instead of with the short back-off. It logs
// how long the wait took, which the tests of the lab report.
func EventuallyEvery(t testing.TB, within, interval time.Duration, what string, f func() error) {
	t.Helper()
	start := time.Now()
	if err := poll(within, interval, f); err != nil {
		t.Fatalf("%s: not after %s: %v", what, within, err)
	}
	if interval > 0 {
		t.Logf("%s: after %.1fs", what, time.Since(start).Seconds())
	}
}

// Until is Eventually for a condition that has no error to tell.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("the condition does not hold")

// Poll calls f until it returns nil (then Poll returns nil) or within
// passes (then Poll returns f's last error), backing off from 10 ms to
// 200 ms between calls.
func Poll(within time.Duration, f func() error) error {
	return poll(within, 0, f)
}

// poll is Poll with a fixed interval between calls (zero: the back-off).
func poll(within, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	pause, ceiling := 10*time.Millisecond, 200*time.Millisecond
	if interval > 0 {
		pause, ceiling = interval, interval
	}
	for {
		err := f()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(min(pause, time.Until(deadline)+time.Millisecond))
		pause = min(2*pause, ceiling)
	}
}

// FreePort is a TCP port of host that was free a moment ago.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("a free port of %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is host:port with a port of host that was free a moment ago.
func FreeAddr(t testing.TB, host string) string {
	t.Helper()
	return net.JoinHostPort(host, strconv.Itoa(FreePort(t, host)))
}

// Long marks a test that takes more than about two seconds here (it starts
// real daemons, clusters or labs): `go test -short` skips it, so that a
// developer's loop over the whole module stays under a minute. CI runs
// without -short.
func Long(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("a long test: run without -short")
	}
}
