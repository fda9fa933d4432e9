package balancer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
)

// openHeld opens n connections through addr one after another and keeps
// them open; it returns how many each backend got.
func openHeld(t *testing.T, addr string, n int) (map[string]int, []*client) {
	t.Helper()
	counts := map[string]int{}
	var cs []*client
	for i := 0; i < n; i++ {
		c := dial(t, addr)
		counts[c.backendName()]++
		cs = append(cs, c)
	}
	return counts, cs
}

func waitAllUp(t *testing.T, b *Balancer, svc string, bes ...*testBackend) {
	t.Helper()
	for _, be := range bes {
		waitState(t, b, svc, be.name, "up")
	}
}

func TestLeastConnSpreadsLongLivedConnections(t *testing.T) {
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	b2 := newTestBackend(t, "b2", "imap", "127.0.0.3", false)
	b3 := newTestBackend(t, "b3", "imap", "127.0.0.4", false)
	b, _ := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1, b2, b3)))
	waitAllUp(t, b, "imap", b1, b2, b3)
	addr := b.Addrs()["imap"]

	counts, held := openHeld(t, addr, 30)
	if counts["b1"] != 10 || counts["b2"] != 10 || counts["b3"] != 10 {
		t.Fatalf("30 long-lived connections spread as %v, want 10 each", counts)
	}
	// Free b1's ten: least_conn now sends the next ten all to b1, where
	// round robin would spread them.
	for _, c := range held {
		if c.backendName() == "b1" {
			c.Close()
		}
	}
	testutil.Until(t, time.Minute, "b1 to have no connections", func() bool { return backendState(b, "imap", "b1").Active == 0 })
	counts, _ = openHeld(t, addr, 10)
	if counts["b1"] != 10 {
		t.Fatalf("after b1 was freed, 10 connections went %v, want all to b1", counts)
	}
	// Short connections (one at a time) take the tied backends in turn.
	for _, c := range held {
		c.Close()
	}
}

func TestWeightedLeastConnFollowsWeights(t *testing.T) {
	b1 := newTestBackend(t, "b1", "pop3", "127.0.0.2", false)
	b2 := newTestBackend(t, "b2", "pop3", "127.0.0.3", false)
	svc := svcCfg("pop3", "pop3", "127.0.0.10:0", "weighted_least_conn", health, b1, b2)
	svc.Backends[1].Weight = 3
	b, _ := startBalancer(t, balancerConfig(svc))
	waitAllUp(t, b, "pop3", b1, b2)

	counts, _ := openHeld(t, b.Addrs()["pop3"], 40)
	if counts["b1"] != 10 || counts["b2"] != 30 {
		t.Fatalf("40 connections with weights 1:3 went %v, want 10:30", counts)
	}
}

func TestRoundRobinCycles(t *testing.T) {
	b1 := newTestBackend(t, "b1", "smtp", "127.0.0.2", false)
	b2 := newTestBackend(t, "b2", "smtp", "127.0.0.3", false)
	b3 := newTestBackend(t, "b3", "smtp", "127.0.0.4", false)
	b, _ := startBalancer(t, balancerConfig(svcCfg("smtp", "smtp", "127.0.0.10:0", "round_robin", health, b1, b2, b3)))
	waitAllUp(t, b, "smtp", b1, b2, b3)
	addr := b.Addrs()["smtp"]

	var got []string
	for i := 0; i < 9; i++ {
		c := dial(t, addr)
		got = append(got, c.backendName())
		c.Close()
	}
	if want := "b1 b2 b3 b1 b2 b3 b1 b2 b3"; strings.Join(got, " ") != want {
		t.Fatalf("round robin went %v, want %s", got, want)
	}

	// With weights 1:2 it interleaves: b1 b2 b2, in some order, per cycle.
	cfg := balancerConfig(svcCfg("smtp", "smtp", "127.0.0.10:0", "round_robin", health, b1, b2))
	cfg.Services[0].Backends[1].Weight = 2
	if err := b.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := 0; i < 9; i++ {
		c := dial(t, addr)
		counts[c.backendName()]++
		c.Close()
	}
	if counts["b1"] != 3 || counts["b2"] != 6 {
		t.Fatalf("weighted round robin 1:2 went %v, want 3:6", counts)
	}
}

