package netwait

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestListening(t *testing.T) {
	p, err := FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	if err := Listening(context.Background(), addr, nil, 50*time.Millisecond); err == nil {
		t.Fatal("Listening on a free port: no error")
	}
	exited := make(chan struct{})
	close(exited)
	if err := Listening(context.Background(), addr, exited, time.Minute); !errors.Is(err, ErrExited) {
		t.Fatalf("an exited server: %v, want ErrExited", err)
	}
	go func() {
		time.Sleep(30 * time.Millisecond) // the server starts a little later
		l, err := net.Listen("tcp", addr)
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
	}()
	if err := Listening(context.Background(), addr, nil, time.Minute); err != nil {
		t.Fatalf("a server that starts: %v", err)
	}
}
