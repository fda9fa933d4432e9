package session

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// serveOne accepts one connection through Accept, greets, then reports
// what Client says.
func serveOne(t *testing.T, trustedNets []string) (string, chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	prefixes, err := ParsePrefixes(trustedNets)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 1)
	go func() {
		raw, err := l.Accept()
		if err != nil {
			return
		}
		c := Accept(raw, prefixes)
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("* OK hello\r\n"))
		client, id, err := Client(c)
		if err != nil {
			out <- "error " + err.Error()
			return
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		out <- client.Addr().String() + " " + id + " " + line + " " + c.RemoteAddr().String()
	}()
	return l.Addr().String(), out
}

func header(t *testing.T, id string) []byte {
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 5555}, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 143})
	if id != "" {
		h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte(id)}})
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exchange(t *testing.T, addr string, pre []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The greeting comes before anything is sent, header or not.
	if g, err := bufio.NewReader(c).ReadString('\n'); err != nil || g != "* OK hello\r\n" {
		t.Fatalf("greeting %q %v", g, err)
	}
	c.Write(append(pre, "a NOOP\r\n"...))
	time.Sleep(50 * time.Millisecond)
}

func TestTrustedBalancerHeader(t *testing.T) {
	addr, out := serveOne(t, []string{"127.0.0.0/8"})
	exchange(t, addr, header(t, "bal-42 x"))
	if got := <-out; got != "192.0.2.9 bal-42x a NOOP\r\n 192.0.2.9:5555" {
		t.Fatalf("got %q", got)
	}
	// A health check without a header still works.
	addr, out = serveOne(t, []string{"127.0.0.1"})
	exchange(t, addr, nil)
	if got := <-out; !bytes.HasPrefix([]byte(got), []byte("127.0.0.1  a NOOP")) {
		t.Fatalf("got %q", got)
	}
}

func TestUntrustedHeaderIsNotHonoured(t *testing.T) {
	addr, out := serveOne(t, []string{"10.0.0.0/8"})
	exchange(t, addr, header(t, "forged"))
	got := <-out
	if !bytes.HasPrefix([]byte(got), []byte("127.0.0.1  ")) {
		t.Fatalf("untrusted header honoured: %q", got)
	}
}

func TestLimiter(t *testing.T) {
	l := Limiter{Max: 3, PerClient: 2}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	r1, err := l.Acquire(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(a); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(a); err != ErrTooManyForClient {
		t.Fatalf("third from a: %v", err)
	}
	if _, err := l.Acquire(b); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(b); err != ErrTooMany {
		t.Fatalf("fourth: %v", err)
	}
	r1()
	r1()
	if _, err := l.Acquire(b); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestWriteHeaderRoundTrip(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	got := make(chan *proxyproto.Header, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h, _ := proxyproto.Read(bufio.NewReader(c))
		got <- h
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := WriteHeader(c, netip.MustParseAddrPort("[2001:db8::1]:4000"), "fe1-abc", ""); err != nil {
		t.Fatal(err)
	}
	h := <-got
	if h == nil || h.SourceAddr.String() != "[2001:db8::1]:4000" {
		t.Fatalf("header %+v", h)
	}
	tlvs, _ := h.TLVs()
	if len(tlvs) != 1 || string(tlvs[0].Value) != "fe1-abc" {
		t.Fatalf("tlvs %+v", tlvs)
	}
}

// FuzzPROXYHeader feeds arbitrary bytes to the header parser the way a
// trusted balancer's connection does: it must never panic, and what it
// hands on is a clean id.
func FuzzPROXYHeader(f *testing.F) {
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x09\xc0\x00\x02\x01\x15\xb3\x00\x8f"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add([]byte("a LOGIN x y\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			b.Write(data)
			b.Close()
		}()
		bc := &balancerConn{Conn: a, pc: proxyproto.NewConn(a, proxyproto.WithPolicy(proxyproto.USE), proxyproto.SetReadHeaderTimeout(0))}
		_, id, _ := bc.header()
		if len(id) > 128 {
			t.Fatalf("id of %d bytes", len(id))
		}
		for _, c := range []byte(id) {
			if c <= 0x20 || c >= 0x7f {
				t.Fatalf("unclean id %q", id)
			}
		}
	})
}

// TakeSocket hands over the socket with the bytes the header reader held:
// none lost, none twice, and the header's client stays the RemoteAddr.
func TestTakeSocketKeepsHeldBytes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := make(chan string, 1)
	go func() {
		raw, err := l.Accept()
		if err != nil {
			out <- err.Error()
			return
		}
		c := Accept(raw, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := Client(c); err != nil {
			out <- err.Error()
			return
		}
		first := make([]byte, 3)
		if _, err := c.Read(first); err != nil {
			out <- err.Error()
			return
		}
		s, ok := c.(interface{ TakeSocket() (net.Conn, []byte) })
		if !ok {
			out <- "no TakeSocket"
			return
		}
		sock, held := s.TakeSocket()
		if _, ok := sock.(*net.TCPConn); !ok {
			out <- "not the socket"
			return
		}
		rest := make([]byte, 5)
		n, err := sock.Read(rest)
		if err != nil {
			out <- err.Error()
			return
		}
		out <- string(first) + "|" + string(held) + "|" + string(rest[:n]) + "|" + c.RemoteAddr().String()
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(append(header(t, "id"), "abcdefgh"...))
	time.Sleep(100 * time.Millisecond)
	c.Write([]byte("later"))
	if got := <-out; got != "abc|defgh|later|192.0.2.9:5555" {
		t.Fatalf("got %q", got)
	}
}
