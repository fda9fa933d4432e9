package imap

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/proxytest"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

type client struct{ *proxytest.Client }

func dial(t *testing.T, addr string, pre []byte) *client {
	t.Helper()
	return &client{proxytest.Dial(t, addr, pre, "* OK ")}
}

// cmd sends a tagged command and returns the lines up to its tagged
// response, which is the last.
func (c *client) cmd(tag, line string) []string {
	c.T.Helper()
	c.Conn.Write([]byte(tag + " " + line + "\r\n"))
	var out []string
	for {
		l := c.Line()
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") || strings.HasPrefix(l, "* BYE") && !strings.HasPrefix(line, "LOGOUT") {
			return out
		}
	}
}

func last(lines []string) string { return lines[len(lines)-1] }

func TestLoginThenSpliced(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	cl.Inst2.Deliver(t, "bob@example.org", "Subject: hello bob\r\n\r\nhi\r\n")
	addr := proxytest.StartProxy(t, cl, New, nil)
	c := dial(t, addr, nil)
	if got := c.cmd("a1", "CAPABILITY"); !strings.Contains(got[0], "AUTH=PLAIN") || !strings.HasPrefix(last(got), "a1 OK") {
		t.Fatalf("capability: %q", got)
	}
	if got := c.cmd("a2", `ID ("name" "test" "version" NIL)`); got[0] != `* ID ("name" "mailfleet")` || !strings.HasPrefix(last(got), "a2 OK") {
		t.Fatalf("id: %q", got)
	}
	if got := c.cmd("a3", "NOOP"); last(got) != "a3 OK NOOP completed" {
		t.Fatalf("noop: %q", got)
	}
	if got := c.cmd("a4", "SELECT INBOX"); !strings.HasPrefix(last(got), "a4 BAD") {
		t.Fatalf("select before login: %q", got)
	}
	// A literal for the password.
	c.Conn.Write([]byte("a5 LOGIN bob@example.org {6}\r\n"))
	if l := c.Line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	c.Conn.Write([]byte("bob-pw\r\n"))
	if l := c.Line(); !strings.HasPrefix(l, "a5 OK") {
		t.Fatalf("login: %q", l)
	}
	// Now the instance itself answers: bob's INBOX on inst2.
	got := c.cmd("a6", "SELECT INBOX")
	if !strings.HasPrefix(last(got), "a6 OK") || !strings.Contains(strings.Join(got, "\n"), "* 1 EXISTS") {
		t.Fatalf("select: %q", got)
	}
	if got := c.cmd("a7", "FETCH 1 BODY[HEADER.FIELDS (SUBJECT)]"); !strings.Contains(strings.Join(got, "\n"), "hello bob") {
		t.Fatalf("fetch: %q", got)
	}
	if got := c.cmd("a8", "LOGOUT"); !strings.HasPrefix(last(got), "a8 OK") {
		t.Fatalf("logout: %q", got)
	}
	// The store saw the front-end's session id.
	if !strings.Contains(cl.Inst2.Log.String(), `"fe1-`) {
		t.Errorf("store log lacks the session id:\n%s", cl.Inst2.Log.String())
	}
}

func TestAuthenticatePlain(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	addr := proxytest.StartProxy(t, cl, New, nil)
	plain := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + p)) }
	c := dial(t, addr, nil)
	// Without an initial response: a continuation, then the response.
	c.Conn.Write([]byte("a1 AUTHENTICATE PLAIN\r\n"))
	if l := c.Line(); l != "+ " {
		t.Fatalf("continuation %q", l)
	}
	c.Conn.Write([]byte("*\r\n"))
	if l := c.Line(); !strings.HasPrefix(l, "a1 BAD") {
		t.Fatalf("cancel %q", l)
	}
	if got := c.cmd("a2", "AUTHENTICATE PLAIN !!!"); !strings.HasPrefix(last(got), "a2 BAD") {
		t.Fatalf("bad base64: %q", got)
	}
	if got := c.cmd("a3", "AUTHENTICATE PLAIN "+plain("alice@example.org", "alice-pw")); !strings.HasPrefix(last(got), "a3 OK") {
		t.Fatalf("SASL-IR: %q", got)
	}
	if got := c.cmd("a4", "NAMESPACE"); !strings.HasPrefix(last(got), "a4 OK") {
		t.Fatalf("namespace at the instance: %q", got)
	}
}

