package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store/internal/testpeers"
	"github.com/mailfleet/mailfleet/runtime/store/proxyhdr"
)

// startInstance runs an instance in process on the config of
// writeTestConfig, changed by edit.
func startInstance(t *testing.T, edit func(*config.Store)) *Instance {
	t.Helper()
	cfg := &config.Store{}
	if err := config.Load(writeTestConfig(t, t.TempDir()), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Limits.FailedLoginDelay = config.Duration(time.Millisecond)
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	in, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Listen(); err != nil {
		t.Fatal(err)
	}
	in.Serve()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instance log:\n%s", log.String())
		}
	})
	t.Cleanup(func() { in.Shutdown(context.Background()) })
	return in
}

// sendFrom hands a message over the way a front-end router does: SMTP from
// a given local address; with client set, behind a PROXY v2 header that
// names the client and the router's session id.
func sendFrom(t *testing.T, local, addr, client, from string, rcpts []string, body string) error {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		// A front-end's header: the client, the session id, and the
		// account the session authenticated as (the sender here), unless
		// client ends in "!" (an unauthenticated session).
		tlvs := []proxyproto.TLV{{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte("fe-session-1")}}
		if c, unauth := strings.CutSuffix(client, "!"); unauth {
			client = c
		} else {
			tlvs = append(tlvs, proxyproto.TLV{Type: proxyhdr.TLVAuthenticated, Value: []byte(from)})
		}
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(client), Port: 40000}, conn.RemoteAddr())
		h.SetTLVs(tlvs)
		if _, err := h.WriteTo(conn); err != nil {
			t.Fatal(err)
		}
	}
	c := gosmtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("router.test"); err != nil {
		return err
	}
	return c.SendMail(from, rcpts, strings.NewReader(body))
}

