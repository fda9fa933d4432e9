package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/internal/testcert"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

type fakeAuth map[string]string

func (f fakeAuth) Authenticate(_ context.Context, user, pass string) (string, error) {
	u := strings.ToLower(user)
	if pw, ok := f[u]; ok && pw == pass {
		return u, nil
	}
	return "", auth.ErrInvalidCredentials
}

const (
	user = "bob@example.org"
	pass = "pw with space"
)

type testServer struct {
	addr  string
	store *maildir.Store
	srv   *Server
}

func startServer(t *testing.T, tweak func(*Options)) *testServer {
	t.Helper()
	st, err := maildir.Open(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Hostname: "pop.test", Store: st, Auth: fakeAuth{user: pass}, FailedLoginDelay: time.Millisecond}
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
	return &testServer{addr: l.Addr().String(), store: st, srv: srv}
}

func (ts *testServer) deliver(t *testing.T, msgs ...string) {
	t.Helper()
	a, err := ts.store.Account(user)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := a.Inbox().Deliver(strings.NewReader(m), maildir.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, conn: c, r: bufio.NewReader(c)}
	cl.expect("+OK")
	return cl
}

func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *client) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want prefix %q", l, prefix)
	}
	return l
}

func (c *client) cmd(line, prefix string) string {
	c.t.Helper()
	fmt.Fprintf(c.conn, "%s\r\n", line)
	return c.expect(prefix)
}

func (c *client) multiline() []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		if l == "." {
			return out
		}
		out = append(out, l)
	}
}

func login(t *testing.T, addr string) *client {
	c := dial(t, addr)
	c.cmd("USER "+user, "+OK")
	c.cmd("PASS "+pass, "+OK")
	return c
}

func TestSessionCommands(t *testing.T) {
	ts := startServer(t, nil)
	ts.deliver(t, "Subject: one\r\n\r\nline1\r\n.dot line\r\nline3\r\n", "Subject: two\r\n\r\nbody two\r\n")
	c := dial(t, ts.addr)
	c.cmd("STAT", "-ERR not authenticated")
	c.cmd("CAPA", "+OK")
	capa := strings.Join(c.multiline(), ",")
	for _, want := range []string{"TOP", "UIDL", "USER", "SASL PLAIN", "RESP-CODES"} {
		if !strings.Contains(capa, want) {
			t.Fatalf("CAPA %q lacks %s", capa, want)
		}
	}
	if strings.Contains(capa, "STLS") {
		t.Fatalf("STLS offered without TLS: %q", capa)
	}
	c.cmd("FOO", "-ERR unknown command")
	c.cmd("USER "+user, "+OK")
	c.cmd("PASS wrong", "-ERR [AUTH]")
	c.cmd("USER "+user, "+OK")
	c.cmd("PASS "+pass, "+OK maildrop has 2 messages")
	c.cmd("STAT", "+OK 2 ")
	c.cmd("LIST", "+OK")
	if l := c.multiline(); len(l) != 2 || !strings.HasPrefix(l[0], "1 ") {
		t.Fatalf("LIST = %q", l)
	}
	c.cmd("UIDL", "+OK")
	uidl := c.multiline()
	if len(uidl) != 2 || uidl[0] == uidl[1] {
		t.Fatalf("UIDL = %q", uidl)
	}
	c.cmd("RETR 1", "+OK")
	if got := strings.Join(c.multiline(), "|"); got != "Subject: one||line1|..dot line|line3" {
		t.Fatalf("RETR with dot-stuffing = %q", got)
	}
	c.cmd("TOP 1 1", "+OK")
	if got := strings.Join(c.multiline(), "|"); got != "Subject: one||line1" {
		t.Fatalf("TOP 1 1 = %q", got)
	}
	c.cmd("RETR 3", "-ERR no such message")
	c.cmd("RETR x", "-ERR")
	c.cmd("DELE 1", "+OK")
	c.cmd("DELE 1", "-ERR message 1 already deleted")
	c.cmd("RETR 1", "-ERR")
	c.cmd("STAT", "+OK 1 ")
	c.cmd("RSET", "+OK")
	c.cmd("STAT", "+OK 2 ")
	c.cmd("DELE 2", "+OK")
	c.cmd("NOOP", "+OK")

	// Deletions happen only at QUIT: another look at the store still sees 2.
	a, _ := ts.store.Account(user)
	if st, _ := a.Inbox().Status(); st.Messages != 2 {
		t.Fatalf("before QUIT the store has %d messages", st.Messages)
	}
	// The maildrop is locked meanwhile.
	c2 := dial(t, ts.addr)
	c2.cmd("USER "+user, "+OK")
	c2.cmd("PASS "+pass, "-ERR [IN-USE]")

	c.cmd("QUIT", "+OK")
	if st, _ := a.Inbox().Status(); st.Messages != 1 {
		t.Fatalf("after QUIT the store has %d messages", st.Messages)
	}
	// The lock is released at QUIT; UIDL of the survivor is stable.
	c3 := login(t, ts.addr)
	c3.cmd("UIDL", "+OK")
	if l := c3.multiline(); len(l) != 1 || strings.Fields(l[0])[1] != strings.Fields(uidl[0])[1] {
		t.Fatalf("UIDL after QUIT = %q, before %q", l, uidl)
	}
}

