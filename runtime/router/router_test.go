package router

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory"
	"github.com/mailfleet/mailfleet/runtime/directory/slapdtest"
	"github.com/mailfleet/mailfleet/runtime/proxy/proxytest"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

type env struct {
	slapd      *slapdtest.Server
	inst1      *storetest.Instance
	inst2      *storetest.Instance
	instances  map[string]config.InstanceRoute
	dir        *directory.Directory
	routerAddr string
}

var accounts = []slapdtest.Account{
	{Address: "alice@example.org", Password: "alice-pw", MailHost: "inst1.backend.test"},
	{Address: "bob@example.org", Password: "bob-pw", MailHost: "inst2.backend.test"},
	{Address: "carol@example.org", Password: "carol-pw", MailHost: "inst1.backend.test"},
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	e := &env{slapd: slapdtest.Start(t, accounts)}
	e.inst1 = storetest.Start(t, storetest.Options{Name: "inst1", LDAP: e.slapd.Config(), Domains: []string{"example.org"}, TrustedNetworks: []string{"127.0.0.0/8"}})
	e.inst2 = storetest.Start(t, storetest.Options{Name: "inst2", LDAP: e.slapd.Config(), Domains: []string{"example.org"}, TrustedNetworks: []string{"127.0.0.0/8"}})
	e.instances = map[string]config.InstanceRoute{e.inst1.FQDN: e.inst1.Route(), e.inst2.FQDN: e.inst2.Route()}
	d, err := directory.New(directory.Options{LDAP: e.slapd.Config(), Instances: e.instances})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	e.dir = d
	opts := Options{Hostname: "fe1.test", Node: "fe1", Directory: d, Instances: e.instances, Domains: []string{"example.org"},
		Routing: true, BackendTimeout: 5 * time.Second, FailedLoginDelay: time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	e.routerAddr = startRouter(t, opts)
	return e
}

func startRouter(t *testing.T, opts Options) string {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return proxytest.Serve(t, r)
}

func dial(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.CommandTimeout = 20 * time.Second
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func message(subject string) string {
	return fmt.Sprintf("From: sender@outside.test\r\nTo: someone\r\nSubject: %s\r\n\r\nbody of %s\r\n", subject, subject)
}

func send(c *smtp.Client, from string, rcpts []string, body string) (accepted []string, err error) {
	if err := c.Mail(from, nil); err != nil {
		return nil, err
	}
	var rcptErrs []error
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			rcptErrs = append(rcptErrs, fmt.Errorf("%s: %w", r, err))
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		c.Reset()
		return nil, errors.Join(rcptErrs...)
	}
	w, err := c.Data()
	if err != nil {
		return nil, err
	}
	w.Write([]byte(body))
	if err := w.Close(); err != nil {
		return nil, err
	}
	return accepted, errors.Join(rcptErrs...)
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestRouterSendsEachRecipientHome: one transaction takes recipients of one
// instance; the other gets 452 4.5.3 and is sent in a second one; every
// message lands only in its account's own instance.
func TestRouterSendsEachRecipientHome(t *testing.T) {
	e := newEnv(t, nil)
	c := dial(t, e.routerAddr)
	acc, err := send(c, "sender@outside.test", []string{"alice@example.org", "bob@example.org", "carol@example.org"}, message("one"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 5, 3}) {
		t.Fatalf("bob in alice's transaction: %v", err)
	}
	if strings.Join(acc, ",") != "alice@example.org,carol@example.org" {
		t.Fatalf("accepted %v", acc)
	}
	if acc, err := send(c, "sender@outside.test", []string{"bob@example.org"}, message("two")); err != nil || len(acc) != 1 {
		t.Fatalf("second transaction: %v %v", acc, err)
	}
	c.Quit()
	for _, w := range []struct {
		in   *storetest.Instance
		addr string
		n    int
	}{{e.inst1, "alice@example.org", 1}, {e.inst1, "carol@example.org", 1}, {e.inst1, "bob@example.org", 0},
		{e.inst2, "bob@example.org", 1}, {e.inst2, "alice@example.org", 0}, {e.inst2, "carol@example.org", 0}} {
		if got := w.in.Messages(w.addr); got != w.n {
			t.Errorf("%s has %d messages for %s, want %d", w.in.Name, got, w.addr, w.n)
		}
	}
	// The store saw the client's address and the router's session id.
	if log := e.inst1.Log.String(); !strings.Contains(log, `fe1-`) {
		t.Errorf("store log has no front-end session id:\n%s", log)
	}
}

func TestRouterUnknownRecipientAndDefaultRoute(t *testing.T) {
	e := newEnv(t, nil)
	c := dial(t, e.routerAddr)
	_, err := send(c, "sender@outside.test", []string{"nobody@example.org"}, message("x"))
	if code(err) != 550 || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("unknown recipient: %v", err)
	}
	// With a default route, that instance decides (here: it has no such
	// account either, and says so).
	addr := startRouter(t, Options{Directory: e.dir, Instances: e.instances, DefaultRoute: e.inst2.FQDN,
		Domains: []string{"example.org"}, Routing: true})
	c2 := dial(t, addr)
	_, err = send(c2, "sender@outside.test", []string{"nobody@example.org"}, message("x"))
	if code(err) != 550 || !strings.Contains(err.Error(), "No such user here") {
		t.Fatalf("default route: %v", err)
	}
}

func TestRouterInstanceDownIs451(t *testing.T) {
	e := newEnv(t, nil)
	deadAddr := proxytest.DeadAddr(t)
	instances := map[string]config.InstanceRoute{e.inst1.FQDN: {Name: "inst1", SMTP: deadAddr}, e.inst2.FQDN: e.inst2.Route()}
	addr := startRouter(t, Options{Directory: e.dir, Instances: instances, Domains: []string{"example.org"}, Routing: true,
		BackendTimeout: 2 * time.Second})
	c := dial(t, addr)
	_, err := send(c, "sender@outside.test", []string{"alice@example.org"}, message("x"))
	if code(err) != 451 {
		t.Fatalf("home instance down: %v", err)
	}
	// Bob's instance is up: his mail still goes.
	if _, err := send(c, "sender@outside.test", []string{"bob@example.org"}, message("y")); err != nil {
		t.Fatal(err)
	}
	if e.inst2.Messages("bob@example.org") != 1 {
		t.Fatal("bob's message missing")
	}
}

// TestSecurityNoOpenRelay: outside domains are refused without
// authentication; AUTH is not offered before STARTTLS when TLS is
// configured; an authenticated account's outside mail goes to its own
// instance's queue.
func TestSecurityNoOpenRelay(t *testing.T) {
	cert := storetest.NewCert(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = cert.ServerConfig() })
	c := dial(t, e.routerAddr)
	for _, rcpt := range []string{"someone@elsewhere.test", "alice@example.org.elsewhere.test", "x@[127.0.0.1]"} {
		_, err := send(c, "alice@example.org", []string{rcpt}, message("relay"))
		if code(err) != 550 {
			t.Fatalf("relay to %s without auth: %v", rcpt, err)
		}
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered before STARTTLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err == nil {
		t.Fatal("AUTH accepted before STARTTLS")
	}
	c.Quit()

	tc := cert.ClientConfig()
	c2, err := smtp.DialStartTLS(e.routerAddr, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong")); code(err) != 535 {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c2.Auth(sasl.NewPlainClient("", "alice@example.org", "")); err == nil {
		t.Fatal("empty password accepted")
	}
	if err := c2.Auth(sasl.NewLoginClient("alice@example.org", "alice-pw")); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	queued := e.inst1.Queued()
	if _, err := send(c2, "alice@example.org", []string{"someone@elsewhere.test"}, message("out")); err != nil {
		t.Fatalf("authenticated relay: %v", err)
	}
	if e.inst1.Queued() <= queued || e.inst2.Queued() != 0 {
		t.Fatalf("queue: inst1 %d (was %d), inst2 %d", e.inst1.Queued(), queued, e.inst2.Queued())
	}
	for _, rcpt := range []string{"x@[127.0.0.1]", "x@[IPv6:::1]"} {
		if _, err := send(c2, "alice@example.org", []string{rcpt}, message("literal")); code(err) != 550 {
			t.Errorf("authenticated mail to the address literal %s: %v, want 550", rcpt, err)
		}
	}
}

func TestRouterLMTP(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LMTP = true })
	c := dial(t, e.routerAddr)
	if _, err := send(c, "sender@outside.test", []string{"bob@example.org"}, message("lmtp")); err != nil {
		t.Fatal(err)
	}
	if e.inst2.Messages("bob@example.org") != 1 {
		t.Fatal("message missing")
	}
	// One recipient per transaction over LMTP: the instance answers each
	// recipient at the end of DATA, the sender gets one answer, so a second
	// recipient (even of the same instance) waits for the next transaction.
	accepted, err := send(c, "sender@outside.test", []string{"alice@example.org", "carol@example.org"}, message("two"))
	var se *smtp.SMTPError
	if len(accepted) != 1 || accepted[0] != "alice@example.org" || !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 5, 3}) {
		t.Fatalf("accepted %v, err %v; want alice only and 452 4.5.3 for carol", accepted, err)
	}
	if _, err := send(c, "sender@outside.test", []string{"carol@example.org"}, message("two")); err != nil {
		t.Fatal(err)
	}
	if e.inst1.Messages("alice@example.org") != 1 || e.inst1.Messages("carol@example.org") != 1 {
		t.Fatal("each recipient must have the message exactly once")
	}
}

