package imap

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/proxy/proxytest"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

// TestIdleFlood: 3,000 idle connections from 10 addresses, none logging
// in (the flood that once filled the IMAP service until its 5-minute
// timeout), then a fresh client: it logs in, because the oldest idle
// connections were closed to make room; the node holds no more than its
// pre-login limit meanwhile.
func TestIdleFlood(t *testing.T) {
	testutil.Long(t)
	cl := storetest.NewCluster(t, nil)
	pre := &session.PreAuth{Max: 200, PerClient: 50}
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) {
		o.PreAuth = pre
		o.MaxConnections = 400
	})
	const conns, addrs = 3000, 10
	var mu sync.Mutex
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, addrs)
	for a := 0; a < addrs; a++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(20+a))}, Timeout: 10 * time.Second}
			for i := 0; i < conns/addrs; i++ {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				// The greeting: the connection is admitted and registered.
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					errs <- fmt.Errorf("connection %d from 127.0.0.%d: %w", i, 20+a, err)
					c.Close()
					return
				}
				mu.Lock()
				idle = append(idle, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("an idle client: %v", err)
	}
	if n := pre.Len(); n > pre.Max {
		t.Errorf("%d connections held before login, above the limit of %d", n, pre.Max)
	}
	a, err := tryLogin(addr, "127.0.0.2", "alice@example.org", "alice-pw")
	if err != nil || !strings.HasPrefix(a, "a1 OK") {
		t.Fatalf("a fresh client after %d idle connections: %q %v", conns, a, err)
	}
}
