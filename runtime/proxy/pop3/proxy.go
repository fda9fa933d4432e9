package pop3

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

// Options configure a Proxy. Their meaning is that of the IMAP proxy's.
type Options struct {
	// Node prefixes the session ids made here. Empty: "fe".
	Node string
	// Directory is required.
	Directory Directory
	// Instances are the home instances by FQDN; DefaultRoute takes logins
	// of names not in the directory, only when AuthenticateOnProxy is off.
	Instances           map[string]config.InstanceRoute
	DefaultRoute        string
	AuthenticateOnProxy bool
	// TLSConfig enables STLS; with it set, USER/PASS and AUTH are refused
	// before STLS. Nil: no STLS.
	TLSConfig *tls.Config
	// BackendTLS, when set, makes the hop to the instances use STLS.
	BackendTLS *tls.Config
	// TrustedBalancers may send a PROXY v2 header. Nil: never read.
	TrustedBalancers []netip.Prefix
	// MaxConnections and MaxPerClient bound the sessions. Zero: no limit.
	MaxConnections, MaxPerClient int
	// PreAuthTimeout bounds the authorization state. Zero: 1 minute.
	PreAuthTimeout time.Duration
	// IdleTimeout cuts a logged-in session idle both ways. Zero: 10
	// minutes (RFC 1939 §3).
	IdleTimeout time.Duration
	// BackendTimeout bounds connecting and logging in. Zero: 10 seconds.
	BackendTimeout time.Duration
	// FailedLoginDelay is waited before answering a failed login; after
	// MaxFailedLogins the session ends. Zero: none; 3.
	FailedLoginDelay time.Duration
	MaxFailedLogins  int
	Metrics          *session.Metrics
	Logger           *slog.Logger
}

// Proxy is the POP3 proxy.
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
var ErrClosed = errors.New("pop3 proxy: closed")

// New returns a Proxy.
func New(opts Options) (*Proxy, error) {
	if opts.Directory == nil {
		return nil, errors.New("pop3 proxy: a directory is required")
	}
	if opts.DefaultRoute != "" {
		if _, ok := opts.Instances[opts.DefaultRoute]; !ok {
			return nil, fmt.Errorf("pop3 proxy: default route %q is not an instance", opts.DefaultRoute)
		}
	}
	if opts.PreAuthTimeout <= 0 {
		opts.PreAuthTimeout = time.Minute
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 10 * time.Minute
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
	p.log = p.log.With("service", "pop3")
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
			p.opts.Metrics.Refused("pop3", "max_connections")
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "-ERR [SYS/TEMP] Too many connections, try again later\r\n")
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

type conn struct {
	p      *Proxy
	nc     net.Conn
	br     *bufio.Reader
	log    *slog.Logger
	id     string
	client netip.AddrPort
	tls    bool
	failed int
	user   string
}

func (c *conn) write(format string, args ...any) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.p.opts.PreAuthTimeout))
	_, err := fmt.Fprintf(c.nc, format+"\r\n", args...)
	return err
}

func (p *Proxy) serveConn(raw net.Conn) {
	defer p.opts.Metrics.Open("pop3")()
	c := &conn{p: p, nc: session.Accept(raw, p.opts.TrustedBalancers)}
	c.nc.SetDeadline(time.Now().Add(p.opts.PreAuthTimeout))
	if err := c.write("+OK mailfleet POP3 proxy ready"); err != nil {
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
		p.opts.Metrics.Refused("pop3", "max_per_client")
		c.log.Warn("connection refused", "reason", err.Error())
		c.write("-ERR [SYS/TEMP] %s", err.Error())
		return
	}
	defer release()
	c.log.Info("session started")
	c.br = bufio.NewReaderSize(c.nc, 1024)
	backend, br := c.authorization()
	if backend == nil {
		return
	}
	defer backend.Close()
	c.log.Info("session proxied")
	splice.Run(c.nc, c.br, backend, br, p.opts.IdleTimeout)
	c.log.Info("session ended")
}

const msgPlaintext = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connection, use STLS first"

func (c *conn) plaintextRefused() bool {
	if c.p.opts.TLSConfig != nil && !c.tls {
		c.p.opts.Metrics.Refused("pop3", "login_before_stls")
		c.write(msgPlaintext)
		return true
	}
	return false
}