func TestRouterBackendTLS(t *testing.T) {
	cert := storetest.NewCert(t)
	slapd := slapdtest.Start(t, accounts)
	inst := storetest.Start(t, storetest.Options{Name: "inst1", LDAP: slapd.Config(), Domains: []string{"example.org"},
		TrustedNetworks: []string{"127.0.0.0/8"}, TLS: cert})
	instances := map[string]config.InstanceRoute{inst.FQDN: inst.Route()}
	d, _ := directory.New(directory.Options{LDAP: slapd.Config(), Instances: instances})
	defer d.Close()
	addr := startRouter(t, Options{Directory: d, Instances: instances, Domains: []string{"example.org"}, Routing: true,
		BackendTLS: cert.ClientConfig()})
	c := dial(t, addr)
	if _, err := send(c, "sender@outside.test", []string{"alice@example.org"}, message("tls")); err != nil {
		t.Fatal(err)
	}
	if inst.Messages("alice@example.org") != 1 {
		t.Fatal("message missing")
	}
}

func TestRouterLimits(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxConnections = 1 })
	c := dial(t, e.routerAddr)
	defer c.Close()
	nc, err := net.Dial("tcp", e.routerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, _ := nc.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 ") {
		t.Fatalf("second connection over the limit: %q", buf[:n])
	}
}

