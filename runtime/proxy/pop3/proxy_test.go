package pop3

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/proxytest"
	"github.com/mailfleet/mailfleet/runtime/proxy/server"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

type client struct{ *proxytest.Client }

func dial(t *testing.T, addr string, pre []byte) *client {
	t.Helper()
	return &client{proxytest.Dial(t, addr, pre, "+OK")}
}

func (c *client) cmd(line string) string {
	c.T.Helper()
	c.Conn.Write([]byte(line + "\r\n"))
	return c.Line()
}

// multi reads a multi-line response up to its ".".
func (c *client) multi(line string) []string {
	c.T.Helper()
	first := c.cmd(line)
	if !strings.HasPrefix(first, "+OK") {
		c.T.Fatalf("%s: %q", line, first)
	}
	var out []string
	for l := c.Line(); l != "."; l = c.Line() {
		out = append(out, l)
	}
	return out
}

func plain(u, p string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + p))
}

func TestUserPassThenSpliced(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	cl.Inst1.Deliver(t, "alice@example.org", "Subject: for alice\r\n\r\nhello\r\n")
	addr := proxytest.StartProxy(t, cl, New, nil)
	c := dial(t, addr, nil)
	if caps := c.multi("CAPA"); !strings.Contains(strings.Join(caps, " "), "SASL PLAIN") {
		t.Fatalf("capa %q", caps)
	}
	if got := c.cmd("STAT"); !strings.HasPrefix(got, "-ERR") {
		t.Fatalf("STAT before login: %q", got)
	}
	if got := c.cmd("PASS x"); !strings.HasPrefix(got, "-ERR") {
		t.Fatalf("PASS before USER: %q", got)
	}
	c.cmd("USER alice@example.org")
	if got := c.cmd("PASS alice-pw"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	if got := c.cmd("STAT"); !strings.HasPrefix(got, "+OK 1 ") {
		t.Fatalf("stat at the instance: %q", got)
	}
	if msg := c.multi("RETR 1"); !strings.Contains(strings.Join(msg, "\n"), "for alice") {
		t.Fatalf("retr: %q", msg)
	}
	if got := c.cmd("QUIT"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("quit: %q", got)
	}
	if !strings.Contains(cl.Inst1.Log.String(), `"fe1-`) {
		t.Errorf("store log lacks the session id")
	}
}

func TestAuthPlainFailuresAndUnavailable(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.MaxFailedLogins = 2 })
	c := dial(t, addr, nil)
	if got := c.cmd("AUTH PLAIN"); got != "+ " {
		t.Fatalf("continuation %q", got)
	}
	if got := c.cmd("*"); !strings.HasPrefix(got, "-ERR") {
		t.Fatalf("cancel %q", got)
	}
	if got := c.cmd("AUTH PLAIN " + plain("bob@example.org", "wrong")); got != "-ERR [AUTH] Invalid credentials" {
		t.Fatalf("wrong password: %q", got)
	}
	if got := c.cmd("AUTH PLAIN " + plain("bob@example.org", "bob-pw")); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	if got := c.cmd("STAT"); !strings.HasPrefix(got, "+OK 0 ") {
		t.Fatalf("stat: %q", got)
	}

	deadAddr := proxytest.DeadAddr(t)
	instances := map[string]config.InstanceRoute{cl.Inst1.FQDN: {Name: "inst1", POP3: deadAddr}, cl.Inst2.FQDN: cl.Inst2.Route()}
	addr = proxytest.StartProxy(t, cl, New, func(o *Options) { o.Instances = instances; o.MaxFailedLogins = 2 })
	c = dial(t, addr, nil)
	if got := c.cmd("AUTH PLAIN " + plain("alice@example.org", "alice-pw")); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Fatalf("dead instance: %q", got)
	}
	c.cmd("USER twice@example.org")
	c.cmd("PASS twice-pw")
	c.cmd("USER alice@example.org")
	c.cmd("PASS bad")
	if _, err := c.R.ReadString('\n'); err == nil {
		t.Fatal("session open after too many failed logins")
	}
}

