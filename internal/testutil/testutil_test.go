package testutil

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("no")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Poll: %v after %d calls, want nil after 3", err, n)
	}
	want := errors.New("never")
	calls := 0
	if err := Poll(30*time.Millisecond, func() error { calls++; return want }); err != want || calls < 2 {
		t.Errorf("Poll of a condition that never holds: %v after %d calls, want the last error after 2 or more", err, calls)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t, "127.0.0.1")
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("the free port %d: %v", p, err)
	}
	l.Close()
}
