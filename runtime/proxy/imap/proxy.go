package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/proxy/splice"
)

// Directory finds accounts and checks passwords (runtime/directory).
type Directory interface {
	Lookup(ctx context.Context, address string) (directory.Account, error)
	Authenticate(ctx context.Context, login, password string) (directory.Account, error)
}

// Options configure a Proxy.
type Options struct {
	// Node prefixes the session ids made here. Empty: "fe".
	Node string
	// Directory is required.
	Directory Directory
	// Instances are the home instances by FQDN; DefaultRoute names the one
	// that takes logins of names not in the directory, and only when
	// AuthenticateOnProxy is off (the instance then decides).
	Instances    map[string]config.InstanceRoute
	DefaultRoute string
	// AuthenticateOnProxy verifies the password with an LDAP bind before
	// connecting to the instance.
	AuthenticateOnProxy bool
	// TLSConfig enables STARTTLS; with it set, LOGIN and AUTHENTICATE are
	// refused before STARTTLS (LOGINDISABLED). Nil: no STARTTLS.
	TLSConfig *tls.Config
	// BackendTLS, when set, makes the hop to the instances use STARTTLS
	// with this config.
	BackendTLS *tls.Config
	// TrustedBalancers may send a PROXY v2 header. Nil: never read.
	TrustedBalancers []netip.Prefix
	// MaxConnections and MaxPerClient bound the sessions. Zero: no limit.
	MaxConnections, MaxPerClient int
	// PreAuthTimeout bounds the phase before login. Zero: 1 minute.
	PreAuthTimeout time.Duration
	// IdleTimeout cuts a logged-in session after that long with no byte
	// either way. Zero: 31 minutes (RFC 3501 §5.4 asks for at least 30).
	IdleTimeout time.Duration
	// BackendTimeout bounds connecting and logging in to an instance.
	// Zero: 10 seconds.
	BackendTimeout time.Duration
	// FailedLoginDelay is waited before answering a failed login; after
	// MaxFailedLogins failures the session ends. Zero: no delay; 3.
	FailedLoginDelay time.Duration
	MaxFailedLogins  int
	// Metrics, when set, counts sessions, logins, refusals.
	Metrics *session.Metrics
	// Logger receives the structured log. Nil: discarded.
	Logger *slog.Logger
}

// Proxy is the IMAP proxy.
type Proxy struct {
	opts    Options
	log     *slog.Logger
	total   session.Limiter
	clients session.Limiter

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[net.Conn]bool
	closed    bool
	wg        sync.WaitGroup
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("imap proxy: closed")

// New returns a Proxy.
func New(opts Options) (*Proxy, error) {
	if opts.Directory == nil {
		return nil, errors.New("imap proxy: a directory is required")
	}
	if opts.DefaultRoute != "" {
		if _, ok := opts.Instances[opts.DefaultRoute]; !ok {
			return nil, fmt.Errorf("imap proxy: default route %q is not an instance", opts.DefaultRoute)
		}
	}
	if opts.PreAuthTimeout <= 0 {
		opts.PreAuthTimeout = time.Minute
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 31 * time.Minute
	}
	if opts.BackendTimeout <= 0 {
		opts.BackendTimeout = 10 * time.Second
	}
	if opts.MaxFailedLogins <= 0 {
		opts.MaxFailedLogins = 3
	}
	p := &Proxy{opts: opts, log: opts.Logger, listeners: map[net.Listener]bool{}, conns: map[net.Conn]bool{},
		total: session.Limiter{Max: opts.MaxConnections}, clients: session.Limiter{PerClient: opts.MaxPerClient}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("service", "imap")
	return p, nil
}

// Serve accepts sessions on l until Close.
func (p *Proxy) Serve(l net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.listeners[l] = true
	p.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return ErrClosed
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		release, err := p.total.Acquire(netip.Addr{})
		if err != nil {
			p.opts.Metrics.Refused("imap", "max_connections")
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "* BYE [UNAVAILABLE] Too many connections, try again later\r\n")
			c.Close()
			continue
		}
		if !p.track(c, true) {
			release()
			c.Close()
			return ErrClosed
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer release()
			defer p.track(c, false)
			defer c.Close()
			p.serveConn(c)
		}()
	}
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

// Close stops the listeners and ends every session.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for l := range p.listeners {
		l.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// conn is one client session before login.
type conn struct {
	p      *Proxy
	raw    net.Conn // the accepted socket, for Close
	nc     net.Conn // what is spoken on: raw, through the PROXY reader, then TLS
	br     *bufio.Reader
	r      *Reader
	log    *slog.Logger
	id     string
	client netip.AddrPort
	tls    bool
	failed int
}

func (c *conn) write(format string, args ...any) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.p.opts.PreAuthTimeout))
	_, err := fmt.Fprintf(c.nc, format+"\r\n", args...)
	return err
}

