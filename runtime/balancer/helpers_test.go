package balancer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
)

// greetings are the ready lines of the test front-ends.
var greetings = map[string]string{"imap": "* OK", "pop3": "+OK", "smtp": "220"}

// testBackend is a front-end stand-in: it greets in its protocol with its
// name, then echoes lines until QUIT or LOGOUT. It can be killed (listener
// and connections closed), restarted on the same address, or hung (it
// accepts and never greets).
type testBackend struct {
	t        *testing.T
	name     string
	protocol string
	proxy    bool // read a PROXY v2 header first

	mu      sync.Mutex
	addr    string
	ln      net.Listener
	conns   map[net.Conn]bool
	hung    bool
	headers []*proxyproto.Header // PROXY headers of client connections
	locals  int                  // LOCAL headers (health checks)
}

func newTestBackend(t *testing.T, name, protocol, ip string, proxy bool) *testBackend {
	t.Helper()
	tb := &testBackend{t: t, name: name, protocol: protocol, proxy: proxy, addr: ip + ":0", conns: map[net.Conn]bool{}}
	tb.start()
	t.Cleanup(tb.kill)
	return tb
}

func (tb *testBackend) start() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var ln net.Listener
	var err error
	// A restart on the same port may race the kernel for a moment.
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", tb.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.t.Fatalf("backend %s: %v", tb.name, err)
	}
	tb.ln = ln
	tb.addr = ln.Addr().String()
	go tb.accept(ln)
}

func (tb *testBackend) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tb.mu.Lock()
		if tb.ln != ln {
			tb.mu.Unlock()
			c.Close()
			return
		}
		tb.conns[c] = true
		tb.mu.Unlock()
		go tb.serve(c)
	}
}

func (tb *testBackend) serve(c net.Conn) {
	defer func() {
		c.Close()
		tb.mu.Lock()
		delete(tb.conns, c)
		tb.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	if tb.proxy {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		h, err := proxyproto.Read(br)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		tb.mu.Lock()
		if h.Command == proxyproto.LOCAL {
			tb.locals++
		} else {
			tb.headers = append(tb.headers, h)
		}
		tb.mu.Unlock()
	}
	tb.mu.Lock()
	hung, protocol := tb.hung, tb.protocol
	tb.mu.Unlock()
	if hung {
		// Accepted, never greets: read until the peer goes away.
		br.WriteTo(discard{})
		return
	}
	fmt.Fprintf(c, "%s %s ready\r\n", greetings[protocol], tb.name)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if cmd := strings.TrimSpace(line); cmd == "QUIT" || cmd == "c LOGOUT" {
			return
		}
		if _, err := c.Write([]byte(line)); err != nil {
			return
		}
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// kill closes the listener and every connection, as a dead process would.
func (tb *testBackend) kill() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.ln != nil {
		tb.ln.Close()
		tb.ln = nil
	}
	for c := range tb.conns {
		c.Close()
	}
}

func (tb *testBackend) setHung(h bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.hung = h
}

// setGreeting makes it greet as protocol would.
func (tb *testBackend) setGreeting(protocol string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.protocol = protocol
}

func (tb *testBackend) address() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.addr
}

func (tb *testBackend) proxyHeaders() []*proxyproto.Header {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]*proxyproto.Header(nil), tb.headers...)
}

// syncBuffer collects log lines from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// records are the JSON log lines with message msg.
func (s *syncBuffer) records(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(s.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// health is a fast but forgiving check setting for tests: a check every
// 50 ms that may take 2 s before it fails.
var health = config.HealthConfig{Interval: config.Duration(50 * time.Millisecond),
	Timeout: config.Duration(2 * time.Second), Rise: 2, Fall: 2}

func svcCfg(name, protocol, listen, scheduler string, hc config.HealthConfig, bes ...*testBackend) config.BalancedService {
	s := config.BalancedService{Name: name, Protocol: protocol, Listen: listen, Scheduler: scheduler, Health: hc}
	for _, be := range bes {
		s.Backends = append(s.Backends, config.Backend{Name: be.name, Address: be.address(), Weight: 1})
		s.ProxyProtocol = s.ProxyProtocol || be.proxy
	}
	return s
}

func balancerConfig(services ...config.BalancedService) *config.Balancer {
	return &config.Balancer{FormatVersion: config.FormatVersion, Node: "lb1", Admin: "127.0.0.1:0",
		Services: services, Limits: config.Limits{MaxConnections: 1000, MaxPerClient: 1000}}
}

// startBalancer runs cfg until the test ends; its logs are returned.
func startBalancer(t *testing.T, cfg *config.Balancer) (*Balancer, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	b, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Listen(); err != nil {
		t.Fatal(err)
	}
	b.Serve()
	t.Cleanup(func() {
		b.Close()
		if t.Failed() {
			t.Logf("balancer logs:\n%s", logs.buf.String())
		}
	})
	return b, logs
}

// backendState is the state of service svc's backend name in b's Status.
func backendState(b *Balancer, svc, name string) BackendStatus {
	for _, s := range b.Status().Services {
		if s.Name != svc {
			continue
		}
		for _, be := range s.Backends {
			if be.Name == name {
				return be
			}
		}
	}
	return BackendStatus{State: "absent"}
}

func waitState(t *testing.T, b *Balancer, svc, name, state string) {
	t.Helper()
	testutil.Until(t, time.Minute, fmt.Sprintf("%s/%s %s", svc, name, state), func() bool { return backendState(b, svc, name).State == state })
}

// client is one connection through the balancer.
type client struct {
	net.Conn
	br       *bufio.Reader
	greeting string
}

// dialFrom connects from local address ip (or any) and reads the greeting.
func dialFrom(ip, addr string) (*client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cl := &client{Conn: c, br: bufio.NewReader(c)}
	cl.greeting, err = cl.br.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %q %w", cl.greeting, err)
	}
	return cl, nil
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := dialFrom("", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backendName is the name in the greeting (`* OK b1 ready`).
func (c *client) backendName() string {
	f := strings.Fields(c.greeting)
	if len(f) < 2 {
		return ""
	}
	return f[len(f)-2]
}

// echo sends a line and reads it back.
func (c *client) echo(line string) error {
	if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
		return err
	}
	got, err := c.br.ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\r\n" {
		return fmt.Errorf("echo: got %q", got)
	}
	return nil
}