// TestFailedBackendStopsTakingConnections kills, hangs or breaks one of
// two front-ends while clients keep connecting: no client fails once it
// is marked down (a dead one costs no client anything even before, since a
// refused connect goes to the next backend), and it returns after rise
// good checks.
func TestFailedBackendStopsTakingConnections(t *testing.T) {
	testutil.Long(t)
	for _, mode := range []string{"killed", "hung", "bad_greeting"} {
		t.Run(mode, func(t *testing.T) {
			b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
			b2 := newTestBackend(t, "b2", "imap", "127.0.0.3", false)
			hc := health
			hc.Timeout = config.Duration(500 * time.Millisecond) // how long a hung one gets
			b, logs := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", hc, b1, b2)))
			waitAllUp(t, b, "imap", b1, b2)
			addr := b.Addrs()["imap"]

			failures, afterDown, toB2AfterDown := 0, 0, 0
			down := false
			for i := 0; i < 200; i++ {
				if i == 50 {
					switch mode {
					case "killed":
						b2.kill()
					case "hung":
						b2.setHung(true)
					case "bad_greeting":
						b2.setGreeting("pop3") // +OK on an IMAP service
					}
					if mode != "killed" {
						// Clients sent to a hung or misgreeting backend
						// before it is marked down would fail (or wait
						// for a greeting); the test is about those after.
						waitState(t, b, "imap", "b2", "down")
					}
				}

				isDown := backendState(b, "imap", "b2").State == "down"
				down = down || isDown
				c, err := dialFrom("", addr)
				ok := err == nil && strings.HasPrefix(c.greeting, "* OK ")
				if c != nil {
					c.Close()
				}
				if !ok {
					failures++
					if isDown {
						afterDown++
					}
				}
				if ok && isDown && c.backendName() == "b2" {
					toB2AfterDown++
				}
			}
			if !down {
				waitState(t, b, "imap", "b2", "down")
			}
			if afterDown != 0 || toB2AfterDown != 0 {
				t.Errorf("once b2 was down: %d client connections failed, %d went to b2", afterDown, toB2AfterDown)
			}
			if mode == "killed" && failures != 0 {
				t.Errorf("%d of 200 client connections failed while a backend was killed", failures)
			}
			if len(logs.records("backend down")) == 0 {
				t.Errorf("no \"backend down\" log")
			}

			// Healthy again: back after rise checks, and it takes clients.
			switch mode {
			case "killed":
				b2.start()
			case "hung":
				b2.setHung(false)
			case "bad_greeting":
				b2.setGreeting("imap")
			}
			waitState(t, b, "imap", "b2", "up")
			counts, _ := openHeld(t, addr, 4)
			if counts["b2"] == 0 {
				t.Fatalf("b2 takes no connections after it came back: %v", counts)
			}
		})
	}
}

// TestRefusedConnectGoesToNextBackend: a backend that refuses a client's
// connect before any check noticed costs the client nothing.
func TestRefusedConnectGoesToNextBackend(t *testing.T) {
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	b2 := newTestBackend(t, "b2", "imap", "127.0.0.3", false)
	hc := health
	// Only the first check, then none until a client's failed connect
	// asks for one, and the fast ones that follow a failure.
	hc.Interval = config.Duration(time.Hour)
	hc.FastInterval = config.Duration(50 * time.Millisecond)
	b, _ := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "round_robin", hc, b1, b2)))
	waitAllUp(t, b, "imap", b1, b2)
	b2.kill()
	for i := 0; i < 10; i++ {
		c := dial(t, b.Addrs()["imap"])
		if c.backendName() != "b1" {
			t.Fatalf("connection %d went to %q", i, c.backendName())
		}
		c.Close()
	}
	if n := b.backendEntries()[1].be.connectFailed.Load(); n == 0 {
		t.Fatalf("b2 was never tried")
	}
	// The failed connect asked for a check; its failure, for fast ones.
	waitState(t, b, "imap", "b2", "down")
}

func TestNoBackendRefusesInProtocol(t *testing.T) {
	b1 := newTestBackend(t, "b1", "smtp", "127.0.0.2", false)
	b, _ := startBalancer(t, balancerConfig(svcCfg("smtp", "smtp", "127.0.0.10:0", "least_conn", health, b1)))
	waitAllUp(t, b, "smtp", b1)
	b1.kill()
	waitState(t, b, "smtp", "b1", "down")
	c := dial(t, b.Addrs()["smtp"])
	if !strings.HasPrefix(c.greeting, "421 4.3.2 ") {
		t.Fatalf("greeting with no backend: %q", c.greeting)
	}
	if _, err := c.br.ReadString('\n'); err != io.EOF {
		t.Fatalf("after the refusal: %v, want EOF", err)
	}
}

