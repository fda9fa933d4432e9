package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mailfleet/mailfleet/runtime/proxy/crlf"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
)

// Backend is the connection to a home instance while the proxy logs in
// there (Protocol.BackendLogin), within Options.BackendTimeout.
type Backend struct {
	s    *Server
	addr string
	conn net.Conn
	br   *bufio.Reader
}

// errUnexpected is an instance that does not speak as expected.
var errUnexpected = errors.New("proxy: unexpected answer from the instance")

// dialBackend connects to the instance at addr, with a PROXY v2 header
// naming the client and the session, and lets the protocol log user in.
// A login the instance refused is its reply without a Backend.
func (c *Conn) dialBackend(ctx context.Context, addr, user, pass string) (Reply, *Backend, error) {
	nc, err := session.DialBackend(ctx, addr, c.who.Client, c.who.ID, "", c.s.opts.BackendTimeout)
	if err != nil {
		return Reply{}, nil, err
	}
	nc.SetDeadline(time.Now().Add(c.s.opts.BackendTimeout))
	b := &Backend{s: c.s, addr: addr, conn: nc, br: bufio.NewReaderSize(nc, c.s.proto.BackendBuffer)}
	reply, err := c.s.proto.BackendLogin(ctx, b, user, pass)
	if err != nil || !reply.OK {
		b.conn.Close()
		return reply, nil, err
	}
	b.conn.SetDeadline(time.Time{})
	return reply, b, nil
}

// Send writes line and CRLF to the instance.
func (b *Backend) Send(line string) error {
	_, err := io.WriteString(b.conn, line+"\r\n")
	return err
}

// ReadLine reads a line of at most max bytes from the instance.
func (b *Backend) ReadLine(max int) (string, error) {
	line, err := crlf.ReadLine(b.br, max)
	return string(line), err
}

// TLS tells whether the hop is to be TLS (Options.BackendTLS): the
// protocol asks for it, then calls StartTLS.
func (b *Backend) TLS() bool { return b.s.opts.BackendTLS != nil }

// StartTLS starts TLS on the hop once the instance agreed to verb
// (STARTTLS, STLS).
func (b *Backend) StartTLS(ctx context.Context, verb string) error {
	if b.br.Buffered() > 0 {
		// They would be taken as sent under TLS.
		return b.Errorf("data after %s", verb)
	}
	tc := b.s.opts.BackendTLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(b.addr)
	}
	conn := tls.Client(b.conn, tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	b.conn, b.br = conn, bufio.NewReaderSize(conn, b.br.Size())
	return nil
}

// Errorf is an answer of the instance the protocol did not expect.
func (b *Backend) Errorf(format string, args ...any) error {
	return fmt.Errorf("%s %w: %s", b.s.proto.Name, errUnexpected, fmt.Sprintf(format, args...))
}
