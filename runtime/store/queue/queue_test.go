package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mailfleet/mailfleet/runtime/store/internal/testcert"
)

// startDNS serves MX and A records for the test domains on 127.0.0.1:0.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Qtype == dns.TypeMX && q.Name == "remote.test.":
			m.Answer = append(m.Answer, &dns.MX{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 20, Mx: "mx2.remote.test."},
				&dns.MX{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 10, Mx: "mx1.remote.test."})
		case q.Qtype == dns.TypeA && (q.Name == "mx1.remote.test." || q.Name == "mx2.remote.test."):
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
		case q.Qtype == dns.TypeMX && q.Name == "nullmx.test.":
			m.Answer = append(m.Answer, &dns.MX{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 0, Mx: "."})
		case strings.HasSuffix(q.Name, "remote.test.") || q.Name == "nullmx.test.":
			// NOERROR, no data
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func resolverFor(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// sink is a receiving MTA: it accepts ok@, refuses bad@ with 550 and
// later@ with 451, and records what it accepted.
type sink struct {
	mu   sync.Mutex
	msgs []string
	tls  []bool
}

type sinkSession struct {
	s     *sink
	conn  *gosmtp.Conn
	rcpts []string
}

func (s *sinkSession) Reset()                                 { s.rcpts = nil }
func (s *sinkSession) Logout() error                          { return nil }
func (s *sinkSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "bad@"):
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	case strings.HasPrefix(to, "later@"):
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	_, tlsOn := s.conn.TLSConnectionState()
	s.s.mu.Lock()
	s.s.msgs = append(s.s.msgs, strings.Join(s.rcpts, ",")+"|"+string(b))
	s.s.tls = append(s.s.tls, tlsOn)
	s.s.mu.Unlock()
	return nil
}

func startSink(t *testing.T, withTLS bool) (*sink, int) {
	t.Helper()
	sk := &sink{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) { return &sinkSession{s: sk, conn: c}, nil }))
	srv.Domain = "mx.remote.test"
	srv.AllowInsecureAuth = true
	if withTLS {
		cert, _, _, err := testcert.New()
		if err != nil {
			t.Fatal(err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sk, l.Addr().(*net.TCPAddr).Port
}

type bounces struct {
	mu  sync.Mutex
	got map[string][]string
}

func (b *bounces) deliver(to string, msg []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got[to] = append(b.got[to], string(msg))
	return nil
}

func TestQueueDeliversRetriesAndBounces(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		dnsAddr := startDNS(t)
		sk, port := startSink(t, withTLS)
		dir := t.TempDir()
		b := &bounces{got: map[string][]string{}}
		opts := Options{Dir: dir, Hostname: "store.test", Resolver: resolverFor(dnsAddr), Port: port,
			RetryPeriod: time.Hour, MinBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond, Timeout: 10 * time.Second, Bounce: b.deliver}
		q, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("From: me@local.test\r\nSubject: out\r\n\r\nhello world\r\n")
		if _, err := q.Enqueue("me@local.test", []string{"ok@remote.test", "bad@remote.test", "later@remote.test", "x@nullmx.test"}, bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		// The queue survives a restart: a new Queue on the same directory.
		q, _ = Open(opts)
		if err := q.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(sk.msgs) != 1 || !strings.HasPrefix(sk.msgs[0], "ok@remote.test|") || !strings.Contains(sk.msgs[0], "hello world") {
			t.Fatalf("sink got %q", sk.msgs)
		}
		if sk.tls[0] != withTLS {
			t.Fatalf("TLS used = %v, want %v", sk.tls[0], withTLS)
		}
		envs, _ := q.Entries()
		if len(envs) != 1 || envs[0].Attempts != 1 {
			t.Fatalf("after one run: %+v", envs)
		}
		states := map[string]string{}
		for _, r := range envs[0].Recipients {
			states[r.Address] = r.State
		}
		if states["ok@remote.test"] != "sent" || states["bad@remote.test"] != "failed" || states["later@remote.test"] != "pending" || states["x@nullmx.test"] != "failed" {
			t.Fatalf("states %v", states)
		}
		if len(b.got) != 0 {
			t.Fatal("bounced before every recipient was final")
		}
		// The retry period ends: the next run gives up on later@ and sends
		// one notification for the three failures.
		opts.RetryPeriod = time.Nanosecond
		q, _ = Open(opts)
		if err := q.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if envs, _ := q.Entries(); len(envs) != 0 {
			t.Fatalf("queue not empty: %+v", envs)
		}
		if len(sk.msgs) != 1 {
			t.Fatalf("ok@ delivered twice: %d", len(sk.msgs))
		}
		dsns := b.got["me@local.test"]
		if len(dsns) != 1 {
			t.Fatalf("%d notifications", len(dsns))
		}
		d := dsns[0]
		for _, want := range []string{"multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; bad@remote.test",
			"Status: 5.1.1", "Final-Recipient: rfc822; later@remote.test", "Final-Recipient: rfc822; x@nullmx.test",
			"Action: failed", "Subject: out"} {
			if !strings.Contains(d, want) {
				t.Fatalf("DSN lacks %q:\n%s", want, d)
			}
		}
		if strings.Contains(d, "Final-Recipient: rfc822; ok@remote.test") {
			t.Fatal("DSN lists a delivered recipient")
		}
	}
}

func TestNullSenderIsNeverBounced(t *testing.T) {
	dnsAddr := startDNS(t)
	_, port := startSink(t, false)
	called := false
	q, _ := Open(Options{Dir: t.TempDir(), Hostname: "store.test", Resolver: resolverFor(dnsAddr), Port: port,
		RetryPeriod: time.Nanosecond, Bounce: func(string, []byte) error { called = true; return errors.New("no") }})
	q.Enqueue("", []string{"bad@remote.test"}, strings.NewReader("Subject: dsn\r\n\r\nx\r\n"))
	q.RunOnce(context.Background())
	if called {
		t.Fatal("a bounce was bounced")
	}
	if envs, _ := q.Entries(); len(envs) != 0 {
		t.Fatalf("entries left: %+v", envs)
	}
}

func TestDSNStatus(t *testing.T) {
	for status, want := range map[string]string{
		"550 5.1.1 no such user":                               "5.1.1",
		"552 5.2.2 mailbox full":                               "5.2.2",
		"556 5.1.10 domain accepts no mail":                    "5.1.10",
		"500 syntax error":                                     "5.0.0",
		"expired after 5d0h0m0s: 451 4.3.2 try later":          "4.3.2",
		"expired after 1h0m0s: dial tcp 127.4.5.6:25: refused": "4.4.7",
		"expired after 1h0m0s: DNS: lookup x.test: timeout":    "4.4.7",
	} {
		if got := dsnStatus(status); got != want {
			t.Errorf("dsnStatus(%q) = %s, want %s", status, got, want)
		}
	}
	if got := lastReply("expired after 4s: 451 4.3.2 Try again: later"); got != "451 4.3.2 Try again: later" {
		t.Errorf("lastReply = %q", got)
	}
}
