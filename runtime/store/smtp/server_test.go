package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

type fakeDir map[string]bool

func (d fakeDir) Lookup(_ context.Context, addr string) (string, bool, error) {
	a := strings.ToLower(addr)
	if a == "broken@example.org" {
		return "", false, errors.New("ldap down")
	}
	return a, d[a], nil
}

type testServer struct {
	addr  string
	store *maildir.Store
}

func startServer(t *testing.T, tweak func(*Options)) *testServer {
	t.Helper()
	st, err := maildir.Open(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Hostname: "store.test", Store: st, Domains: []string{"example.org"},
		Directory: fakeDir{"bob@example.org": true, "carol@example.org": true}, MaxMessageBytes: 100000, MaxRecipients: 3}
	if tweak != nil {
		tweak(&opts)
	}
	srv := New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &testServer{addr: l.Addr().String(), store: st}
}

func (ts *testServer) inbox(t *testing.T, addr string) []string {
	t.Helper()
	a, err := ts.store.Account(addr)
	if err != nil {
		t.Fatal(err)
	}
	in := a.Inbox()
	msgs, err := in.Messages()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		f, _, err := in.Open(m.UID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		out = append(out, string(b))
	}
	return out
}

func code(err error) int {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestSMTPDelivery(t *testing.T) {
	ts := startServer(t, nil)
	c, err := gosmtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"SIZE", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO lacks %s", ext)
		}
	}
	if err := c.Mail("alice@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	for rcpt, want := range map[string]int{"nobody@example.org": 550, "bob@other.test": 550, "broken@example.org": 451, "bad address": 501} {
		if err := c.Rcpt(rcpt, nil); code(err) != want {
			t.Errorf("RCPT %s: %v, want %d", rcpt, err, want)
		}
	}
	if err := c.Rcpt("Bob@Example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: hi\r\n\r\n.starts with dot\r\nbody ünïcode\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	msgs := ts.inbox(t, "bob@example.org")
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if !strings.HasPrefix(m, "Return-Path: <alice@remote.test>\r\nDelivered-To: bob@example.org\r\nReceived: from client.test ([127.0.0.1])\r\n\tby store.test (mailfleet) with ESMTP id ") ||
		!strings.HasSuffix(m, "\r\nSubject: hi\r\n\r\n.starts with dot\r\nbody ünïcode\r\n") {
		t.Fatalf("stored message:\n%s", m)
	}

	// Size limit: announced SIZE and actual data.
	if err := c.Mail("alice@remote.test", &gosmtp.MailOptions{Size: 200000}); code(err) != 552 {
		t.Fatalf("MAIL SIZE=200000: %v", err)
	}
	c.Mail("alice@remote.test", nil)
	c.Rcpt("bob@example.org", nil)
	w, _ = c.Data()
	fmt.Fprint(w, "Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("x", 70)+"\r\n", 3000))
	if err := w.Close(); code(err) != 552 {
		t.Fatalf("oversized DATA: %v", err)
	}
	// Recipient limit.
	c.Mail("alice@remote.test", nil)
	for i := 0; i < 3; i++ {
		if err := c.Rcpt("carol@example.org", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Rcpt("bob@example.org", nil); code(err) != 452 {
		t.Fatalf("4th RCPT: %v", err)
	}
	c.Reset()
	if got := len(ts.inbox(t, "bob@example.org")); got != 1 {
		t.Fatalf("bob has %d messages after refused transactions", got)
	}
}

func TestQuota(t *testing.T) {
	ts := startServer(t, nil)
	bob, _ := ts.store.Account("bob@example.org")
	bob.SetQuota(maildir.Quota{MaxBytes: 1000, MaxMessages: 1})
	send := func(rcpts []string, body string) error {
		c, err := gosmtp.Dial(ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Hello("client.test")
		if err := c.Mail("a@remote.test", nil); err != nil {
			return err
		}
		for _, r := range rcpts {
			if err := c.Rcpt(r, nil); err != nil {
				return err
			}
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		io.WriteString(w, body)
		return w.Close()
	}
	if err := send([]string{"bob@example.org"}, "Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("x", 70)+"\r\n", 30)); code(err) != 552 {
		t.Fatalf("over quota single recipient: %v", err)
	}
	if err := send([]string{"carol@example.org", "bob@example.org"}, "Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("x", 70)+"\r\n", 30)); code(err) != 452 {
		t.Fatalf("over quota with two recipients: %v", err)
	}
	if n := len(ts.inbox(t, "carol@example.org")); n != 0 {
		t.Fatalf("carol got %d messages from a refused transaction", n)
	}
	if err := send([]string{"bob@example.org"}, "Subject: small\r\n\r\n"+strings.Repeat("x", 600)+"\r\n"); err != nil {
		t.Fatal(err)
	}
	// Now full: RCPT is refused with 452.
	if err := send([]string{"bob@example.org"}, "x\r\n"); code(err) != 452 {
		t.Fatalf("RCPT to a full mailbox: %v", err)
	}
}

func TestLMTPPerRecipientStatus(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.LMTP = true })
	bob, _ := ts.store.Account("bob@example.org")
	bob.SetQuota(maildir.Quota{MaxBytes: 100})
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("router.test"); err != nil {
		t.Fatal(err)
	}
	c.Mail("a@remote.test", nil)
	c.Rcpt("Carol@example.org", nil)
	c.Rcpt("bob@example.org", nil)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: lmtp\r\n\r\n"+strings.Repeat("y", 500)+"\r\n")
	resp, err := w.CloseWithLMTPResponse()
	if err == nil {
		t.Fatal("no per-recipient error")
	}
	_ = resp
	var lerr gosmtp.LMTPDataError
	if !errors.As(err, &lerr) {
		t.Fatalf("err %T %v", err, err)
	}
	if e := lerr["bob@example.org"]; e == nil || e.Code != 552 {
		t.Fatalf("bob status %v", e)
	}
	if e, ok := lerr["Carol@example.org"]; ok {
		t.Fatalf("carol failed: %v", e)
	}
	if n := len(ts.inbox(t, "carol@example.org")); n != 1 {
		t.Fatalf("carol has %d messages", n)
	}
	if msgs := ts.inbox(t, "carol@example.org"); !strings.Contains(msgs[0], "with LMTP id") {
		t.Fatalf("Received header: %s", msgs[0])
	}
}

func TestCurlAndSmtplib(t *testing.T) {
	ts := startServer(t, nil)
	cmd := exec.Command("curl", "-sS", "--max-time", "20", "smtp://"+ts.addr, "--mail-from", "a@remote.test",
		"--mail-rcpt", "bob@example.org", "-T", "-")
	cmd.Stdin = strings.NewReader("Subject: from curl\r\n\r\ncurl body\r\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	host, port, _ := net.SplitHostPort(ts.addr)
	script := `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10)
s.ehlo("py.test")
assert s.has_extn("pipelining") and s.has_extn("size")
refused = s.sendmail("a@remote.test", ["carol@example.org"], b"Subject: from python\r\n\r\npython body\r\n")
assert refused == {}, refused
try:
    s.sendmail("a@remote.test", ["ghost@example.org"], b"Subject: x\r\n\r\nx\r\n")
    raise SystemExit("ghost accepted")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["ghost@example.org"][0] == 550, e.recipients
s.quit()
print("OK")
`
	out, err := exec.Command("python3", "-c", script, host, port).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	if m := ts.inbox(t, "bob@example.org"); len(m) != 1 || !strings.Contains(m[0], "curl body") {
		t.Fatalf("bob: %q", m)
	}
	if m := ts.inbox(t, "carol@example.org"); len(m) != 1 || !strings.Contains(m[0], "python body") {
		t.Fatalf("carol: %q", m)
	}
}

// An account marked moving between RCPT and the end of DATA: the
// transaction gets 451 4.2.1 and nobody has the message (SMTP), or that
// recipient alone gets it (LMTP); a held delivery is released.
func TestHoldRefusesAtEndOfData(t *testing.T) {
	for _, lmtp := range []bool{false, true} {
		var mu sync.Mutex
		moving := map[string]bool{}
		held := 0
		ts := startServer(t, func(o *Options) {
			o.LMTP = lmtp
			o.Hold = func(addrs []string) (func(), error) {
				mu.Lock()
				defer mu.Unlock()
				for _, a := range addrs {
					if moving[a] {
						return nil, errors.New("account is being moved")
					}
				}
				held++
				return func() { mu.Lock(); held--; mu.Unlock() }, nil
			}
		})
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c := gosmtp.NewClient(conn)
		if lmtp {
			c = gosmtp.NewClientLMTP(conn)
		}
		if err := c.Hello("router.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("a@remote.test", nil); err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"bob@example.org", "Carol@example.org"} {
			if err := c.Rcpt(r, nil); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		moving["carol@example.org"] = true // after its RCPT
		mu.Unlock()
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: during a move\r\n\r\nbody\r\n")
		var carolErr *gosmtp.SMTPError
		if lmtp {
			_, err = w.CloseWithLMTPResponse()
			var lerr gosmtp.LMTPDataError
			if !errors.As(err, &lerr) || lerr["bob@example.org"] != nil {
				t.Fatalf("LMTP: %v", err)
			}
			carolErr = lerr["Carol@example.org"]
		} else {
			err = w.Close()
			errors.As(err, &carolErr)
		}
		c.Close()
		if carolErr == nil || carolErr.Code != 451 || carolErr.EnhancedCode != (gosmtp.EnhancedCode{4, 2, 1}) {
			t.Fatalf("lmtp=%v: end of data %v, want 451 4.2.1", lmtp, err)
		}
		wantBob := 0
		if lmtp {
			wantBob = 1
		}
		if n, m := len(ts.inbox(t, "bob@example.org")), len(ts.inbox(t, "carol@example.org")); n != wantBob || m != 0 {
			t.Fatalf("lmtp=%v: bob has %d messages, carol %d; want %d and 0", lmtp, n, m, wantBob)
		}
		mu.Lock()
		left := held
		mu.Unlock()
		if left != 0 {
			t.Fatalf("lmtp=%v: %d holds not released", lmtp, left)
		}
	}
}
