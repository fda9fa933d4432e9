package session

import (
	"net/netip"
	"slices"
	"testing"
)

// TestPreAuthEvictsOldest: beyond PerClient, the client's own oldest
// connection is closed; beyond Max, the node's oldest; a connection that
// left (logged in) is never closed.
func TestPreAuthEvictsOldest(t *testing.T) {
	var closed []string
	var dropped []string
	p := &PreAuth{Max: 3, PerClient: 2, Dropped: func(l string) { dropped = append(dropped, l) }}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	enter := func(addr netip.Addr, name string) func() {
		return p.Enter(addr, func() { closed = append(closed, name) })
	}
	enter(a, "a1")
	leaveA2 := enter(a, "a2")
	leaveA2() // logged in
	enter(a, "a3")
	enter(a, "a4") // a has a1, a3: its oldest, a1, goes
	enter(b, "b1")
	enter(b, "b2") // the node holds a3, a4, b1: its oldest, a3, goes
	if want := []string{"a1", "a3"}; !slices.Equal(closed, want) {
		t.Errorf("closed %v, want %v", closed, want)
	}
	if want := []string{"client", "node"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped for %v, want %v", dropped, want)
	}
	if p.Len() != 3 {
		t.Errorf("%d held, want 3", p.Len())
	}
	var none *PreAuth
	none.Enter(a, func() { t.Error("a nil PreAuth closed a connection") })()
}
