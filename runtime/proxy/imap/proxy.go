package imap

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/server"
)

// Options configure a Proxy; IdleTimeout's zero is 31 minutes (RFC 3501
// §5.4 asks for at least 30).
type Options = server.Options

// Proxy is the IMAP proxy.
type Proxy = server.Server

// ErrClosed is returned by Serve after Close.
var ErrClosed = server.ErrClosed

// New returns a Proxy.
func New(opts Options) (*Proxy, error) { return server.New(protocol, opts) }

var protocol = server.Protocol{
	Name:               "imap",
	IdleTimeout:        31 * time.Minute,
	Route:              func(r config.InstanceRoute) string { return r.IMAP },
	BackendBuffer:      2048,
	Busy:               "* BYE [UNAVAILABLE] ",
	Unavailable:        "NO [UNAVAILABLE] ",
	InvalidCredentials: "NO [AUTHENTICATIONFAILED] Invalid credentials",
	TooManyFailures:    "* BYE Too many failed logins",
	Greeting: func(c *server.Conn) string {
		return "* OK [CAPABILITY " + capabilities(c) + "] mailfleet IMAP proxy ready"
	},
	Preauth:      preauth,
	BackendLogin: backendLogin,
}

func capabilities(c *server.Conn) string {
	caps := "IMAP4rev1 ID SASL-IR"
	if c.TLSOffered() {
		return caps + " STARTTLS LOGINDISABLED"
	}
	return caps + " AUTH=PLAIN"
}

// newReader reads commands from what the client sends, asking for
// literals with "+".
func newReader(c *server.Conn) *Reader {
	r := NewReader(c.Reader())
	r.Continue = func() error { return c.Write("+ Ready for literal data") }
	return r
}

// preauth serves commands until a login succeeds at the home instance or
// the session ends.
func preauth(c *server.Conn) {
	r := newReader(c)
	bad := 0
	for {
		c.AwaitCommand()
		cmd, err := r.ReadCommand()
		var se *SyntaxError
		switch {
		case errors.As(err, &se):
			c.Refused("syntax")
			if bad++; bad >= 10 {
				c.Write("* BYE Too many bad commands")
				return
			}
			c.Write("%s BAD %s", se.Tag, se.Msg)
			continue
		case errors.Is(err, ErrLineTooLong):
			c.Refused("line_too_long")
			c.Write("* BYE Line too long")
			return
		case err != nil:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.Refused("preauth_timeout")
				c.Write("* BYE Autologout; idle for too long")
			}
			return
		}
		switch cmd.Name {
		case "CAPABILITY":
			c.Write("* CAPABILITY %s", capabilities(c))
			c.Write("%s OK CAPABILITY completed", cmd.Tag)
		case "NOOP":
			c.Write("%s OK NOOP completed", cmd.Tag)
		case "ID":
			// go-imap's server has no ID; the proxy answers for the site.
			c.Write(`* ID ("name" "mailfleet")`)
			c.Write("%s OK ID completed", cmd.Tag)
		case "LOGOUT":
			c.Write("* BYE Logging out")
			c.Write("%s OK LOGOUT completed", cmd.Tag)
			return
		case "STARTTLS":
			if !c.TLSOffered() {
				c.Write("%s BAD STARTTLS not available", cmd.Tag)
				continue
			}
			if !c.StartTLS(cmd.Tag+" OK Begin TLS negotiation now", "* BYE Commands pipelined after STARTTLS", "starttls_injection") {
				return
			}
			r = newReader(c)
		case "LOGIN":
			if len(cmd.Args) != 2 {
				c.Write("%s BAD LOGIN needs a user name and a password", cmd.Tag)
				continue
			}
			if login(c, cmd.Tag, cmd.Args[0], cmd.Args[1]) {
				return
			}
		case "AUTHENTICATE":
			if len(cmd.Args) < 1 || len(cmd.Args) > 2 {
				c.Write("%s BAD AUTHENTICATE needs a mechanism", cmd.Tag)
				continue
			}
			if !strings.EqualFold(cmd.Args[0], "PLAIN") {
				c.Write("%s NO [CANNOT] Unsupported authentication mechanism", cmd.Tag)
				continue
			}
			if plaintextRefused(c, cmd.Tag) {
				continue
			}
			var ir string
			if len(cmd.Args) == 2 {
				ir = cmd.Args[1]
			} else {
				if err := c.Write("+ "); err != nil {
					return
				}
				line, err := r.ReadLine()
				if err != nil {
					return
				}
				ir = string(line)
			}
			if ir == "*" {
				c.Write("%s BAD Authentication canceled", cmd.Tag)
				continue
			}
			user, pass, ok := server.DecodePlain(ir)
			if !ok {
				c.Write("%s BAD Invalid PLAIN response", cmd.Tag)
				continue
			}
			if login(c, cmd.Tag, user, pass) {
				return
			}
		default:
			c.Refused("not_authenticated")
			if bad++; bad >= 10 {
				c.Write("* BYE Too many bad commands")
				return
			}
			c.Write("%s BAD Command not allowed before login", cmd.Tag)
		}
	}
}