func (c *conn) capabilities() string {
	caps := "IMAP4rev1 ID SASL-IR"
	if c.p.opts.TLSConfig != nil && !c.tls {
		return caps + " STARTTLS LOGINDISABLED"
	}
	return caps + " AUTH=PLAIN"
}

func (p *Proxy) serveConn(raw net.Conn) {
	defer p.opts.Metrics.Open("imap")()
	c := &conn{p: p, raw: raw, nc: session.Accept(raw, p.opts.TrustedBalancers)}
	c.nc.SetDeadline(time.Now().Add(p.opts.PreAuthTimeout))
	if err := c.write("* OK [CAPABILITY %s] mailfleet IMAP proxy ready", c.capabilities()); err != nil {
		return
	}
	client, id, err := session.Client(c.nc)
	if err != nil {
		return
	}
	if id == "" {
		id = session.NewID(p.opts.Node)
	}
	c.client, c.id = client, id
	c.log = p.log.With("session", id, "client", client.String())
	release, err := p.clients.Acquire(client.Addr())
	if err != nil {
		p.opts.Metrics.Refused("imap", "max_per_client")
		c.log.Warn("connection refused", "reason", err.Error())
		c.write("* BYE [UNAVAILABLE] %s", err.Error())
		return
	}
	defer release()
	c.log.Info("session started")
	c.setReader()
	backend, br := c.preauth()
	if backend == nil {
		return
	}
	defer backend.Close()
	c.log.Info("session proxied")
	splice.Run(c.nc, c.br, backend, br, p.opts.IdleTimeout)
	c.log.Info("session ended")
}

func (c *conn) setReader() {
	c.br = bufio.NewReaderSize(c.nc, 1024)
	c.r = NewReader(c.br)
	c.r.Continue = func() error { return c.write("+ Ready for literal data") }
}

// preauth serves commands until a login succeeds at the home instance
// (returning the connection to it and its reader) or the session ends.
func (c *conn) preauth() (net.Conn, *bufio.Reader) {
	bad := 0
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.p.opts.PreAuthTimeout))
		cmd, err := c.r.ReadCommand()
		var se *SyntaxError
		switch {
		case errors.As(err, &se):
			c.p.opts.Metrics.Refused("imap", "syntax")
			if bad++; bad >= 10 {
				c.write("* BYE Too many bad commands")
				return nil, nil
			}
			c.write("%s BAD %s", se.Tag, se.Msg)
			continue
		case errors.Is(err, ErrLineTooLong):
			c.p.opts.Metrics.Refused("imap", "line_too_long")
			c.write("* BYE Line too long")
			return nil, nil
		case err != nil:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.p.opts.Metrics.Refused("imap", "preauth_timeout")
				c.write("* BYE Autologout; idle for too long")
			}
			return nil, nil
		}
		switch cmd.Name {
		case "CAPABILITY":
			c.write("* CAPABILITY %s", c.capabilities())
			c.write("%s OK CAPABILITY completed", cmd.Tag)
		case "NOOP":
			c.write("%s OK NOOP completed", cmd.Tag)
		case "ID":
			// go-imap's server has no ID; the proxy answers for the site.
			c.write(`* ID ("name" "mailfleet")`)
			c.write("%s OK ID completed", cmd.Tag)
		case "LOGOUT":
			c.write("* BYE Logging out")
			c.write("%s OK LOGOUT completed", cmd.Tag)
			return nil, nil
		case "STARTTLS":
			if c.p.opts.TLSConfig == nil || c.tls {
				c.write("%s BAD STARTTLS not available", cmd.Tag)
				continue
			}
			if c.br.Buffered() > 0 {
				// Bytes sent before the handshake would be taken as sent
				// under TLS (CVE-2011-0411's class of attack).
				c.p.opts.Metrics.Refused("imap", "starttls_injection")
				c.write("* BYE Commands pipelined after STARTTLS")
				return nil, nil
			}
			c.write("%s OK Begin TLS negotiation now", cmd.Tag)
			tc := tls.Server(c.nc, c.p.opts.TLSConfig)
			if err := tc.Handshake(); err != nil {
				c.log.Info("TLS handshake failed", "err", err)
				return nil, nil
			}
			c.nc, c.tls = tc, true
			c.setReader()
		case "LOGIN":
			if len(cmd.Args) != 2 {
				c.write("%s BAD LOGIN needs a user name and a password", cmd.Tag)
				continue
			}
			if be, br, end := c.login(cmd.Tag, cmd.Args[0], cmd.Args[1]); be != nil || end {
				return be, br
			}
		case "AUTHENTICATE":
			if len(cmd.Args) < 1 || len(cmd.Args) > 2 {
				c.write("%s BAD AUTHENTICATE needs a mechanism", cmd.Tag)
				continue
			}
			if !strings.EqualFold(cmd.Args[0], "PLAIN") {
				c.write("%s NO [CANNOT] Unsupported authentication mechanism", cmd.Tag)
				continue
			}
			if c.plaintextRefused(cmd.Tag) {
				continue
			}
			var ir string
			if len(cmd.Args) == 2 {
				ir = cmd.Args[1]
			} else {
				if err := c.write("+ "); err != nil {
					return nil, nil
				}
				line, err := c.r.ReadLine()
				if err != nil {
					return nil, nil
				}
				ir = string(line)
			}
			if ir == "*" {
				c.write("%s BAD Authentication canceled", cmd.Tag)
				continue
			}
			user, pass, ok := decodePlain(ir)
			if !ok {
				c.write("%s BAD Invalid PLAIN response", cmd.Tag)
				continue
			}
			if be, br, end := c.login(cmd.Tag, user, pass); be != nil || end {
				return be, br
			}
		default:
			c.p.opts.Metrics.Refused("imap", "not_authenticated")
			if bad++; bad >= 10 {
				c.write("* BYE Too many bad commands")
				return nil, nil
			}
			c.write("%s BAD Command not allowed before login", cmd.Tag)
		}
	}
}