// TestUnicodeDomainIsForeign: U+0130 (İ) lower-cases to "i" in Unicode,
// which once made "maİlfleet.test" the local "mailfleet.test" and let an
// unauthenticated client relay; domains compare in their IDNA form, so it
// is a foreign domain: relaying denied (5.7.1), not a lookup of a local
// user.
func TestUnicodeDomainIsForeign(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Domains = append(o.Domains, "mailfleet.test") })
	c := dial(t, e.routerAddr)
	defer c.Close()
	for _, rcpt := range []string{"alice@maİlfleet.test", "alice@MAİLFLEET.TEST"} {
		_, err := send(c, "x@elsewhere.test", []string{rcpt}, message("unicode"))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
			t.Errorf("RCPT %s without auth: %v, want 550 5.7.1 (relaying denied)", rcpt, err)
		}
	}
	// The local domain in any ASCII case is still local: an unknown user
	// there is a 5.1.1, not a relay refusal.
	_, err := send(c, "x@elsewhere.test", []string{"nobody@MailFleet.TEST"}, message("ascii"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("an unknown user of the local domain: %v, want 5.1.1", err)
	}
}

// TestFailedAuthEndsSession: the third failed AUTH of a session is
// answered 421 and the connection is closed (20 on one connection were
// once allowed, followed by success); the right password on a new
// connection still works.
func TestFailedAuthEndsSession(t *testing.T) {
	cert := storetest.NewCert(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = cert.ServerConfig() })
	c, err := smtp.DialStartTLS(e.routerAddr, cert.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 1; i <= 2; i++ {
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong")); code(err) != 535 {
			t.Fatalf("failed AUTH %d: %v, want 535", i, err)
		}
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong")); code(err) != 421 {
		t.Fatalf("third failed AUTH: %v, want 421", err)
	}
	testutil.Eventually(t, time.Minute, "the connection closed", func() error {
		if err := c.Noop(); err == nil {
			return errors.New("NOOP still answered")
		}
		return nil
	})
	c2, err := smtp.DialStartTLS(e.routerAddr, cert.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
		t.Errorf("the right password on a new connection: %v", err)
	}
}