func TestSecurityPOP3(t *testing.T) {
	cert := storetest.NewCert(t)
	cl := storetest.NewCluster(t, cert)
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) {
		o.TLSConfig, o.BackendTLS, o.MaxFailedLogins = cert.ServerConfig(), cert.ClientConfig(), 100
	})
	c := dial(t, addr, nil)
	if caps := c.multi("CAPA"); !strings.Contains(strings.Join(caps, " "), "STLS") || strings.Contains(strings.Join(caps, " "), "SASL") {
		t.Fatalf("capa before STLS %q", caps)
	}
	for _, line := range []string{"USER alice@example.org", "AUTH PLAIN " + plain("alice@example.org", "alice-pw")} {
		if got := c.cmd(line); !strings.HasPrefix(got, "-ERR [AUTH] Plaintext") {
			t.Fatalf("%s before STLS: %q", line, got)
		}
	}
	if got := c.cmd("STLS"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("STLS: %q", got)
	}
	tc := tls.Client(c.Conn, cert.ClientConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = &client{proxytest.NewClient(t, tc)}
	for _, name := range []string{"*", "*@example.org", "alice@example.org)(uid=*", `\`, ")("} {
		c.cmd("USER " + name)
		if got := c.cmd("PASS alice-pw"); got != "-ERR [AUTH] Invalid credentials" {
			t.Errorf("USER %q: %q", name, got)
		}
	}
	if got := c.cmd("AUTH PLAIN " + plain("alice@example.org\x00", "alice-pw")); !strings.HasPrefix(got, "-ERR [AUTH]") {
		t.Errorf("NUL in name: %q", got)
	}
	c.cmd("USER alice@example.org")
	if got := c.cmd("PASS"); got != "-ERR [AUTH] Invalid credentials" {
		t.Errorf("empty password: %q", got)
	}
	if n := cl.Directory.UserBinds(); n != 0 {
		t.Fatalf("%d user binds", n)
	}
	c.cmd("USER alice@example.org")
	if got := c.cmd("PASS alice-pw"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login over two TLS hops: %q", got)
	}
	if got := c.cmd("STAT"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("stat: %q", got)
	}
}

func TestPOP3BalancerHeaderAndLimits(t *testing.T) {
	cl := storetest.NewCluster(t, nil)
	trusted, _ := session.ParsePrefixes([]string{"127.0.0.0/8"})
	addr := proxytest.StartProxy(t, cl, New, func(o *Options) { o.TrustedBalancers = trusted; o.MaxPerClient = 1 })
	hb := proxytest.BalancerHeader(t, "203.0.113.5:1234", "127.0.0.1:110", "bal9-feedfacecafe")
	c := dial(t, addr, hb)
	if got := c.cmd("AUTH PLAIN " + plain("bob@example.org", "bob-pw")); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	c.cmd("STAT")
	if log := cl.Inst2.Log.String(); !strings.Contains(log, "bal9-feedfacecafe") || !strings.Contains(log, "203.0.113.5") {
		t.Fatalf("store log:\n%s", log)
	}
	c2 := dial(t, addr, hb)
	if got := c2.cmd("CAPA"); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Fatalf("second session of one client: %q", got)
	}
}

func TestParseCommand(t *testing.T) {
	for in, want := range map[string]string{"user a": "USER|a", "PASS a b c": "PASS|a b c", "CAPA": "CAPA|", "AUTH PLAIN x": "AUTH|PLAIN x"} {
		cmd, err := ParseCommand(in)
		if err != nil || cmd.Name+"|"+cmd.Rest != want {
			t.Errorf("%q: %+v %v", in, cmd, err)
		}
	}
	for _, in := range []string{"", "US", "USERS a", "U5ER a", "USER a\x00b", "PASS \x7f"} {
		if _, err := ParseCommand(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// FuzzPOP3Proxy runs the proxy's line reader and parser over arbitrary
// bytes: no panic, progress on every line, nothing beyond the limit.
func FuzzPOP3Proxy(f *testing.F) {
	for _, s := range []string{"CAPA\r\n", "USER alice@example.org\r\nPASS a b\r\n", "AUTH PLAIN AGEAYg==\r\n",
		"AUTH PLAIN\r\n*\r\n", "STLS\r\nUSER x\r\n", "QUIT\n", "USER a\x00b\r\n", "\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(strings.NewReader(string(data)), 16)
		for range len(data) + 1 {
			line, err := ReadLine(br, 64)
			if err != nil {
				return
			}
			if len(line) > 64 || strings.ContainsAny(line, "\n") {
				t.Fatalf("line %q", line)
			}
			cmd, err := ParseCommand(line)
			if err != nil {
				continue
			}
			if cmd.Name != strings.ToUpper(cmd.Name) || len(cmd.Name) < 3 || len(cmd.Name) > 4 || strings.ContainsAny(cmd.Rest, "\r\n\x00") {
				t.Fatalf("command %+v", cmd)
			}
			if _, _, ok := server.DecodePlain(cmd.Rest); ok && cmd.Name == "" {
				t.Fatal("unreachable")
			}
		}
		t.Fatal("no progress")
	})
}
