package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// NewID returns a fresh session id: the node's name and 12 random hex
// digits, unique enough to grep one session out of every role's logs.
func NewID(node string) string {
	b := make([]byte, 6)
	rand.Read(b)
	if node == "" {
		node = "fe"
	}
	return node + "-" + hex.EncodeToString(b)
}

// ParsePrefixes parses trusted networks (CIDR prefixes or bare addresses).
func ParsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("session: trusted network %q: %w", s, err)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func addrOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func trusted(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Accept wraps a connection accepted from the network: from a trusted
// balancer, a PROXY v2 header is honoured if one comes (health checks come
// without); from anyone else, no header is looked for, so a forged one is
// only bytes of a bad command. The header is read with the connection's
// first Read, not before: a server greets first, then calls Client once the
// peer has spoken.
func Accept(c net.Conn, trustedBalancers []netip.Prefix) net.Conn {
	if len(trustedBalancers) == 0 || !trusted(addrOf(c.RemoteAddr()).Addr(), trustedBalancers) {
		return c
	}
	raw := &probeConn{Conn: c}
	pc := proxyproto.NewConn(raw, proxyproto.WithPolicy(proxyproto.USE), proxyproto.SetReadHeaderTimeout(0),
		proxyproto.ValidateHeader(func(h *proxyproto.Header) error {
			if h.Version != 2 {
				return errors.New("session: only PROXY protocol v2 is accepted")
			}
			return nil
		}))
	return &balancerConn{Conn: c, pc: pc, raw: raw}
}

// probeConn is the socket as the PROXY header parser reads it: while
// probing, a read that would reach the socket fails with errProbe instead,
// which tells that the parser holds no more of the peer's bytes.
type probeConn struct {
	net.Conn
	probing atomic.Bool
}

var errProbe = errors.New("session: probe")

func (c *probeConn) Read(b []byte) (int, error) {
	if c.probing.Load() {
		return 0, errProbe
	}
	return c.Conn.Read(b)
}

// balancerConn reads through the PROXY header parser but writes, closes and
// sets deadlines on the socket itself: proxyproto.Conn would hold a write
// (the greeting) until the header was read, and a health check that sends
// no header would then never see the greeting.
type balancerConn struct {
	net.Conn
	pc  *proxyproto.Conn
	raw *probeConn

	mu     sync.Mutex
	done   bool
	client netip.AddrPort
	id     string
	err    error
}

func (c *balancerConn) Read(b []byte) (int, error) { return c.pc.Read(b) }

// TakeSocket hands the socket over to a reader of its own (splice), with
// the peer's bytes the PROXY header parser read but did not pass on yet.
// Read must not be used afterwards.
func (c *balancerConn) TakeSocket() (net.Conn, []byte) {
	c.mu.Lock()
	ok := c.done && c.err == nil
	c.mu.Unlock()
	if !ok {
		// The header was not read (Client), or failed: not handed over.
		return c, nil
	}
	c.raw.probing.Store(true)
	var held []byte
	buf := make([]byte, 512)
	for {
		n, err := c.pc.Read(buf)
		held = append(held, buf[:n]...)
		if err != nil {
			c.raw.probing.Store(false)
			if !errors.Is(err, errProbe) {
				// The header failed: the socket is not handed over, and
				// every Read fails the same way.
				return c, nil
			}
			return c.Conn, held
		}
	}
}

// RemoteAddr is the client's address once the header was read (Client),
// the balancer's before.
func (c *balancerConn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done && c.err == nil && c.client.IsValid() {
		return net.TCPAddrFromAddrPort(c.client)
	}
	return c.Conn.RemoteAddr()
}

func (c *balancerConn) header() (netip.AddrPort, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return c.client, c.id, c.err
	}
	c.done = true
	// A zero-length read processes the header without consuming data.
	if _, err := c.pc.Read(nil); err != nil {
		c.err = err
		return netip.AddrPort{}, "", err
	}
	c.client = addrOf(c.Conn.RemoteAddr())
	h := c.pc.ProxyHeader()
	if h == nil || h.Command != proxyproto.PROXY {
		return c.client, "", nil
	}
	if tlvs, err := h.TLVs(); err == nil {
		for _, t := range tlvs {
			if t.Type == proxyproto.PP2_TYPE_UNIQUE_ID {
				c.id = Sanitize(string(t.Value))
			}
		}
	}
	c.client = addrOf(h.SourceAddr)
	return c.client, c.id, nil
}

