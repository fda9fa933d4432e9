package proxytest

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/mailfleet/mailfleet/runtime/proxy/server"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

// Server is what Serve runs: a proxy or the router.
type Server interface {
	Serve(net.Listener) error
	Close() error
}

// Serve runs srv on 127.0.0.1:0 until the test ends and returns its
// address.
func Serve(t testing.TB, srv Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// StartProxy runs the proxy newProxy makes for cl's directory and
// instances, with the password checked on the proxy and a short
// failed-login delay, the options changed by mod (if not nil); it returns
// the proxy's address.
func StartProxy(t testing.TB, cl *storetest.Cluster, newProxy func(server.Options) (*server.Server, error), mod func(*server.Options)) string {
	t.Helper()
	opts := server.Options{Node: "fe1", Directory: cl.Directory, Instances: cl.Instances, AuthenticateOnProxy: true,
		BackendTimeout: 5 * time.Second, FailedLoginDelay: time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	p, err := newProxy(opts)
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, p)
}

// Client speaks raw lines to a server.
type Client struct {
	T    testing.TB
	Conn net.Conn
	R    *bufio.Reader
}

// Dial connects to addr, sends pre first (a PROXY header) unless nil, and
// reads the greeting, which must start with greeting. The connection is
// closed when the test ends.
func Dial(t testing.TB, addr string, pre []byte, greeting string) *Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if pre != nil {
		c.Write(pre)
	}
	cl := NewClient(t, c)
	if g := cl.Line(); !strings.HasPrefix(g, greeting) {
		t.Fatalf("greeting %q", g)
	}
	return cl
}

// NewClient speaks on c, e.g. after STARTTLS.
func NewClient(t testing.TB, c net.Conn) *Client {
	return &Client{T: t, Conn: c, R: bufio.NewReader(c)}
}

// Line reads a line, without its CRLF.
func (c *Client) Line() string {
	c.T.Helper()
	l, err := c.R.ReadString('\n')
	if err != nil {
		c.T.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// DeadAddr is an address on 127.0.0.1 where nothing listens.
func DeadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// BalancerHeader is the PROXY v2 header a balancer sends for a client at
// src ("address:port") connecting to dst, with the session id id.
func BalancerHeader(t testing.TB, src, dst, id string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	if err := h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte(id)}}); err != nil {
		t.Fatal(err)
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
