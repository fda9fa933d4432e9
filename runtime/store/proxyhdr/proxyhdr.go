// Package proxyhdr accepts the PROXY protocol v2 header
// (github.com/pires/go-proxyproto) on the store's listeners from trusted
// front-end networks only, so that the protocol servers see and log the
// real client address and the session id the front-end passed on. It must
// not import spec, render or remote.
package proxyhdr

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// Wrap returns l accepting a PROXY v2 header from peers in trusted (CIDR
// prefixes). A trusted peer may also connect without a header (local
// health checks: they get the greeting after a second); a header from any other peer closes the connection. With
// no trusted networks, l is returned unchanged and headers are never read.
func Wrap(l net.Listener, trusted []string) (net.Listener, error) {
	if len(trusted) == 0 {
		return l, nil
	}
	var prefixes []netip.Prefix
	for _, t := range trusted {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return nil, fmt.Errorf("proxyhdr: %w", err)
		}
		prefixes = append(prefixes, p.Masked())
	}
	policy := func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		if ta, ok := o.Upstream.(*net.TCPAddr); ok {
			if ip, ok := netip.AddrFromSlice(ta.IP); ok {
				ip = ip.Unmap()
				for _, p := range prefixes {
					if p.Contains(ip) {
						return proxyproto.USE, nil
					}
				}
			}
		}
		return proxyproto.REJECT, nil
	}
	return &proxyproto.Listener{
		Listener:   l,
		ConnPolicy: policy,
		// A proxy writes the header as soon as it connects, while a client
		// of these server-speaks-first protocols waits for the greeting: a
		// trusted peer that sent nothing within this time has no header.
		// (go-proxyproto's 10 s default would delay the greeting to local
		// health checks by as much.)
		ReadHeaderTimeout: time.Second,
		ValidateHeader: func(h *proxyproto.Header) error {
			if h.Version != 2 {
				return errors.New("proxyhdr: only PROXY protocol v2 is accepted")
			}
			return nil
		},
	}, nil
}

// SessionID returns the session id a front-end passed in the PROXY header
// (PP2_TYPE_UNIQUE_ID), or "".
func SessionID(c net.Conn) string { return tlv(c, proxyproto.PP2_TYPE_UNIQUE_ID) }

// TLVAuthenticated is the TLV in which a front-end names the account its
// session authenticated as (runtime/proxy/session.TLVAuthenticated).
const TLVAuthenticated = 0xE0

// Authenticated returns the account a front-end says the session
// authenticated as, or "": only a header from a trusted network is read
// at all (Wrap), so only a trusted front-end can say it.
func Authenticated(c net.Conn) string { return tlv(c, TLVAuthenticated) }

// tlv is the value of the PROXY header's TLV of type typ, sanitized, or "".
func tlv(c net.Conn, typ proxyproto.PP2Type) string {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	pc, ok := c.(*proxyproto.Conn)
	if !ok {
		return ""
	}
	h := pc.ProxyHeader()
	if h == nil {
		return ""
	}
	tlvs, err := h.TLVs()
	if err != nil {
		return ""
	}
	for _, t := range tlvs {
		if t.Type == typ {
			return sanitize(string(t.Value))
		}
	}
	return ""
}

func sanitize(s string) string {
	b := []byte(s)
	out := b[:0]
	for _, c := range b {
		if c > 0x20 && c < 0x7f {
			out = append(out, c)
		}
	}
	if len(out) > 128 {
		out = out[:128]
	}
	return string(out)
}

// Peer returns the address of the machine at the other end of the TCP
// connection (the front-end when it sent a PROXY header), as opposed to
// RemoteAddr, which is the client the header names.
func Peer(c net.Conn) net.Addr {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if pc, ok := c.(*proxyproto.Conn); ok {
		return pc.Raw().RemoteAddr()
	}
	return c.RemoteAddr()
}