func TestFailedLoginsAndUnavailable(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.MaxFailedLogins = 2 })
	c := dial(t, addr, nil)
	if got := c.cmd("a1", "LOGIN alice@example.org wrong"); last(got) != "a1 NO [AUTHENTICATIONFAILED] Invalid credentials" {
		t.Fatalf("wrong password: %q", got)
	}
	if got := c.cmd("a2", "LOGIN twice@example.org twice-pw"); !strings.HasPrefix(last(got), "a2 NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("duplicate: %q", got)
	}
	if l := c.Line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("after too many failures: %q", l)
	}

	// A home instance that does not answer.
	deadAddr := proxytest.DeadAddr(t)
	instances := map[string]config.InstanceRoute{cl.Inst1.FQDN: {Name: "inst1", IMAP: deadAddr}, cl.Inst2.FQDN: cl.Inst2.Route()}
	addr = proxytest.StartProxy(t, cl, New, func(o *Options) { o.Instances = instances })
	c = dial(t, addr, nil)
	got := c.cmd("a1", "LOGIN alice@example.org alice-pw")
	if !strings.HasPrefix(last(got), "a1 NO [UNAVAILABLE]") {
		t.Fatalf("dead instance: %q", got)
	}
}

// TestDefaultRouteOnlyWithoutProxyAuth: with authentication left to the
// instance, a name not in the directory goes to the default route; with
// authentication on the proxy, it is refused there.
func TestDefaultRouteOnlyWithoutProxyAuth(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	deadAddr := proxytest.DeadAddr(t)
	instances := map[string]config.InstanceRoute{cl.Inst1.FQDN: cl.Inst1.Route(), cl.Inst2.FQDN: cl.Inst2.Route(),
		"default.backend.test": {Name: "default", IMAP: deadAddr}}
	for _, auth := range []bool{false, true} {
		addr := proxytest.StartProxy(t, cl, New, func(o *Options) {
			o.Instances, o.DefaultRoute, o.AuthenticateOnProxy = instances, "default.backend.test", auth
		})
		c := dial(t, addr, nil)
		got := last(c.cmd("a1", "LOGIN nobody@example.org pw"))
		want := "a1 NO [UNAVAILABLE]" // sent to the (dead) default route
		if auth {
			want = "a1 NO [AUTHENTICATIONFAILED]"
		}
		if !strings.HasPrefix(got, want) {
			t.Fatalf("authenticate_on_proxy=%v: %q", auth, got)
		}
		// Known accounts go home either way; with the instance checking,
		// its refusal is passed on.
		if got := last(c.cmd("a2", "LOGIN bob@example.org wrong")); !strings.HasPrefix(got, "a2 NO") {
			t.Fatalf("wrong password, authenticate_on_proxy=%v: %q", auth, got)
		}
		if got := last(c.cmd("a3", "LOGIN bob@example.org bob-pw")); !strings.HasPrefix(got, "a3 OK") {
			t.Fatalf("authenticate_on_proxy=%v: %q", auth, got)
		}
	}
}

// TestSecurityLoginBeforeSTARTTLSRefused: with TLS configured, LOGIN and
// AUTHENTICATE are refused before STARTTLS; after it they work, and the
// hop to the instance can be TLS too.
func TestSecurityLoginBeforeSTARTTLSRefused(t *testing.T) {
	cert := storetest.NewCert(t)
	cl := storetest.NewCluster(t, cert)
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.TLSConfig = cert.ServerConfig(); o.BackendTLS = cert.ClientConfig() })
	c := dial(t, addr, nil)
	if got := c.cmd("a1", "CAPABILITY"); !strings.Contains(got[0], "LOGINDISABLED") || strings.Contains(got[0], "AUTH=PLAIN") {
		t.Fatalf("capability before STARTTLS: %q", got)
	}
	binds := cl.Directory.UserBinds()
	if got := last(c.cmd("a2", "LOGIN alice@example.org alice-pw")); !strings.HasPrefix(got, "a2 NO [PRIVACYREQUIRED]") {
		t.Fatalf("LOGIN before STARTTLS: %q", got)
	}
	if got := last(c.cmd("a3", "AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAGFsaWNlLXB3")); !strings.HasPrefix(got, "a3 NO [PRIVACYREQUIRED]") {
		t.Fatalf("AUTHENTICATE before STARTTLS: %q", got)
	}
	if cl.Directory.UserBinds() != binds {
		t.Fatal("a password sent in clear reached the directory")
	}
	// Commands pipelined behind STARTTLS are an injection attempt.
	c2 := dial(t, addr, nil)
	c2.Conn.Write([]byte("b1 STARTTLS\r\nb2 LOGIN alice@example.org alice-pw\r\n"))
	if l := c2.Line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("pipelined STARTTLS: %q", l)
	}
	if got := last(c.cmd("a4", "STARTTLS")); !strings.HasPrefix(got, "a4 OK") {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c.Conn, cert.ClientConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = &client{proxytest.NewClient(t, tc)}
	if got := c.cmd("a5", "CAPABILITY"); !strings.Contains(got[0], "AUTH=PLAIN") || strings.Contains(got[0], "STARTTLS") {
		t.Fatalf("capability after STARTTLS: %q", got)
	}
	if got := last(c.cmd("a6", "LOGIN alice@example.org alice-pw")); !strings.HasPrefix(got, "a6 OK") {
		t.Fatalf("LOGIN after STARTTLS: %q", got)
	}
	if got := last(c.cmd("a7", "SELECT INBOX")); !strings.HasPrefix(got, "a7 OK") {
		t.Fatalf("select over two TLS hops: %q", got)
	}
}

