package smtp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestRelayFromTrustedPeerIsQueued(t *testing.T) {
	var mu sync.Mutex
	var queued []string
	fail := false
	ts := startServer(t, func(o *Options) {
		o.Relay = func(peer net.Addr, _ string) bool { return strings.HasPrefix(peer.String(), "127.0.0.1:") }
		o.Enqueue = func(from string, rcpts []string, r io.Reader) error {
			msg, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return errors.New("disk full")
			}
			queued = append(queued, from+"|"+strings.Join(rcpts, ",")+"|"+string(msg))
			return nil
		}
	})
	send := func() error {
		c, err := gosmtp.Dial(ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Hello("router.test")
		if err := c.Mail("bob@example.org", nil); err != nil {
			return err
		}
		for _, r := range []string{"friend@remote.test", "carol@example.org"} {
			if err := c.Rcpt(r, nil); err != nil {
				return err
			}
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprint(w, "Subject: out\r\n\r\nbye\r\n")
		return w.Close()
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	if len(queued) != 1 || !strings.HasPrefix(queued[0], "bob@example.org|friend@remote.test|Received: from router.test") || !strings.HasSuffix(queued[0], "Subject: out\r\n\r\nbye\r\n") {
		t.Fatalf("queued %q", queued)
	}
	if n := len(ts.inbox(t, "carol@example.org")); n != 1 {
		t.Fatalf("local recipient got %d", n)
	}
	// A queue failure is a temporary error for the whole transaction.
	fail = true
	if err := send(); code(err) != 451 {
		t.Fatalf("enqueue failure: %v", err)
	}
}