// Client returns the client's address and the balancer's session id ("" if
// it sent none) of a connection from Accept. For a balancer's connection
// it reads the PROXY header, so it blocks until the peer sends its first
// bytes (or the read deadline passes, which is an error).
func Client(c net.Conn) (netip.AddrPort, string, error) {
	if bc, ok := c.(*balancerConn); ok {
		return bc.header()
	}
	return addrOf(c.RemoteAddr()), "", nil
}

// Sanitize keeps the printable ASCII of an id from the network, at most
// 128 bytes of it (PP2_TYPE_UNIQUE_ID's limit).
func Sanitize(s string) string {
	out := make([]byte, 0, min(len(s), 128))
	for i := 0; i < len(s) && len(out) < 128; i++ {
		if c := s[i]; c > 0x20 && c < 0x7f {
			out = append(out, c)
		}
	}
	return string(out)
}

// Limiter counts sessions in total and per client address. The zero
// value has no limits.
type Limiter struct {
	Max, PerClient int

	mu     sync.Mutex
	total  int
	client map[netip.Addr]int
}

// Errors of Limiter.Acquire.
var (
	ErrTooMany          = errors.New("too many connections")
	ErrTooManyForClient = errors.New("too many connections from your address")
)

// Acquire takes a slot for client; release gives it back.
func (l *Limiter) Acquire(client netip.Addr) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Max > 0 && l.total >= l.Max {
		return nil, ErrTooMany
	}
	if l.PerClient > 0 {
		if l.client == nil {
			l.client = map[netip.Addr]int{}
		}
		if l.client[client] >= l.PerClient {
			return nil, ErrTooManyForClient
		}
		l.client[client]++
	}
	l.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.PerClient > 0 {
				if l.client[client]--; l.client[client] <= 0 {
					delete(l.client, client)
				}
			}
		})
	}, nil
}

// DialBackend connects to a store listener and writes a PROXY v2 header
// with the client's address and the session id (PP2_TYPE_UNIQUE_ID), which
// the store accepts from its trusted networks. timeout bounds the connect.
func DialBackend(ctx context.Context, addr string, client netip.AddrPort, id, auth string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := WriteHeader(c, client, id, auth); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TLVAuthenticated is the PROXY v2 TLV (of the range RFC-less custom types
// use, 0xE0–0xEF) in which a front-end names the account a session
// authenticated as: the store relays mail to other domains only for a
// connection that carries it, from a trusted front-end.
const TLVAuthenticated = 0xE0

// WriteHeader writes the PROXY v2 header of a session to c: the client's
// address, the session id, and the authenticated account ("": none).
func WriteHeader(c net.Conn, client netip.AddrPort, id, auth string) error {
	src := net.TCPAddrFromAddrPort(client)
	dst := c.RemoteAddr().(*net.TCPAddr)
	if !client.IsValid() {
		src = c.LocalAddr().(*net.TCPAddr)
	}
	// Both addresses must be of one family.
	if (src.IP.To4() == nil) != (dst.IP.To4() == nil) {
		if ip4 := dst.IP.To4(); ip4 != nil {
			dst = &net.TCPAddr{IP: dst.IP.To16(), Port: dst.Port}
		}
		if ip4 := src.IP.To4(); ip4 != nil {
			src = &net.TCPAddr{IP: src.IP.To16(), Port: src.Port}
		}
	}
	h := proxyproto.HeaderProxyFromAddrs(2, src, dst)
	if h.TransportProtocol == proxyproto.UNSPEC {
		h.TransportProtocol = proxyproto.TCPv6
	}
	var tlvs []proxyproto.TLV
	if id != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte(Sanitize(id))})
	}
	if auth != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: TLVAuthenticated, Value: []byte(Sanitize(auth))})
	}
	if len(tlvs) > 0 {
		if err := h.SetTLVs(tlvs); err != nil {
			return err
		}
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	_, err := h.WriteTo(c)
	return err
}
