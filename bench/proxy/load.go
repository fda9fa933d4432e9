package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
)

// target is where a client connects: the balancer (proxied) or the store
// (direct).
type target struct {
	name      string // proxied, direct
	imap      string
	smtp      string
	ioTimeout time.Duration
}

// message10K is a 10 KB message (headers and lines of 100 bytes).
func message10K(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: %s\r\nSubject: bench message %d\r\nMessage-Id: <%d.%d@bench>\r\n\r\n",
		rcpt(i), i, time.Now().UnixNano(), i)
	for b.Len() < 10*1024-100 {
		b.WriteString(strings.Repeat("x", 98) + "\r\n")
	}
	return b.String()
}

func (t target) dialIMAP(i int) (*imapclient.Client, error) {
	conn, err := dialFrom(t.imap, "", 10*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(t.ioTimeout))
	c := imapclient.New(conn, nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	u, pw := imapUser(i)
	if err := c.Login(u, pw).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return c, nil
}

// imapSession is the measured IMAP session: connect, LOGIN, SELECT INBOX,
// FETCH 1:10 (FLAGS BODY.PEEK[]) of 10 KB messages, LOGOUT.
func (t target) imapSession(i int) error {
	c, err := t.dialIMAP(i)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	bs := &goimap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(goimap.SeqSetNum(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
		&goimap.FetchOptions{Flags: true, BodySection: []*goimap.FetchItemBodySection{bs}}).Collect()
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if len(msgs) != 10 || len(msgs[9].FindBodySection(bs)) < 10000 {
		return fmt.Errorf("fetched %d messages", len(msgs))
	}
	return c.Logout().Wait()
}

// smtpTransaction is the measured SMTP transaction, one per connection
// as MTAs mostly send: connect, EHLO, MAIL, RCPT, DATA of 10 KB, QUIT.
func (t target) smtpTransaction(i int, msg string) error {
	conn, err := dialFrom(t.smtp, "", 10*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(t.ioTimeout))
	c := gosmtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("bench.client.test"); err != nil {
		return fmt.Errorf("ehlo: %w", err)
	}
	if err := c.SendMail("sender@remote.test", []string{rcpt(i)}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// fill appends 10 KB messages to the INBOX of every IMAP account until it
// holds n (directly on the store).
func fill(t target, n int) error {
	for a := range nAccounts {
		c, err := t.dialIMAP(a)
		if err != nil {
			return err
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			c.Close()
			return err
		}
		for i := int(sel.NumMessages); i < n; i++ {
			msg := message10K(i)
			cmd := c.Append("INBOX", int64(len(msg)), nil)
			io.WriteString(cmd, msg)
			cmd.Close()
			if _, err := cmd.Wait(); err != nil {
				c.Close()
				return err
			}
		}
		c.Logout().Wait()
		c.Close()
	}
	return nil
}

// loadResult is one timed run.
type loadResult struct {
	Ops      int                `json:"ops"`
	Errors   int                `json:"errors"`
	FirstErr string             `json:"first_error,omitempty"`
	Seconds  float64            `json:"seconds"`
	Rate     float64            `json:"rate"`   // ops/s
	P50      float64            `json:"p50_ms"` // latency of one op
	P99      float64            `json:"p99_ms"`
	CPU      map[string]float64 `json:"cpu_s"` // CPU seconds by role during the run
}

// runLoad runs op with clients concurrent loops for d; every loop finishes
// the op it started when d ends, and the run ends with the last one.
func runLoad(clients int, d time.Duration, op func(i int) error) loadResult {
	var mu sync.Mutex
	var lat []time.Duration
	var res loadResult
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			errs, first := 0, ""
			for n := 0; time.Now().Before(deadline); n++ {
				t0 := time.Now()
				if err := op(w + n*clients); err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.Errors += errs
			if res.FirstErr == "" {
				res.FirstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Ops = len(lat)
	res.Rate = float64(res.Ops) / res.Seconds
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		res.P50 = ms(lat[len(lat)*50/100])
		res.P99 = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// idleSession logs in, selects INBOX and returns the open connection.
func idleSession(addr string, i int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		c.Close()
		return nil, err
	}
	u, pw := imapUser(i)
	fmt.Fprintf(c, "a1 LOGIN %s %s\r\na2 SELECT INBOX\r\n", u, pw)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if strings.HasPrefix(l, "a1 ") && !strings.HasPrefix(l, "a1 OK") {
			c.Close()
			return nil, fmt.Errorf("login: %s", strings.TrimSpace(l))
		}
		if strings.HasPrefix(l, "a2 ") {
			if !strings.HasPrefix(l, "a2 OK") {
				c.Close()
				return nil, fmt.Errorf("select: %s", strings.TrimSpace(l))
			}
			c.SetDeadline(time.Time{})
			return c, nil
		}
	}
}

// openIdle opens n idle sessions with par logins at a time.
func openIdle(addr string, n, par, offset int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, par)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := idleSession(addr, offset+i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("session %d: %w", i, err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	return conns, firstErr
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
