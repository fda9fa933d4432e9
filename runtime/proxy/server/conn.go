package server

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/mailfleet/mailfleet/runtime/proxy/session"
)

// Conn is one client session before login, as a Protocol's dialogue sees
// it.
type Conn struct {
	s       *Server
	nc      net.Conn // through the PROXY reader, then TLS
	br      *bufio.Reader
	who     session.Identity
	tls     bool
	failed  int
	backend *Backend // once logged in
}

// Write sends one line, format and args then CRLF, within the
// pre-authentication timeout.
func (c *Conn) Write(format string, args ...any) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.PreAuthTimeout))
	_, err := fmt.Fprintf(c.nc, format+"\r\n", args...)
	return err
}

// Reader reads what the client sends; StartTLS replaces it.
func (c *Conn) Reader() *bufio.Reader { return c.br }

// AwaitCommand gives the client the pre-authentication timeout, from now,
// to send its next command.
func (c *Conn) AwaitCommand() {
	c.nc.SetReadDeadline(time.Now().Add(c.s.opts.PreAuthTimeout))
}

// TLSOffered tells whether STARTTLS is configured and not done yet: the
// client may start it, and must before it logs in.
func (c *Conn) TLSOffered() bool { return c.s.opts.TLSConfig != nil && !c.tls }

// Refused counts a refusal, by reason.
func (c *Conn) Refused(reason string) { c.s.opts.Metrics.Refused(c.s.proto.Name, reason) }

// StartTLS answers a STARTTLS (STLS) the client may send (TLSOffered):
// with ok, then the handshake; with pipelined, counted under reason, when
// commands came behind it. It tells whether the session goes on, now
// under TLS.
func (c *Conn) StartTLS(ok, pipelined, reason string) bool {
	if c.br.Buffered() > 0 {
		// Bytes sent before the handshake would be taken as sent under
		// TLS (CVE-2011-0411's class of attack).
		c.Refused(reason)
		c.Write("%s", pipelined)
		return false
	}
	c.Write("%s", ok)
	tc := tls.Server(c.nc, c.s.opts.TLSConfig)
	if err := tc.Handshake(); err != nil {
		c.who.Log.Info("TLS handshake failed", "err", err)
		return false
	}
	c.nc, c.tls = tc, true
	c.br = bufio.NewReaderSize(c.nc, 1024)
	return true
}
