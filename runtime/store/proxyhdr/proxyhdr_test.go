package proxyhdr

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// echoRemote serves one line per connection: the remote address and the
// session id as the server sees them.
func serve(t *testing.T, trusted []string) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Wrap(raw, trusted)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
				c.Write([]byte(c.RemoteAddr().String() + " " + SessionID(c) + "\n"))
			}()
		}
	}()
	return raw.Addr().String()
}

func roundTrip(t *testing.T, addr string, header *proxyproto.Header) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if header != nil {
		if _, err := header.WriteTo(c); err != nil {
			t.Fatal(err)
		}
	}
	c.Write([]byte("hello\n"))
	return bufio.NewReader(c).ReadString('\n')
}

func v2Header(t *testing.T) *proxyproto.Header {
	h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}, DestinationAddr: &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 25}}
	if err := h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte("fe1-abc123")}}); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestTrustedPeerHeaderIsUsed(t *testing.T) {
	addr := serve(t, []string{"127.0.0.0/8"})
	got, err := roundTrip(t, addr, v2Header(t))
	if err != nil || got != "192.0.2.7:40000 fe1-abc123\n" {
		t.Fatalf("with header: %q %v", got, err)
	}
	// A trusted peer may connect without a header.
	got, err = roundTrip(t, addr, nil)
	if err != nil || got[:10] != "127.0.0.1:" {
		t.Fatalf("without header: %q %v", got, err)
	}
	// Version 1 headers are refused.
	h := v2Header(t)
	h.Version = 1
	if got, err := roundTrip(t, addr, h); err == nil {
		t.Fatalf("v1 header accepted: %q", got)
	}
}

func TestUntrustedPeerHeaderIsRefused(t *testing.T) {
	addr := serve(t, []string{"10.0.0.0/8"})
	if got, err := roundTrip(t, addr, v2Header(t)); err == nil {
		t.Fatalf("header from an untrusted peer accepted: %q", got)
	}
	got, err := roundTrip(t, addr, nil)
	if err != nil || got[:10] != "127.0.0.1:" {
		t.Fatalf("plain connection: %q %v", got, err)
	}
}