// TestOutboundThroughRealMTA: an account's mail for outside domains,
// handed over from a trusted network, is delivered by MX lookup (served by
// BIND's named) to Postfix's smtp-sink; a recipient the receiver defers is
// retried with backoff and, after the retry period, the sender finds an
// RFC 3464 notification in its INBOX; a permanent refusal bounces at once.
func TestOutboundThroughRealMTA(t *testing.T) {
	testutil.Long(t)
	dnsAddr := testpeers.Addr(t, 53)
	okAddr, softAddr, hardAddr, deadAddr := testpeers.Addr(t, 25), testpeers.Addr(t, 25), testpeers.Addr(t, 25), testpeers.Addr(t, 25)
	testpeers.Named(t, dnsAddr,
		// The preferred exchanger is down: the next one gets the mail.
		testpeers.Zone{Origin: "good.test", Records: []string{"@ MX 5 down", "@ MX 10 mx", "down A " + deadAddr.String(), "mx A " + okAddr.String()}},
		testpeers.Zone{Origin: "soft.test", Records: []string{"@ MX 10 mx", "mx A " + softAddr.String()}},
		testpeers.Zone{Origin: "hard.test", Records: []string{"@ MX 10 mx", "mx A " + hardAddr.String()}})
	sink := testpeers.SMTPSink(t, okAddr)
	testpeers.SMTPSink(t, softAddr, "-r", "RCPT", "-b", "451 4.3.2 Try again later")
	testpeers.SMTPSink(t, hardAddr, "-f", "RCPT", "-B", "550 5.1.1 No such user here")

	in := startInstance(t, func(c *config.Store) {
		c.TrustedNetworks = []string{"127.0.0.1/32"}
		c.Resolver = config.Resolver{Nameservers: []config.Nameserver{{Address: dnsAddr.String()}}, Timeout: config.Duration(5 * time.Second)}
		c.RetryPeriod = config.Duration(4 * time.Second)
	})
	addrs := in.Addrs()
	const user = "user@example.org"
	const client = "203.0.113.7" // named in the PROXY header only: no traffic goes there

	// Only the trusted network may relay.
	untrusted := netip.AddrFrom4([4]byte{127, 0, 0, 2}).String()
	if err := sendFrom(t, untrusted, addrs["smtp"], "", user, []string{"friend@good.test"}, "Subject: x\r\n\r\nx\r\n"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("relay from an untrusted peer: %v", err)
	}

	// Nor may a trusted front-end's session that did not authenticate:
	// the front-end's mark is required.
	if err := sendFrom(t, "127.0.0.1", addrs["smtp"], client+"!", user, []string{"friend@good.test"}, "Subject: x\r\n\r\nx\r\n"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("relay for an unauthenticated session of a trusted front-end: %v", err)
	}

	// Delivered through the second MX.
	if err := sendFrom(t, "127.0.0.1", addrs["smtp"], client, user, []string{"friend@good.test"}, "Subject: to a friend\r\n\r\nhello over there\r\n"); err != nil {
		t.Fatalf("relay: %v", err)
	}
	testutil.Until(t, time.Minute, "delivery to smtp-sink", func() bool { n, _ := in.queue.Len(); return n == 0 })
	msgs := sink.Messages(t)
	if len(msgs) != 1 {
		t.Fatalf("smtp-sink got %d messages", len(msgs))
	}
	for _, want := range []string{"X-Mail-Args: <user@example.org>", "X-Rcpt-Args: <friend@good.test>",
		"Received: from router.test ([203.0.113.7])\n\tby store.test (mailfleet) with ESMTP id fe-session-1;", "Subject: to a friend", "hello over there"} {
		if !strings.Contains(msgs[0], want) {
			t.Fatalf("smtp-sink message lacks %q:\n%s", want, msgs[0])
		}
	}

	// Deferred, then given up; refused at once.
	if err := sendFrom(t, "127.0.0.1", addrs["smtp"], client, user, []string{"later@soft.test"}, "Subject: deferred one\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := sendFrom(t, "127.0.0.1", addrs["smtp"], client, user, []string{"nobody@hard.test"}, "Subject: refused one\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	// The deferred message stays queued and is tried again.
	testutil.Until(t, time.Minute, "a second attempt at later@soft.test", func() bool {
		envs, _ := in.queue.Entries()
		for _, e := range envs {
			if e.Recipients[0].Address == "later@soft.test" && e.Attempts >= 2 && e.Recipients[0].State == "pending" {
				if !strings.HasPrefix(e.Recipients[0].Status, "451 4.3.2") || !e.NextAttempt.After(e.Created) {
					t.Fatalf("deferred entry: %+v", e)
				}
				return true
			}
		}
		return false
	})
	testutil.Until(t, time.Minute, "the end of the retry period", func() bool { n, _ := in.queue.Len(); return n == 0 })

	// The sender reads both notifications over IMAP.
	c, err := imapclient.DialInsecure(addrs["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	bs := &goimap.FetchItemBodySection{Peek: true}
	fetched, err := c.Fetch(goimap.SeqSetNum(1, 2), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{bs}}).Collect()
	if err != nil || len(fetched) != 2 {
		t.Fatalf("INBOX: %d messages, %v", len(fetched), err)
	}
	dsns := map[string]dsnReport{}
	for _, m := range fetched {
		r := parseDSN(t, m.FindBodySection(bs))
		dsns[r.recipient["final-recipient"]] = r
	}
	soft, hard := dsns["rfc822; later@soft.test"], dsns["rfc822; nobody@hard.test"]
	if soft.recipient == nil || hard.recipient == nil {
		t.Fatalf("notifications for %v", dsns)
	}
	for field, want := range map[string]string{"action": "failed", "status": "4.3.2", "remote-mta": "dns; mx.soft.test",
		"diagnostic-code": "smtp; 451 4.3.2 Try again later"} {
		if soft.recipient[field] != want {
			t.Errorf("deferred recipient's %s = %q, want %q", field, soft.recipient[field], want)
		}
	}
	for field, want := range map[string]string{"action": "failed", "status": "5.1.1", "remote-mta": "dns; mx.hard.test",
		"diagnostic-code": "smtp; 550 5.1.1 No such user here"} {
		if hard.recipient[field] != want {
			t.Errorf("refused recipient's %s = %q, want %q", field, hard.recipient[field], want)
		}
	}
	if soft.reportingMTA != "dns; store.test" || !strings.Contains(soft.headers, "Subject: deferred one") || !strings.Contains(hard.headers, "Subject: refused one") {
		t.Errorf("notification parts: %+v %+v", soft, hard)
	}

	// The metrics saw it all.
	m := scrape(t, addrs["admin"])
	inst := `instance="ocf"`
	for series, want := range map[string]float64{
		`mailfleet_store_outbound_total{` + inst + `,outcome="sent"}`:                     1,
		`mailfleet_store_outbound_total{` + inst + `,outcome="failed"}`:                   2,
		`mailfleet_store_bounces_total{` + inst + `}`:                                     2,
		`mailfleet_store_queue_messages{` + inst + `}`:                                    0,
		`mailfleet_store_refusals_total{` + inst + `,proto="smtp",reason="relay_denied"}`: 2, // untrusted, and unauthenticated
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if m[`mailfleet_store_outbound_total{`+inst+`,outcome="deferred"}`] < 1 {
		t.Errorf("no deferred attempt counted")
	}
}

// dsnReport is what a test reads from an RFC 3464 notification.
type dsnReport struct {
	reportingMTA string
	recipient    map[string]string // the per-recipient fields, by lower-case name
	headers      string            // the returned header
}

// parseDSN checks the structure of a notification (multipart/report of
// report-type delivery-status: text, message/delivery-status,
// text/rfc822-headers) and returns its fields.
func parseDSN(t *testing.T, raw []byte) dsnReport {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ct, params, _ := e.Header.ContentType()
	if ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("notification is %s %v", ct, params)
	}
	mr := e.MultipartReader()
	var types []string
	var r dsnReport
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pt, _, _ := p.Header.ContentType()
		types = append(types, pt)
		body, _ := io.ReadAll(p.Body)
		switch pt {
		case "message/delivery-status":
			// Per-message fields, a blank line, then per-recipient fields.
			br := bufio.NewReader(bytes.NewReader(append(body, "\r\n"...)))
			msgFields, err := textproto.ReadHeader(br)
			if err != nil {
				t.Fatal(err)
			}
			r.reportingMTA = msgFields.Get("Reporting-Mta")
			rcptFields, err := textproto.ReadHeader(br)
			if err != nil {
				t.Fatal(err)
			}
			r.recipient = map[string]string{}
			for f := rcptFields.Fields(); f.Next(); {
				r.recipient[strings.ToLower(f.Key())] = f.Value()
			}
		case "text/rfc822-headers":
			r.headers = string(body)
		}
	}
	if fmt.Sprint(types) != "[text/plain message/delivery-status text/rfc822-headers]" {
		t.Fatalf("notification parts %v", types)
	}
	return r
}
