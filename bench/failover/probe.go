package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
)

// The client side runs inside the lab's workstation namespace (the
// orchestrator starts it through `mailfleet lab exec`), as a user's mail
// client would, and reports every attempt on stdout, one line each, with
// the wall clock (the orchestrator's clock too: one machine):
//
//	probe:  ok|fail START_NS END_NS [reason]
//	sender: ack|temp|perm|err START_NS END_NS ID [reply]
//
// Both run until their standard input closes.

type clientFlags struct {
	addr, ca, user, passFile, to, prefix string
	every, timeout                       time.Duration
}

func parseClient(name string, args []string) clientFlags {
	var f clientFlags
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&f.addr, "addr", "", "VIP:port of the service")
	fs.StringVar(&f.ca, "ca", "", "the CA certificate the service's certificate chains to")
	fs.StringVar(&f.user, "user", "", "account")
	fs.StringVar(&f.passFile, "passfile", "", "file with the account's password")
	fs.StringVar(&f.to, "to", "", "sender: the recipient")
	fs.StringVar(&f.prefix, "prefix", "m", "sender/count: message id prefix")
	fs.DurationVar(&f.every, "every", 50*time.Millisecond, "probe: start an attempt this often")
	fs.DurationVar(&f.timeout, "timeout", 3*time.Second, "bound on one attempt")
	fs.Parse(args)
	return f
}

func (f clientFlags) tls() *tls.Config {
	pem, err := os.ReadFile(f.ca)
	if err != nil {
		fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fatal(fmt.Errorf("%s: no certificate", f.ca))
	}
	host, _, _ := net.SplitHostPort(f.addr)
	return &tls.Config{RootCAs: pool, ServerName: host}
}

func (f clientFlags) password() string {
	b, err := os.ReadFile(f.passFile)
	if err != nil {
		fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// untilStdinCloses returns a channel closed when standard input ends.
func untilStdinCloses() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	return done
}

type lineWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
	l.w.Flush()
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// runProbe starts an IMAP login (STARTTLS, LOGIN, SELECT INBOX, LOGOUT)
// every f.every, without waiting for the earlier ones, so that one hung
// attempt does not hide when service came back.
func runProbe(args []string) {
	f := parseClient("probe", args)
	tc, pass := f.tls(), f.password()
	out := &lineWriter{w: bufio.NewWriter(os.Stdout)}
	done := untilStdinCloses()
	sem := make(chan struct{}, 64)
	tick := time.NewTicker(f.every)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // 64 attempts hang already
		}
		go func() {
			defer func() { <-sem }()
			start := time.Now()
			err := imapLogin(f, tc, pass)
			end := time.Now()
			if err != nil {
				out.printf("fail %d %d %s", start.UnixNano(), end.UnixNano(), oneLine(err))
				return
			}
			out.printf("ok %d %d", start.UnixNano(), end.UnixNano())
		}()
	}
}

func dialIMAP(f clientFlags, tc *tls.Config) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", f.addr, f.timeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(f.timeout))
	c, err := imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: tc})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func imapLogin(f clientFlags, tc *tls.Config, pass string) error {
	c, err := dialIMAP(f, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(f.user, pass).Wait(); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// runSender sends numbered messages through the SMTP VIP one after
// another, each on a new connection (STARTTLS when offered), and says
// what became of each.
func runSender(args []string) {
	f := parseClient("sender", args)
	tc := f.tls()
	out := &lineWriter{w: bufio.NewWriter(os.Stdout)}
	done := untilStdinCloses()
	for n := 0; ; n++ {
		select {
		case <-done:
			return
		default:
		}
		id := fmt.Sprintf("%s-%d", f.prefix, n)
		start := time.Now()
		err := sendOne(f, tc, id)
		end := time.Now()
		var se *gosmtp.SMTPError
		switch {
		case err == nil:
			out.printf("ack %d %d %s", start.UnixNano(), end.UnixNano(), id)
		case errors.As(err, &se) && se.Code >= 500:
			out.printf("perm %d %d %s %s", start.UnixNano(), end.UnixNano(), id, oneLine(err))
		case errors.As(err, &se):
			out.printf("temp %d %d %s %s", start.UnixNano(), end.UnixNano(), id, oneLine(err))
			time.Sleep(50 * time.Millisecond)
		default:
			out.printf("err %d %d %s %s", start.UnixNano(), end.UnixNano(), id, oneLine(err))
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func sendOne(f clientFlags, tc *tls.Config, id string) error {
	conn, err := net.DialTimeout("tcp", f.addr, f.timeout)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := gosmtp.NewClientStartTLS(conn, tc)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	msg := fmt.Sprintf("From: bench@example.net\r\nTo: %s\r\nSubject: failover %s\r\nX-Failover-Id: %s\r\n\r\nmessage %s\r\n", f.to, id, id, id)
	if err := c.SendMail("bench@example.net", []string{f.to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// runCount prints, for every message of the INBOX whose X-Failover-Id
// starts with prefix, "id COUNT".
func runCount(args []string) {
	f := parseClient("count", args)
	f.timeout = 2 * time.Minute
	c, err := dialIMAP(f, f.tls())
	if err != nil {
		fatal(err)
	}
	defer c.Close()
	if err := c.Login(f.user, f.password()).Wait(); err != nil {
		fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		fatal(err)
	}
	counts := map[string]int{}
	if sel.NumMessages > 0 {
		hdr := &goimap.FetchItemBodySection{Specifier: goimap.PartSpecifierHeader, HeaderFields: []string{"X-Failover-Id"}, Peek: true}
		msgs, err := c.Fetch(goimap.SeqSet{goimap.SeqRange{Start: 1, Stop: 0}},
			&goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{hdr}}).Collect()
		if err != nil {
			fatal(err)
		}
		for _, m := range msgs {
			h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(m.FindBodySection(hdr)))).ReadMIMEHeader()
			if id := h.Get("X-Failover-Id"); strings.HasPrefix(id, f.prefix+"-") {
				counts[id]++
			}
		}
	}
	for id, n := range counts {
		fmt.Printf("%s %d\n", id, n)
	}
	c.Logout().Wait()
}
