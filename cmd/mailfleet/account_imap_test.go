package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// imapLogin logs in through the balancer's IMAP (proxy, LDAP bind, home
// instance), retrying a moment for the proxy's caches.
func imapLogin(t *testing.T, addr, user, pass string) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		r.ReadString('\n')
		fmt.Fprintf(c, "a1 LOGIN %q %q\r\n", user, pass)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				last = err.Error()
				break
			}
			if strings.HasPrefix(line, "a1 ") {
				last = strings.TrimSpace(line)
				break
			}
		}
		c.Close()
		if strings.HasPrefix(last, "a1 OK") {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("IMAP LOGIN %s through %s: %s", user, addr, last)
}