// decodePlain decodes a SASL PLAIN response (RFC 4616); an authorization
// identity other than the user is refused (no proxy authorization).
func decodePlain(s string) (user, pass string, ok bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
		return "", "", false
	}
	return parts[1], parts[2], true
}

func (c *conn) plaintextRefused(tag string) bool {
	if c.p.opts.TLSConfig != nil && !c.tls {
		c.p.opts.Metrics.Refused("imap", "login_before_starttls")
		c.write("%s NO [PRIVACYREQUIRED] Use STARTTLS first", tag)
		return true
	}
	return false
}

// login routes and logs in user. It returns the instance's connection on
// success, or end when the session must end.
func (c *conn) login(tag, user, pass string) (net.Conn, *bufio.Reader, bool) {
	if c.plaintextRefused(tag) {
		return nil, nil, false
	}
	log := c.log.With("user", user)
	ctx, cancel := context.WithTimeout(context.Background(), c.p.opts.BackendTimeout)
	defer cancel()
	var a directory.Account
	var err error
	if pass == "" {
		err = directory.ErrInvalidCredentials
	} else if c.p.opts.AuthenticateOnProxy {
		a, err = c.p.opts.Directory.Authenticate(ctx, user, pass)
	} else {
		a, err = c.p.opts.Directory.Lookup(ctx, user)
		if errors.Is(err, directory.ErrNotFound) && c.p.opts.DefaultRoute != "" {
			// The default route's instance decides about this name.
			a, err = directory.Account{Address: user, Instance: c.p.opts.DefaultRoute}, nil
		}
	}
	route, routed := c.p.opts.Instances[a.Instance]
	switch {
	case errors.Is(err, directory.ErrInvalidCredentials), errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrDuplicate):
		log.Info("login failed", "reason", err.Error())
		return nil, nil, c.loginFailed(tag, "NO [AUTHENTICATIONFAILED] Invalid credentials")
	case err != nil:
		c.p.opts.Metrics.Login("imap", "unavailable")
		log.Error("directory unavailable", "err", err)
		c.write("%s NO [UNAVAILABLE] Service temporarily unavailable, try again later", tag)
		return nil, nil, false
	case !routed || route.IMAP == "":
		c.p.opts.Metrics.Login("imap", "unavailable")
		log.Error("no IMAP route to the account's home", "host", a.Host, "instance", a.Instance)
		c.write("%s NO [UNAVAILABLE] Mailbox server unavailable, try again later", tag)
		return nil, nil, false
	}
	be, br, untagged, resp, err := c.backendLogin(ctx, route.IMAP, user, pass)
	if err != nil {
		c.p.opts.Metrics.Login("imap", "unavailable")
		c.p.opts.Metrics.Backend(a.Instance, "imap", false)
		log.Error("home instance unavailable", "instance", a.Instance, "err", err)
		c.write("%s NO [UNAVAILABLE] Mailbox server unavailable, try again later", tag)
		return nil, nil, false
	}
	c.p.opts.Metrics.Backend(a.Instance, "imap", true)
	if be == nil {
		// The instance refused the login: its answer is the answer.
		log.Info("login refused by instance", "instance", a.Instance, "response", resp)
		return nil, nil, c.loginFailed(tag, resp)
	}
	c.p.opts.Metrics.Login("imap", "ok")
	log.Info("logged in", "instance", a.Instance)
	if untagged != "" {
		c.write("%s", untagged)
	}
	if err := c.write("%s %s", tag, resp); err != nil {
		be.Close()
		return nil, nil, true
	}
	c.nc.SetDeadline(time.Time{})
	return be, br, false
}