// TestSenderLoginMismatch: an authenticated user sends as itself only
// (any letter case; the null sender too), not as ceo@bank.example.
func TestSenderLoginMismatch(t *testing.T) {
	cert := storetest.NewCert(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = cert.ServerConfig() })
	c, err := smtp.DialStartTLS(e.routerAddr, cert.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"ceo@bank.example", "bob@example.org", "alice@example.org.evil.test", "alİce@example.org"} {
		err := c.Mail(from, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 553 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
			t.Errorf("MAIL FROM:<%s> as alice: %v, want 553 5.7.1", from, err)
		}
		c.Reset()
	}
	for _, from := range []string{"ALICE@Example.ORG", ""} {
		if err := c.Mail(from, nil); err != nil {
			t.Errorf("MAIL FROM:<%s> as alice: %v, want accepted", from, err)
		}
		c.Reset()
	}
}

// TestClientFaultsAreNotBackendFaults: a CR in MAIL FROM is the client's
// error (5xx), and a client that goes away in the middle of DATA leaves
// the instance up in the metrics; neither counts a backend failure.
func TestClientFaultsAreNotBackendFaults(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(o *Options) { o.Metrics = session.NewMetrics(reg) })
	counter := func(name, label string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if label == "" || lp.GetValue() == label {
						total += m.GetCounter().GetValue()
						break
					}
				}
			}
		}
		return total
	}
	raw := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", e.routerAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		return c, bufio.NewReader(c)
	}
	expect := func(c net.Conn, r *bufio.Reader, cmd, want string) string {
		t.Helper()
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%q: %v", cmd, err)
			}
			if len(l) < 4 || l[3] != '-' {
				if !strings.HasPrefix(l, want) {
					t.Fatalf("%q: %q, want %s", cmd, l, want)
				}
				return l
			}
		}
	}
	c, r := raw()
	expect(c, r, "", "220")
	expect(c, r, "EHLO client.test", "250")
	expect(c, r, "MAIL FROM:<x\rspoof@example.org>", "5")
	expect(c, r, "MAIL FROM:<x@remote.test>", "250")
	expect(c, r, "RCPT TO:<bob@example.org>", "250")
	expect(c, r, "DATA", "354")
	fmt.Fprintf(c, "Subject: cut\r\n\r\nthe client goes away here")
	c.Close()
	// A later transaction still works, and nothing counted the instance
	// down.
	c2, r2 := raw()
	defer c2.Close()
	expect(c2, r2, "", "220")
	expect(c2, r2, "EHLO client.test", "250")
	expect(c2, r2, "MAIL FROM:<x@remote.test>", "250")
	expect(c2, r2, "RCPT TO:<bob@example.org>", "250")
	expect(c2, r2, "DATA", "354")
	fmt.Fprintf(c2, "Subject: whole\r\n\r\nhi\r\n.\r\n")
	expect(c2, r2, "", "250")
	testutil.Eventually(t, time.Minute, "the aborted DATA counted as the client's", func() error {
		if counter("mailfleet_frontend_messages_total", "client_aborted") < 1 {
			return errors.New("not yet")
		}
		return nil
	})
	if n := counter("mailfleet_frontend_backend_failures_total", ""); n != 0 {
		t.Errorf("%v backend failures counted for client faults", n)
	}
}