func TestProxyProtocolV2CarriesClientAndSessionID(t *testing.T) {
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", true)
	b, logs := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1)))
	// Health checks pass although the backend wants a header first: they
	// send a LOCAL one.
	waitAllUp(t, b, "imap", b1)
	addr := b.Addrs()["imap"]

	var clients []*client
	for _, ip := range []string{"127.0.0.7", "127.0.0.8"} {
		c, err := dialFrom(ip, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.echo("a NOOP"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	hs := b1.proxyHeaders()
	if len(hs) != 2 {
		t.Fatalf("%d PROXY headers, want 2", len(hs))
	}
	ids := map[string]bool{}
	for i, h := range hs {
		if h.Version != 2 || h.TransportProtocol != proxyproto.TCPv4 {
			t.Errorf("header %d: version %d, %v", i, h.Version, h.TransportProtocol)
		}
		if got, want := h.SourceAddr.String(), clients[i].LocalAddr().String(); got != want {
			t.Errorf("header %d names client %s, want %s", i, got, want)
		}
		if got, want := h.DestinationAddr.String(), addr; got != want {
			t.Errorf("header %d names destination %s, want %s", i, got, want)
		}
		tlvs, err := h.TLVs()
		if err != nil {
			t.Fatal(err)
		}
		id := ""
		for _, tlv := range tlvs {
			if tlv.Type == proxyproto.PP2_TYPE_UNIQUE_ID {
				id = string(tlv.Value)
			}
		}
		if len(id) < 16 || ids[id] {
			t.Errorf("header %d: session id %q is missing or not unique", i, id)
		}
		ids[id] = true
	}
	for _, c := range clients {
		c.Close()
	}
	testutil.Until(t, time.Minute, "session logs", func() bool { return len(logs.records("session")) == 2 })
	for _, r := range logs.records("session") {
		if !ids[r["session"].(string)] || r["backend"] != "b1" || r["service"] != "imap" {
			t.Errorf("session log %v does not carry a forwarded session id", r)
		}
	}
}

func TestLimitsRefuseCleanly(t *testing.T) {
	b1 := newTestBackend(t, "b1", "pop3", "127.0.0.2", false)
	cfg := balancerConfig(svcCfg("pop3", "pop3", "127.0.0.10:0", "least_conn", health, b1))
	cfg.Limits = config.Limits{MaxConnections: 4, MaxPerClient: 2}
	b, _ := startBalancer(t, cfg)
	waitAllUp(t, b, "pop3", b1)
	addr := b.Addrs()["pop3"]

	open := func(ip string) *client {
		t.Helper()
		c, err := dialFrom(ip, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	refused := func(c *client, why string) {
		t.Helper()
		if !strings.HasPrefix(c.greeting, "-ERR [SYS/TEMP] ") {
			t.Fatalf("%s: greeting %q, want a clean refusal", why, c.greeting)
		}
		if _, err := c.br.ReadString('\n'); err != io.EOF {
			t.Fatalf("%s: after the refusal: %v, want EOF", why, err)
		}
	}
	a1, a2 := open("127.0.0.7"), open("127.0.0.7")
	for _, c := range []*client{a1, a2} {
		if c.backendName() != "b1" {
			t.Fatalf("greeting %q", c.greeting)
		}
	}
	refused(open("127.0.0.7"), "third from one client")
	// Another client is not affected.
	if c := open("127.0.0.8"); c.backendName() != "b1" {
		t.Fatalf("other client: %q", c.greeting)
	}
	open("127.0.0.9")
	refused(open("127.0.0.11"), "fifth in total")
	// A freed slot is taken again.
	a1.Close()
	testutil.Until(t, time.Minute, "a slot to be freed", func() bool { return b.limiter.open() == 3 })
	if c := open("127.0.0.7"); c.backendName() != "b1" {
		t.Fatalf("after a close: %q", c.greeting)
	}
}

func TestReloadAddsRemovesAndDrains(t *testing.T) {
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	b2 := newTestBackend(t, "b2", "imap", "127.0.0.3", false)
	p1 := newTestBackend(t, "p1", "pop3", "127.0.0.4", false)
	b, logs := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1)))
	waitAllUp(t, b, "imap", b1)
	imapAddr := b.Addrs()["imap"]
	old := dial(t, imapAddr)

	// b1 leaves, b2 and a POP3 service arrive.
	if err := b.Reload(balancerConfig(
		svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b2),
		svcCfg("pop3", "pop3", "127.0.0.11:0", "least_conn", health, p1))); err != nil {
		t.Fatal(err)
	}
	if got := b.Addrs()["imap"]; got != imapAddr {
		t.Fatalf("the kept service moved from %s to %s", imapAddr, got)
	}
	if st := backendState(b, "imap", "b1"); !st.Draining || st.Active != 1 {
		t.Fatalf("b1 after removal: %+v, want draining with 1 connection", st)
	}
	// The old session goes on.
	if err := old.echo("a NOOP"); err != nil {
		t.Fatalf("session on the removed backend: %v", err)
	}
	waitAllUp(t, b, "imap", b2)
	for i := 0; i < 3; i++ {
		if c := dial(t, imapAddr); c.backendName() != "b2" {
			t.Fatalf("new connection went to %q", c.backendName())
		}
	}
	waitAllUp(t, b, "pop3", p1)
	if c := dial(t, b.Addrs()["pop3"]); c.backendName() != "p1" {
		t.Fatalf("new service: %q", c.greeting)
	}
	// The drained backend disappears once its last session ends.
	old.Close()
	testutil.Until(t, time.Minute, "b1 to drain", func() bool { return backendState(b, "imap", "b1").State == "absent" })
	if len(logs.records("backend drained")) != 1 {
		t.Fatalf("no drained log")
	}

	// The POP3 service leaves: its listener closes.
	pop3Addr := b.Addrs()["pop3"]
	if err := b.Reload(balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b2))); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", pop3Addr, 10*time.Second); err == nil {
		t.Fatalf("removed service still accepts")
	}

	// A listener that cannot be bound fails the reload and keeps the old.
	taken, err := net.Listen("tcp", "127.0.0.12:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = b.Reload(balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b2),
		svcCfg("smtp", "smtp", taken.Addr().String(), "least_conn", health, p1)))
	if err == nil {
		t.Fatalf("reload onto a taken address succeeded")
	}
	if c := dial(t, imapAddr); c.backendName() != "b2" {
		t.Fatalf("after a failed reload: %q", c.greeting)
	}
}

