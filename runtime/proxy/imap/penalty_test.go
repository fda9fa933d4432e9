package imap

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/runtime/proxy/proxytest"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

// tryLogin dials addr from local (an address of 127.0.0.0/8), logs in and
// returns the tagged answer.
func tryLogin(addr, local, user, pass string) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	if g, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
		return "", fmt.Errorf("greeting %q: %v", g, err)
	}
	fmt.Fprintf(c, "a1 LOGIN %s %s\r\n", user, pass)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, "a1 ") {
			return strings.TrimSpace(l), nil
		}
	}
}

// TestBruteForcePenalty: 100 wrong passwords sent in parallel from one
// address are checked one at a time, each failure answered after the
// penalty (doubling from Base up to Max), so they take at least the sum
// of the delays; meanwhile the right password, for the very account under
// attack, logs in at once from another address.
func TestBruteForcePenalty(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	pen := &session.Penalty{Base: 5 * time.Millisecond, Max: 40 * time.Millisecond, Forget: time.Minute}
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.Penalty = pen; o.AuthenticateOnProxy = true })
	const n = 100
	var least time.Duration
	for i := 1; i <= n; i++ {
		least += min(pen.Base<<min(i-1, 20), pen.Max)
	}
	start := time.Now()
	var wg sync.WaitGroup
	answers := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := tryLogin(addr, "127.0.0.1", "alice@example.org", "wrong")
			if err != nil {
				a = err.Error()
			}
			answers <- a
		}()
	}
	flood := make(chan struct{})
	go func() { wg.Wait(); close(flood) }()
	time.Sleep(least / 4) // the point: the flood is well under way
	a, err := tryLogin(addr, "127.0.0.2", "alice@example.org", "alice-pw")
	if err != nil || !strings.HasPrefix(a, "a1 OK") {
		t.Fatalf("the right password from another address during the flood: %q %v", a, err)
	}
	select {
	case <-flood:
		t.Errorf("the right password from another address waited for the flood to end")
	default:
	}
	<-flood
	took := time.Since(start)
	close(answers)
	for a := range answers {
		if !strings.Contains(a, "NO [AUTHENTICATIONFAILED]") {
			t.Errorf("a wrong password: %q", a)
		}
	}
	t.Logf("%d wrong passwords in parallel took %v (at least %v by the penalty)", n, took.Round(time.Millisecond), least)
	if took < least {
		t.Errorf("%d wrong passwords in parallel from one address took %v, less than the penalty's %v", n, took, least)
	}
}