func plaintextRefused(c *server.Conn, tag string) bool {
	if c.TLSOffered() {
		c.Refused("login_before_starttls")
		c.Write("%s NO [PRIVACYREQUIRED] Use STARTTLS first", tag)
		return true
	}
	return false
}

// login logs user in unless the password came in clear where TLS is
// required; it tells whether the dialogue before login is over.
func login(c *server.Conn, tag, user, pass string) bool {
	if plaintextRefused(c, tag) {
		return false
	}
	return c.Login(tag+" ", user, pass)
}

// maxBackendLine bounds a line from the instance.
const maxBackendLine = 64 << 10

// backendLogin logs in at the instance with AUTHENTICATE PLAIN, after
// STARTTLS when the hop is TLS. The reply is the tagged answer's text
// (without the tag) and the untagged lines before it.
func backendLogin(ctx context.Context, b *server.Backend, user, pass string) (server.Reply, error) {
	line, err := b.ReadLine(maxBackendLine)
	if err != nil {
		return server.Reply{}, err
	}
	if !strings.HasPrefix(line, "* OK") {
		return server.Reply{}, b.Errorf("greeting %q", line)
	}
	if b.TLS() {
		if err := b.Send("p1 STARTTLS"); err != nil {
			return server.Reply{}, err
		}
		if _, resp, err := readTagged(b, "p1"); err != nil || !strings.HasPrefix(resp, "OK") {
			return server.Reply{}, b.Errorf("STARTTLS: %q %v", resp, err)
		}
		if err := b.StartTLS(ctx, "STARTTLS"); err != nil {
			return server.Reply{}, err
		}
	}
	if err := b.Send("p2 AUTHENTICATE PLAIN"); err != nil {
		return server.Reply{}, err
	}
	line, err = b.ReadLine(maxBackendLine)
	if err != nil {
		return server.Reply{}, err
	}
	if !strings.HasPrefix(line, "+") {
		return server.Reply{}, b.Errorf("AUTHENTICATE: %q", line)
	}
	if err := b.Send(server.EncodePlain(user, pass)); err != nil {
		return server.Reply{}, err
	}
	untagged, resp, err := readTagged(b, "p2")
	switch {
	case err != nil:
		return server.Reply{}, err
	case strings.HasPrefix(resp, "OK"):
		return server.Reply{OK: true, Untagged: untagged, Text: resp}, nil
	case strings.HasPrefix(resp, "NO"):
		return server.Reply{Text: resp}, nil
	}
	return server.Reply{}, b.Errorf("login: %q", resp)
}

// readTagged reads up to the tagged response of tag, returning the
// untagged lines before it (joined by CRLF) and the response without the
// tag.
func readTagged(b *server.Backend, tag string) (string, string, error) {
	var untagged []string
	for range 100 {
		line, err := b.ReadLine(maxBackendLine)
		if err != nil {
			return "", "", err
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return strings.Join(untagged, "\r\n"), rest, nil
		}
		if strings.HasPrefix(line, "* ") {
			untagged = append(untagged, line)
			continue
		}
		return "", "", b.Errorf("%q", line)
	}
	return "", "", b.Errorf("too many untagged lines")
}