// loginFailed answers a failed login after the delay, and tells whether
// the session must end.
func (c *conn) loginFailed(tag, resp string) bool {
	c.p.opts.Metrics.Login("imap", "invalid")
	if d := c.p.opts.FailedLoginDelay; d > 0 {
		time.Sleep(d)
	}
	c.write("%s %s", tag, resp)
	if c.failed++; c.failed >= c.p.opts.MaxFailedLogins {
		c.p.opts.Metrics.Refused("imap", "too_many_failed_logins")
		c.write("* BYE Too many failed logins")
		return true
	}
	return false
}

// errBackend is an instance that does not speak as expected.
var errBackend = errors.New("imap proxy: unexpected answer from the instance")

// backendLogin connects to the instance and logs in. On success it returns
// the connection, its reader, the untagged lines before the tagged OK and
// the OK's text (without the tag); when the instance refuses the login, a
// nil connection and its NO's text.
func (c *conn) backendLogin(ctx context.Context, addr, user, pass string) (_ net.Conn, _ *bufio.Reader, untagged, resp string, _ error) {
	nc, err := session.DialBackend(ctx, addr, c.client, c.id, c.p.opts.BackendTimeout)
	if err != nil {
		return nil, nil, "", "", err
	}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()
	nc.SetDeadline(time.Now().Add(c.p.opts.BackendTimeout))
	br := bufio.NewReaderSize(nc, 2048)
	line, err := readBackendLine(br)
	if err != nil {
		return nil, nil, "", "", err
	}
	if !strings.HasPrefix(line, "* OK") {
		return nil, nil, "", "", fmt.Errorf("%w: greeting %q", errBackend, line)
	}
	if c.p.opts.BackendTLS != nil {
		if _, err := io.WriteString(nc, "p1 STARTTLS\r\n"); err != nil {
			return nil, nil, "", "", err
		}
		if _, resp, err := readTagged(br, "p1"); err != nil || !strings.HasPrefix(resp, "OK") {
			return nil, nil, "", "", fmt.Errorf("%w: STARTTLS: %q %v", errBackend, resp, err)
		}
		if br.Buffered() > 0 {
			return nil, nil, "", "", fmt.Errorf("%w: data after STARTTLS", errBackend)
		}
		tc := c.p.opts.BackendTLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return nil, nil, "", "", err
		}
		nc = tlsConn
		br = bufio.NewReaderSize(nc, 2048)
	}
	if _, err := io.WriteString(nc, "p2 AUTHENTICATE PLAIN\r\n"); err != nil {
		return nil, nil, "", "", err
	}
	line, err = readBackendLine(br)
	if err != nil {
		return nil, nil, "", "", err
	}
	if !strings.HasPrefix(line, "+") {
		return nil, nil, "", "", fmt.Errorf("%w: AUTHENTICATE: %q", errBackend, line)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if _, err := io.WriteString(nc, plain+"\r\n"); err != nil {
		return nil, nil, "", "", err
	}
	untagged, resp, err = readTagged(br, "p2")
	if err != nil {
		return nil, nil, "", "", err
	}
	if !strings.HasPrefix(resp, "OK") {
		if strings.HasPrefix(resp, "NO") {
			return nil, nil, "", resp, nil
		}
		return nil, nil, "", "", fmt.Errorf("%w: login: %q", errBackend, resp)
	}
	nc.SetDeadline(time.Time{})
	ok = true
	return nc, br, untagged, resp, nil
}

func readBackendLine(br *bufio.Reader) (string, error) {
	r := Reader{br: br, MaxLine: 64 << 10}
	line, err := r.ReadLine()
	return string(line), err
}

// readTagged reads up to the tagged response of tag, returning the
// untagged lines before it (joined by CRLF) and the response without the
// tag.
func readTagged(br *bufio.Reader, tag string) (string, string, error) {
	var untagged []string
	for range 100 {
		line, err := readBackendLine(br)
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
		return "", "", fmt.Errorf("%w: %q", errBackend, line)
	}
	return "", "", fmt.Errorf("%w: too many untagged lines", errBackend)
}
