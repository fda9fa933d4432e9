package store

import (
	"context"
	"testing"
	"time"
)

// Marking an account moving waits for the messages being written to it,
// and refuses the deliveries that come after.
func TestMarkMovingWaitsForDeliveries(t *testing.T) {
	in := &Instance{moving: map[string]bool{}, inflight: map[string]*deliveries{}}
	release, err := in.hold([]string{"bob@example.org", "carol@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	marked := make(chan error, 1)
	go func() { marked <- in.markMoving(context.Background(), "bob@example.org") }()
	select {
	case err := <-marked:
		t.Fatalf("marked moving while a delivery was being written: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	// Already marked: a new delivery is refused, another account's is not.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := in.hold([]string{"bob@example.org"}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob is not marked moving")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r2, err := in.hold([]string{"carol@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	release()
	release() // a second call is harmless
	if err := <-marked; err != nil {
		t.Fatal(err)
	}
	// carol still has a delivery under way: a mark with a short deadline
	// gives up, but stays.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := in.markMoving(ctx, "carol@example.org"); err == nil {
		t.Fatal("marked carol moving while a delivery was being written")
	}
	if in.refuse("carol@example.org") == nil {
		t.Fatal("carol is not marked moving")
	}
	r2()
	if err := in.markMoving(context.Background(), "carol@example.org"); err != nil {
		t.Fatal(err)
	}
	if len(in.inflight) != 0 {
		t.Fatalf("left over: %v", in.inflight)
	}
}
