package session

import (
	"net/netip"
	"testing"
	"time"
)

func TestPenaltyDelays(t *testing.T) {
	p := &Penalty{Base: 2 * time.Second, Max: 15 * time.Second}
	for n, want := range map[int]time.Duration{0: 0, 1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 4: 15 * time.Second, 1000: 15 * time.Second} {
		if got := p.delay(n); got != want {
			t.Errorf("delay(%d) = %v, want %v", n, got, want)
		}
	}
	if got := (&Penalty{}).delay(5); got != 0 {
		t.Errorf("a zero Penalty delays %v", got)
	}
}

// TestPenaltyCounts: failures count per address and per account, a right
// password clears its address's count, and counts are forgotten after
// Forget.
func TestPenaltyCounts(t *testing.T) {
	var delays []time.Duration
	p := &Penalty{Base: time.Millisecond, Max: 8 * time.Millisecond, Forget: 50 * time.Millisecond,
		Penalized: func(d time.Duration) { delays = append(delays, d) }}
	a1, a2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	p.Attempt(a1, "alice@x").Failed()
	p.Attempt(a1, "bob@x").Failed()
	p.Attempt(a2, "alice@x").Failed() // alice's second failure, from another address
	p.Attempt(a1, "carol@x").Succeeded()
	p.Attempt(a1, "dave@x").Failed()  // a1 cleared: its first again
	time.Sleep(60 * time.Millisecond) // the point: past Forget
	p.Attempt(a2, "alice@x").Failed()
	want := []time.Duration{1, 2, 2, 1, 1}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if len(delays) != len(want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	for i := range want {
		if delays[i] != want[i] {
			t.Errorf("delays %v, want %v", delays, want)
			break
		}
	}
}