// authorization serves the AUTHORIZATION state until a login succeeds at
// the home instance or the session ends.
func (c *conn) authorization() (net.Conn, *bufio.Reader) {
	bad := 0
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.p.opts.PreAuthTimeout))
		line, err := ReadLine(c.br, DefaultMaxLine)
		switch {
		case errors.Is(err, ErrLineTooLong):
			c.p.opts.Metrics.Refused("pop3", "line_too_long")
			c.write("-ERR Line too long")
			return nil, nil
		case err != nil:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.p.opts.Metrics.Refused("pop3", "preauth_timeout")
				c.write("-ERR Timeout, closing")
			}
			return nil, nil
		}
		cmd, err := ParseCommand(line)
		if err != nil {
			c.p.opts.Metrics.Refused("pop3", "syntax")
			if bad++; bad >= 10 {
				c.write("-ERR Too many bad commands")
				return nil, nil
			}
			c.write("-ERR Syntax error")
			continue
		}
		switch cmd.Name {
		case "CAPA":
			c.write("+OK Capability list follows")
			if c.p.opts.TLSConfig != nil && !c.tls {
				c.write("STLS")
			} else {
				c.write("USER")
				c.write("SASL PLAIN")
			}
			c.write("RESP-CODES")
			c.write("AUTH-RESP-CODE")
			c.write("PIPELINING")
			c.write("UIDL")
			c.write("TOP")
			c.write(".")
		case "QUIT":
			c.write("+OK Bye")
			return nil, nil
		case "STLS":
			if c.p.opts.TLSConfig == nil || c.tls {
				c.write("-ERR STLS not available")
				continue
			}
			if c.br.Buffered() > 0 {
				c.p.opts.Metrics.Refused("pop3", "stls_injection")
				c.write("-ERR Commands pipelined after STLS")
				return nil, nil
			}
			c.write("+OK Begin TLS negotiation")
			tc := tls.Server(c.nc, c.p.opts.TLSConfig)
			if err := tc.Handshake(); err != nil {
				c.log.Info("TLS handshake failed", "err", err)
				return nil, nil
			}
			c.nc, c.tls = tc, true
			c.br = bufio.NewReaderSize(c.nc, 1024)
			c.user = ""
		case "USER":
			if c.plaintextRefused() {
				continue
			}
			if cmd.Rest == "" {
				c.write("-ERR USER needs a name")
				continue
			}
			c.user = cmd.Rest
			c.write("+OK Send PASS")
		case "PASS":
			if c.plaintextRefused() {
				continue
			}
			if c.user == "" {
				c.write("-ERR USER first")
				continue
			}
			user := c.user
			c.user = ""
			if be, br, end := c.login(user, cmd.Rest); be != nil || end {
				return be, br
			}
		case "AUTH":
			if len(cmd.Args) == 0 {
				// RFC 5034 §4: AUTH without a mechanism lists them.
				c.write("+OK")
				c.write("PLAIN")
				c.write(".")
				continue
			}
			if !strings.EqualFold(cmd.Args[0], "PLAIN") || len(cmd.Args) > 2 {
				c.write("-ERR Unsupported mechanism")
				continue
			}
			if c.plaintextRefused() {
				continue
			}
			var ir string
			if len(cmd.Args) == 2 {
				ir = cmd.Args[1]
			} else {
				c.write("+ ")
				line, err := ReadLine(c.br, DefaultMaxLine)
				if err != nil {
					return nil, nil
				}
				ir = line
			}
			if ir == "*" {
				c.write("-ERR Authentication canceled")
				continue
			}
			user, pass, ok := decodePlain(ir)
			if !ok {
				c.write("-ERR [AUTH] Invalid PLAIN response")
				continue
			}
			if be, br, end := c.login(user, pass); be != nil || end {
				return be, br
			}
		default:
			c.p.opts.Metrics.Refused("pop3", "not_authenticated")
			if bad++; bad >= 10 {
				c.write("-ERR Too many bad commands")
				return nil, nil
			}
			c.write("-ERR Not allowed before login")
		}
	}
}

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