func TestIdleTimeout(t *testing.T) {
	testutil.Long(t)
	if runtime.GOOS != "linux" {
		t.Skip("the idle timeout reads TCP_INFO")
	}
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	cfg := balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1))
	cfg.Limits.IdleTimeout = config.Duration(2 * time.Second)
	b, logs := startBalancer(t, cfg)
	waitAllUp(t, b, "imap", b1)

	// A session that talks is not cut although it lasts longer.
	busy := dial(t, b.Addrs()["imap"])
	for i := 0; i < 30; i++ { // 3 s, a pause of 100 ms after each line
		if err := busy.echo("a NOOP"); err != nil {
			t.Fatalf("busy session cut: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A silent one is.
	quiet := dial(t, b.Addrs()["imap"])
	if _, err := quiet.br.ReadString('\n'); err != io.EOF {
		t.Fatalf("quiet session: %v, want EOF", err)
	}
	found := false
	for _, r := range logs.records("session") {
		found = found || r["end"] == "idle_timeout"
	}
	if !found {
		t.Fatalf("no session ended with idle_timeout")
	}
}

// TestHalfClose: a client that shuts down its sending side still gets
// the rest of the backend's answer.
func TestHalfClose(t *testing.T) {
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	b, _ := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1)))
	waitAllUp(t, b, "imap", b1)
	c := dial(t, b.Addrs()["imap"])
	big := strings.Repeat("x", 1<<20)
	go func() {
		c.Write([]byte(big + "\r\n"))
		c.Conn.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c.br)
	if err != nil || string(got) != big+"\r\n" {
		t.Fatalf("after half-close got %d bytes, %v", len(got), err)
	}
}

// TestListenOnAddressNotHeld: the backup of a VRRP pair listens on VIPs it
// does not hold (IP_FREEBIND).
func TestListenOnAddressNotHeld(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("IP_FREEBIND is Linux only")
	}
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	// 192.0.2.0/24 is TEST-NET-1: on no interface here, and no packet is sent.
	b, _ := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "192.0.2.25:0", "least_conn", health, b1)))
	if !strings.HasPrefix(b.Addrs()["imap"], "192.0.2.25:") {
		t.Fatalf("listening on %s", b.Addrs()["imap"])
	}
}

