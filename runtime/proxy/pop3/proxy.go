package pop3

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/server"
)

// Options configure a Proxy; IdleTimeout's zero is 10 minutes (RFC 1939
// §3).
type Options = server.Options

// Proxy is the POP3 proxy.
type Proxy = server.Server

// ErrClosed is returned by Serve after Close.
var ErrClosed = server.ErrClosed

// New returns a Proxy.
func New(opts Options) (*Proxy, error) { return server.New(protocol, opts) }

var protocol = server.Protocol{
	Name:               "pop3",
	IdleTimeout:        10 * time.Minute,
	Route:              func(r config.InstanceRoute) string { return r.POP3 },
	BackendBuffer:      1024,
	Busy:               "-ERR [SYS/TEMP] ",
	Unavailable:        "-ERR [SYS/TEMP] ",
	InvalidCredentials: "-ERR [AUTH] Invalid credentials",
	Greeting:           func(*server.Conn) string { return "+OK mailfleet POP3 proxy ready" },
	Preauth:            authorization,
	BackendLogin:       backendLogin,
}

const msgPlaintext = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connection, use STLS first"

func plaintextRefused(c *server.Conn) bool {
	if c.TLSOffered() {
		c.Refused("login_before_stls")
		c.Write(msgPlaintext)
		return true
	}
	return false
}

// authorization serves the AUTHORIZATION state until a login succeeds at
// the home instance or the session ends.
func authorization(c *server.Conn) {
	bad := 0
	pending := "" // the name of USER, waiting for PASS
	for {
		c.AwaitCommand()
		line, err := ReadLine(c.Reader(), DefaultMaxLine)
		switch {
		case errors.Is(err, ErrLineTooLong):
			c.Refused("line_too_long")
			c.Write("-ERR Line too long")
			return
		case err != nil:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.Refused("preauth_timeout")
				c.Write("-ERR Timeout, closing")
			}
			return
		}
		cmd, err := ParseCommand(line)
		if err != nil {
			c.Refused("syntax")
			if bad++; bad >= 10 {
				c.Write("-ERR Too many bad commands")
				return
			}
			c.Write("-ERR Syntax error")
			continue
		}
		switch cmd.Name {
		case "CAPA":
			c.Write("+OK Capability list follows")
			if c.TLSOffered() {
				c.Write("STLS")
			} else {
				c.Write("USER")
				c.Write("SASL PLAIN")
			}
			c.Write("RESP-CODES")
			c.Write("AUTH-RESP-CODE")
			c.Write("PIPELINING")
			c.Write("UIDL")
			c.Write("TOP")
			c.Write(".")
		case "QUIT":
			c.Write("+OK Bye")
			return
		case "STLS":
			if !c.TLSOffered() {
				c.Write("-ERR STLS not available")
				continue
			}
			if !c.StartTLS("+OK Begin TLS negotiation", "-ERR Commands pipelined after STLS", "stls_injection") {
				return
			}
			pending = ""
		case "USER":
			if plaintextRefused(c) {
				continue
			}
			if cmd.Rest == "" {
				c.Write("-ERR USER needs a name")
				continue
			}
			pending = cmd.Rest
			c.Write("+OK Send PASS")
		case "PASS":
			if plaintextRefused(c) {
				continue
			}
			if pending == "" {
				c.Write("-ERR USER first")
				continue
			}
			user := pending
			pending = ""
			if c.Login("", user, cmd.Rest) {
				return
			}
		case "AUTH":
			if len(cmd.Args) == 0 {
				// RFC 5034 §4: AUTH without a mechanism lists them.
				c.Write("+OK")
				c.Write("PLAIN")
				c.Write(".")
				continue
			}
			if !strings.EqualFold(cmd.Args[0], "PLAIN") || len(cmd.Args) > 2 {
				c.Write("-ERR Unsupported mechanism")
				continue
			}
			if plaintextRefused(c) {
				continue
			}
			var ir string
			if len(cmd.Args) == 2 {
				ir = cmd.Args[1]
			} else {
				c.Write("+ ")
				line, err := ReadLine(c.Reader(), DefaultMaxLine)
				if err != nil {
					return
				}
				ir = line
			}
			if ir == "*" {
				c.Write("-ERR Authentication canceled")
				continue
			}
			user, pass, ok := server.DecodePlain(ir)
			if !ok {
				c.Write("-ERR [AUTH] Invalid PLAIN response")
				continue
			}
			if c.Login("", user, pass) {
				return
			}
		default:
			c.Refused("not_authenticated")
			if bad++; bad >= 10 {
				c.Write("-ERR Too many bad commands")
				return
			}
			c.Write("-ERR Not allowed before login")
		}
	}
}

// maxBackendLine bounds a line from the instance.
const maxBackendLine = 4096

// backendLogin logs in at the instance with AUTH PLAIN, after STLS when
// the hop is TLS. The reply is the instance's +OK or -ERR line.
func backendLogin(ctx context.Context, b *server.Backend, user, pass string) (server.Reply, error) {
	line, err := b.ReadLine(maxBackendLine)
	if err != nil {
		return server.Reply{}, err
	}
	if !strings.HasPrefix(line, "+OK") {
		return server.Reply{}, b.Errorf("greeting %q", line)
	}
	if b.TLS() {
		b.Send("STLS")
		if line, err := b.ReadLine(maxBackendLine); err != nil || !strings.HasPrefix(line, "+OK") {
			return server.Reply{}, b.Errorf("STLS: %q %v", line, err)
		}
		if err := b.StartTLS(ctx, "STLS"); err != nil {
			return server.Reply{}, err
		}
	}
	if err := b.Send("AUTH PLAIN " + server.EncodePlain(user, pass)); err != nil {
		return server.Reply{}, err
	}
	line, err = b.ReadLine(maxBackendLine)
	switch {
	case err != nil:
		return server.Reply{}, err
	case strings.HasPrefix(line, "+OK"):
		return server.Reply{OK: true, Text: line}, nil
	case strings.HasPrefix(line, "-ERR [SYS/TEMP]"), strings.HasPrefix(line, "-ERR [IN-USE]"):
		// Not a wrong password: the client should hear it as it is.
		return server.Reply{Text: line}, nil
	case strings.HasPrefix(line, "-ERR"):
		return server.Reply{Text: line}, nil
	}
	return server.Reply{}, b.Errorf("AUTH: %q", line)
}