func (c *conn) login(user, pass string) (net.Conn, *bufio.Reader, bool) {
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
			a, err = directory.Account{Address: user, Instance: c.p.opts.DefaultRoute}, nil
		}
	}
	route, routed := c.p.opts.Instances[a.Instance]
	switch {
	case errors.Is(err, directory.ErrInvalidCredentials), errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrDuplicate):
		log.Info("login failed", "reason", err.Error())
		return nil, nil, c.loginFailed("-ERR [AUTH] Invalid credentials")
	case err != nil:
		c.p.opts.Metrics.Login("pop3", "unavailable")
		log.Error("directory unavailable", "err", err)
		c.write("-ERR [SYS/TEMP] Service temporarily unavailable, try again later")
		return nil, nil, false
	case !routed || route.POP3 == "":
		c.p.opts.Metrics.Login("pop3", "unavailable")
		log.Error("no POP3 route to the account's home", "host", a.Host, "instance", a.Instance)
		c.write("-ERR [SYS/TEMP] Mailbox server unavailable, try again later")
		return nil, nil, false
	}
	be, br, resp, err := c.backendLogin(ctx, route.POP3, user, pass)
	if err != nil {
		c.p.opts.Metrics.Login("pop3", "unavailable")
		c.p.opts.Metrics.Backend(a.Instance, "pop3", false)
		log.Error("home instance unavailable", "instance", a.Instance, "err", err)
		c.write("-ERR [SYS/TEMP] Mailbox server unavailable, try again later")
		return nil, nil, false
	}
	c.p.opts.Metrics.Backend(a.Instance, "pop3", true)
	if be == nil {
		log.Info("login refused by instance", "instance", a.Instance, "response", resp)
		return nil, nil, c.loginFailed(resp)
	}
	c.p.opts.Metrics.Login("pop3", "ok")
	log.Info("logged in", "instance", a.Instance)
	if err := c.write("%s", resp); err != nil {
		be.Close()
		return nil, nil, true
	}
	c.nc.SetDeadline(time.Time{})
	return be, br, false
}

func (c *conn) loginFailed(resp string) bool {
	c.p.opts.Metrics.Login("pop3", "invalid")
	if d := c.p.opts.FailedLoginDelay; d > 0 {
		time.Sleep(d)
	}
	if c.failed++; c.failed >= c.p.opts.MaxFailedLogins {
		c.p.opts.Metrics.Refused("pop3", "too_many_failed_logins")
		c.write("%s", resp)
		return true
	}
	c.write("%s", resp)
	return false
}

var errBackend = errors.New("pop3 proxy: unexpected answer from the instance")

// backendLogin connects to the instance and logs in with AUTH PLAIN. On
// success it returns the connection, its reader and the +OK line; when
// the instance refuses, a nil connection and its -ERR line.
func (c *conn) backendLogin(ctx context.Context, addr, user, pass string) (net.Conn, *bufio.Reader, string, error) {
	nc, err := session.DialBackend(ctx, addr, c.client, c.id, c.p.opts.BackendTimeout)
	if err != nil {
		return nil, nil, "", err
	}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()
	nc.SetDeadline(time.Now().Add(c.p.opts.BackendTimeout))
	br := bufio.NewReaderSize(nc, 1024)
	line, err := ReadLine(br, 4096)
	if err != nil {
		return nil, nil, "", err
	}
	if !strings.HasPrefix(line, "+OK") {
		return nil, nil, "", fmt.Errorf("%w: greeting %q", errBackend, line)
	}
	if c.p.opts.BackendTLS != nil {
		io.WriteString(nc, "STLS\r\n")
		if line, err := ReadLine(br, 4096); err != nil || !strings.HasPrefix(line, "+OK") {
			return nil, nil, "", fmt.Errorf("%w: STLS: %q %v", errBackend, line, err)
		}
		if br.Buffered() > 0 {
			return nil, nil, "", fmt.Errorf("%w: data after STLS", errBackend)
		}
		tc := c.p.opts.BackendTLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return nil, nil, "", err
		}
		nc = tlsConn
		br = bufio.NewReaderSize(nc, 1024)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if _, err := io.WriteString(nc, "AUTH PLAIN "+plain+"\r\n"); err != nil {
		return nil, nil, "", err
	}
	line, err = ReadLine(br, 4096)
	if err != nil {
		return nil, nil, "", err
	}
	switch {
	case strings.HasPrefix(line, "+OK"):
	case strings.HasPrefix(line, "-ERR [SYS/TEMP]"), strings.HasPrefix(line, "-ERR [IN-USE]"):
		// Not a wrong password: the client should hear it as it is.
		return nil, nil, line, nil
	case strings.HasPrefix(line, "-ERR"):
		return nil, nil, line, nil
	default:
		return nil, nil, "", fmt.Errorf("%w: AUTH: %q", errBackend, line)
	}
	nc.SetDeadline(time.Time{})
	ok = true
	return nc, br, line, nil
}