func TestAdminHealthzAndMetrics(t *testing.T) {
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	b2 := newTestBackend(t, "b2", "imap", "127.0.0.3", false)
	b, _ := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1, b2)))
	waitAllUp(t, b, "imap", b1, b2)
	c := dial(t, b.Addrs()["imap"])
	admin := "http://" + b.Addrs()["admin"]

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"state":"up"`) {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	_, body := get("/metrics")
	for _, want := range []string{
		`mailfleet_balancer_backend_up{backend="b1",service="imap"} 1`,
		`mailfleet_balancer_backend_connections_active{backend="` + c.backendName() + `",service="imap"} 1`,
		`mailfleet_balancer_backend_connections_total{backend="` + c.backendName() + `",service="imap"} 1`,
		`mailfleet_balancer_health_check_seconds_count{backend="b2",service="imap"}`,
		`mailfleet_balancer_connections_active 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	b1.kill()
	b2.kill()
	waitState(t, b, "imap", "b1", "down")
	waitState(t, b, "imap", "b2", "down")
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with every backend down: %d", code)
	}
	dial(t, b.Addrs()["imap"]) // refused
	if _, body := get("/metrics"); !strings.Contains(body, `mailfleet_balancer_refused_total{reason="no_backend",service="imap"} 1`) {
		t.Errorf("/metrics lacks the refusal:\n%s", body)
	}
}

func TestCheckGreeting(t *testing.T) {
	for _, tc := range []struct {
		protocol, line string
		ok             bool
	}{
		{"imap", "* OK [CAPABILITY IMAP4rev1] ready\r\n", true},
		{"imap", "* OK\r\n", true},
		{"imap", "* BYE shutting down\r\n", false},
		{"imap", "* OKAY\r\n", false},
		{"imap", "* PREAUTH hi\r\n", false},
		{"pop3", "+OK POP3 ready <1@x>\r\n", true},
		{"pop3", "+OK\n", true},
		{"pop3", "-ERR go away\r\n", false},
		{"smtp", "220 mx.example.org ESMTP\r\n", true},
		{"smtp", "220-mx.example.org first line\r\n", true},
		{"smtp", "220\r\n", true},
		{"smtp", "2200 x\r\n", false},
		{"smtp", "554 no service\r\n", false},
		{"smtp", "", false},
		{"ftp", "220 x\r\n", false},
	} {
		if err := CheckGreeting(tc.protocol, []byte(tc.line)); (err == nil) != tc.ok {
			t.Errorf("CheckGreeting(%s, %q) = %v, want ok %v", tc.protocol, tc.line, err, tc.ok)
		}
	}
}

func FuzzCheckGreeting(f *testing.F) {
	for _, s := range []string{"* OK ready\r\n", "+OK\r\n", "220-x\r\n", "* BYE\r\n", "\x00\xff\r\n"} {
		f.Add("imap", []byte(s))
		f.Add("smtp", []byte(s))
		f.Add("pop3", []byte(s))
	}
	f.Fuzz(func(t *testing.T, protocol string, line []byte) {
		err := CheckGreeting(protocol, line)
		if err == nil {
			trimmed := strings.TrimRight(string(line), "\r\n")
			prefix := map[string]string{"imap": "* OK", "pop3": "+OK", "smtp": "220"}[protocol]
			if prefix == "" || !strings.HasPrefix(trimmed, prefix) {
				t.Fatalf("accepted %q for %q", line, protocol)
			}
		} else if strings.ContainsAny(err.Error(), "\x00\r\n") {
			t.Fatalf("error message carries control bytes: %q", err)
		}
	})
}

// TestShutdown: Shutdown refuses new clients at once, lets an open session
// go on until its deadline, then cuts it; a session that ends by itself
// lets Shutdown return without waiting for the deadline.
func TestShutdown(t *testing.T) {
	b1 := newTestBackend(t, "b1", "imap", "127.0.0.2", false)
	b, _ := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1)))
	waitAllUp(t, b, "imap", b1)
	addr := b.Addrs()["imap"]
	held := dial(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(ctx) }()
	testutil.Until(t, time.Minute, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if err := held.echo("still here"); err != nil {
		t.Fatalf("the open session during Shutdown: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a session open and time left", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown at its deadline: %v, want context.Canceled", err)
	}
	if err := held.echo("after"); err == nil {
		t.Error("the session outlived Shutdown's deadline")
	}

	// A second balancer whose only session ends by itself.
	b2, _ := startBalancer(t, balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1)))
	waitAllUp(t, b2, "imap", b1)
	c := dial(t, b2.Addrs()["imap"])
	go func() { done <- b2.Shutdown(context.Background()) }()
	c.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown after the last session ended: %v", err)
	}
}