// TestSecurityInjectionAndEmptyPassword at the proxy: filter characters in
// the login name and empty passwords bind nothing.
func TestSecurityInjectionAndEmptyPassword(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.MaxFailedLogins = 100 })
	c := dial(t, addr, nil)
	for i, name := range []string{`"*"`, `"*@example.org"`, `"alice@example.org)(uid=*"`, `"*)(|(uid=*"`, `"\\"`, "{18}\r\nalice@example.org\x00"} {
		tag := "i" + string(rune('a'+i))
		var got string
		if strings.HasPrefix(name, "{") {
			c.Conn.Write([]byte(tag + " LOGIN {18}\r\n"))
			c.Line()
			c.Conn.Write([]byte("alice@example.org\x00 alice-pw\r\n"))
			got = c.Line()
		} else {
			got = last(c.cmd(tag, "LOGIN "+name+" alice-pw"))
		}
		if !strings.HasPrefix(got, tag+" NO [AUTHENTICATIONFAILED]") {
			t.Errorf("LOGIN %q: %q", name, got)
		}
	}
	for i, line := range []string{`LOGIN alice@example.org ""`, "AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00"))} {
		tag := "e" + string(rune('a'+i))
		if got := last(c.cmd(tag, line)); !strings.HasPrefix(got, tag+" NO [AUTHENTICATIONFAILED]") {
			t.Errorf("%s: %q", line, got)
		}
	}
	if n := cl.Directory.UserBinds(); n != 0 {
		t.Fatalf("%d user binds", n)
	}
}

// TestBalancerSessionIDReachesStore: a trusted balancer's PROXY header
// gives the client's address and session id, which go on to the store.
func TestBalancerSessionIDReachesStore(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	trusted, _ := session.ParsePrefixes([]string{"127.0.0.1/32"})
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.TrustedBalancers = trusted; o.MaxPerClient = 1 })
	hb := proxytest.BalancerHeader(t, "198.51.100.23:40000", "127.0.0.1:143", "bal1-0123456789ab")
	c := dial(t, addr, hb)
	if got := last(c.cmd("a1", "LOGIN bob@example.org bob-pw")); !strings.HasPrefix(got, "a1 OK") {
		t.Fatalf("login: %q", got)
	}
	c.cmd("a2", "SELECT INBOX")
	log := cl.Inst2.Log.String()
	if !strings.Contains(log, "bal1-0123456789ab") || !strings.Contains(log, "198.51.100.23") {
		t.Fatalf("store log lacks the balancer's session id or the client:\n%s", log)
	}
	// The same client address again is over its limit of one.
	c2 := dial(t, addr, hb)
	c2.Conn.Write([]byte("a1 NOOP\r\n"))
	if l := c2.Line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("second session of one client: %q", l)
	}
}

func TestLimitsAndTimeouts(t *testing.T) {
	testutil.Long(t)
	cl := storetest.NewCluster(t, nil)
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.MaxConnections = 1; o.PreAuthTimeout = 2 * time.Second })
	c := dial(t, addr, nil)
	// The slot is taken: the next connection is told so.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if l, _ := bufio.NewReader(nc).ReadString('\n'); !strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
		t.Fatalf("over the limit: %q", l)
	}
	// A silent client is logged out by the pre-auth timeout.
	if l := c.Line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("pre-auth timeout: %q", l)
	}
	// A line too long ends the session.
	addr = proxytest.StartProxy(t, cl, New, nil)
	c = dial(t, addr, nil)
	c.Conn.Write([]byte("a1 LOGIN " + strings.Repeat("x", DefaultMaxLine) + " y\r\n"))
	if l := c.Line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("long line: %q", l)
	}
}
