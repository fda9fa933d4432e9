package balancer

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/store/proxyhdr"
)

// TestProxyHeaderReadByStoreListener: a listener wrapped the way the
// store (and the front-ends) accept PROXY v2 greets the balancer's health
// checks at once (their LOCAL header) and sees each client's address and
// session id.
func TestProxyHeaderReadByStoreListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := proxyhdr.Wrap(raw, []string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// The greeting names what the server sees.
				fmt.Fprintf(c, "* OK %s %s ready\r\n", c.RemoteAddr(), proxyhdr.SessionID(c))
				bufio.NewReader(c).ReadString('\n')
			}()
		}
	}()
	fe := &testBackend{name: "fe1", addr: raw.Addr().String(), proxy: true}
	b, logs := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, fe)))
	waitAllUp(t, b, "imap", fe)

	c, err := dialFrom("127.0.0.7", b.Addrs()["imap"])
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(c.greeting)
	if len(f) != 5 || f[2] != c.LocalAddr().String() || len(f[3]) != 24 {
		t.Fatalf("store-side view %q, want client %s and a session id", c.greeting, c.LocalAddr())
	}
	c.Close()
	testutil.Until(t, time.Minute, "the session log", func() bool { return len(logs.records("session")) == 1 })
	if got := logs.records("session")[0]["session"]; got != f[3] {
		t.Fatalf("balancer logged session %v, the store saw %s", got, f[3])
	}
}