func TestAuthPlainAndBadInput(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxLineLength = 100 })
	c := dial(t, ts.addr)
	c.cmd(strings.Repeat("A", 5000), "-ERR line too long")
	c.cmd("NOOP", "+OK") // the session goes on
	c.cmd("AUTH PLAIN !!!", "-ERR invalid base64")
	c.cmd("AUTH CRAM-MD5", "-ERR unsupported")
	c.cmd("AUTH PLAIN", "+ ")
	c.cmd("*", "-ERR authentication cancelled")
	c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)), "+OK")
	c.cmd("AUTH PLAIN x", "-ERR already authenticated")
	c.cmd("QUIT", "+OK")

	// Too many failures close the connection.
	c = dial(t, ts.addr)
	for i := 0; i < 2; i++ {
		c.cmd("USER "+user, "+OK")
		c.cmd("PASS bad", "-ERR [AUTH]")
	}
	c.cmd("USER "+user, "+OK")
	c.cmd("PASS bad", "-ERR [AUTH]")
	c.expect("-ERR too many")
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after too many failures")
	}
}

func TestSTLSRequiredForPlaintext(t *testing.T) {
	cert, _, _, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(o *Options) { o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} })
	ts.deliver(t, "Subject: x\r\n\r\nx\r\n")
	c := dial(t, ts.addr)
	c.cmd("CAPA", "+OK")
	capa := strings.Join(c.multiline(), ",")
	if !strings.Contains(capa, "STLS") || strings.Contains(capa, "USER") {
		t.Fatalf("CAPA before TLS = %q", capa)
	}
	c.cmd("USER "+user, "-ERR [AUTH] Plaintext authentication disallowed")
	c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)), "-ERR [AUTH] Plaintext")
	c.cmd("STLS", "+OK")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd("CAPA", "+OK")
	capa = strings.Join(c.multiline(), ",")
	if strings.Contains(capa, "STLS") || !strings.Contains(capa, "USER") {
		t.Fatalf("CAPA after TLS = %q", capa)
	}
	c.cmd("USER "+user, "+OK")
	c.cmd("PASS "+pass, "+OK maildrop has 1 messages")
}

func TestPythonPoplib(t *testing.T) {
	ts := startServer(t, nil)
	ts.deliver(t, "Subject: py1\r\n\r\n.leading dot\r\nhello\r\n", "Subject: py2\r\n\r\nsecond\r\n")
	host, port, _ := net.SplitHostPort(ts.addr)
	script := `
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=10)
p.user(sys.argv[3]); p.pass_(sys.argv[4])
count, size = p.stat()
assert count == 2, count
resp, lines, octets = p.retr(1)
body = b"\n".join(lines)
assert b"Subject: py1" in body and b"\n.leading dot\n" in body, body
resp, lines, _ = p.top(2, 0)
assert lines[0] == b"Subject: py2" and b"second" not in lines, lines
uidl = p.uidl()[1]
assert len(uidl) == 2, uidl
p.dele(1)
p.quit()
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=10)
p.user(sys.argv[3]); p.pass_(sys.argv[4])
assert p.stat()[0] == 1
p.quit()
print("OK")
`
	out, err := exec.Command("python3", "-c", script, host, port, user, pass).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("poplib: %v\n%s", err, out)
	}
}

func TestCurlPOP3(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.Auth = fakeAuth{user: "curlpw"} })
	ts.deliver(t, "Subject: curl\r\n\r\nfetched by curl\r\n")
	dir := t.TempDir()
	out := filepath.Join(dir, "msg")
	cmd := exec.Command("curl", "-sS", "--max-time", "20", "-u", user+":curlpw", "-o", out, "pop3://"+ts.addr+"/1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "fetched by curl") {
		t.Fatalf("curl got %q", b)
	}
	list, err := exec.Command("curl", "-sS", "--max-time", "20", "-u", user+":curlpw", "pop3://"+ts.addr+"/").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(list), "1 ") {
		t.Fatalf("curl LIST: %v %q", err, list)
	}
}
