package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/internal/maildomain"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
)

// Directory finds accounts and checks passwords (runtime/directory).
type Directory interface {
	Lookup(ctx context.Context, address string) (directory.Account, error)
	Authenticate(ctx context.Context, login, password string) (directory.Account, error)
}

// Options configure a Router.
type Options struct {
	// Hostname is announced in the greeting and to the instances. Empty:
	// the machine's host name.
	Hostname string
	// Node prefixes the session ids made here. Empty: "fe".
	Node string
	// Directory is required.
	Directory Directory
	// Instances are the home instances by FQDN (the home-host value);
	// DefaultRoute names the one that takes served-domain recipients that
	// are not in the directory (empty: they get 550).
	Instances    map[string]config.InstanceRoute
	DefaultRoute string
	// Domains are the served mail domains; mail for any other domain is
	// relayed only for authenticated clients.
	Domains []string
	// Routing looks each recipient up in the directory. False: every
	// served-domain recipient goes to DefaultRoute.
	Routing bool
	// LMTP relays to the instances' LMTP listeners instead of SMTP.
	LMTP bool
	// TLSConfig enables STARTTLS; with it set, AUTH is offered only after
	// STARTTLS. Nil: no STARTTLS, AUTH on the plain connection.
	TLSConfig *tls.Config
	// BackendTLS, when set, makes the hop to the instances use STARTTLS
	// with this config (RootCAs for the instances' certificates).
	BackendTLS *tls.Config
	// TrustedBalancers may send a PROXY v2 header with the client's address
	// and a session id. Nil: headers are never read.
	TrustedBalancers []netip.Prefix
	// MaxConnections and MaxPerClient bound the sessions (zero: no limit).
	MaxConnections, MaxPerClient int
	// Timeout bounds the wait for each command. Zero: 5 minutes (RFC 5321
	// §4.5.3.2.7).
	Timeout time.Duration
	// BackendTimeout bounds connecting to an instance. Zero: 10 seconds.
	BackendTimeout time.Duration
	// FailedLoginDelay is the first failed AUTH's delay. Zero: none.
	FailedLoginDelay time.Duration
	// Penalty is the node's failed-login penalty, shared with its IMAP
	// and POP3 proxies (session.Penalty). Nil: the router's own, from
	// FailedLoginDelay.
	Penalty *session.Penalty
	// MaxFailedAuth failed AUTH commands end a session (421). Zero: 3.
	MaxFailedAuth int
	// PreAuth is the node's registry of connections that have not logged
	// in (session.PreAuth); a session leaves it at its first AUTH that
	// succeeds or MAIL command. Nil: no such limit.
	PreAuth *session.PreAuth
	// MaxMessageBytes and MaxRecipients are announced and enforced. Zero:
	// 50 MiB and 1000.
	MaxMessageBytes int64
	MaxRecipients   int
	// Metrics, when set, counts sessions, refusals and messages.
	Metrics *session.Metrics
	// Logger receives the structured log. Nil: discarded.
	Logger *slog.Logger
}

// Router is the SMTP router.
type Router struct {
	opts    Options
	srv     *smtp.Server
	gate    session.Gate
	domains map[string]bool
}

// New returns a Router.
func New(opts Options) (*Router, error) {
	if opts.Directory == nil {
		return nil, errors.New("router: a directory is required")
	}
	if opts.DefaultRoute != "" {
		if _, ok := opts.Instances[opts.DefaultRoute]; !ok {
			return nil, fmt.Errorf("router: default route %q is not an instance", opts.DefaultRoute)
		}
	}
	if opts.Penalty == nil {
		opts.Penalty = session.NewPenalty(opts.FailedLoginDelay)
	}
	if opts.MaxFailedAuth <= 0 {
		opts.MaxFailedAuth = 3
	}
	if opts.LMTP && opts.BackendTLS != nil {
		// go-smtp's LMTP client cannot start TLS; never fall back to plain.
		return nil, errors.New("router: TLS to the instances is not supported over LMTP")
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.BackendTimeout <= 0 {
		opts.BackendTimeout = 10 * time.Second
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 50 << 20
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 1000
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{opts: opts, domains: map[string]bool{},
		gate: session.Gate{Service: "smtp", Node: opts.Node, TrustedBalancers: opts.TrustedBalancers,
			Total: session.Limiter{Max: opts.MaxConnections}, Clients: session.Limiter{PerClient: opts.MaxPerClient},
			Metrics: opts.Metrics, Log: logger.With("service", "smtp")}}
	for _, d := range opts.Domains {
		if c, err := maildomain.Canonical(d); err == nil {
			r.domains[c] = true
		}
	}
	s := smtp.NewServer(smtp.BackendFunc(r.newSession))
	s.Domain = opts.Hostname
	s.TLSConfig = opts.TLSConfig
	s.AllowInsecureAuth = opts.TLSConfig == nil
	s.ReadTimeout = opts.Timeout
	s.WriteTimeout = opts.Timeout
	s.MaxMessageBytes = opts.MaxMessageBytes
	s.MaxRecipients = opts.MaxRecipients
	s.MaxLineLength = 2000
	s.ErrorLog = log.New(io.Discard, "", 0)
	r.srv = s
	return r, nil
}

// Serve accepts sessions on l until Close.
func (r *Router) Serve(l net.Listener) error {
	return r.srv.Serve(&listener{Listener: l, r: r})
}

// Close closes the listeners and every session.
func (r *Router) Close() error { return r.srv.Close() }

// Shutdown stops accepting and waits for the sessions to end until ctx is
// done.
func (r *Router) Shutdown(ctx context.Context) error { return r.srv.Shutdown(ctx) }

// listener applies the total limit and wraps each connection for the PROXY
// header and the per-connection state.
type listener struct {
	net.Listener
	r *Router
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		nc, release, ok := l.r.gate.Admit(c, "421 4.3.2 Too many connections, try again later")
		if !ok {
			continue
		}
		return &conn{Conn: nc, release: []func(){release, l.r.opts.Metrics.Open("smtp")}}, nil
	}
}

// conn carries what outlives one go-smtp Session (STARTTLS starts a new
// one): the session id, the client, the account once authenticated.
type conn struct {
	net.Conn
	mu      sync.Mutex
	release []func()
	closed  bool

	id      string
	client  netip.AddrPort
	log     *slog.Logger
	account *directory.Account
	// leavePreAuth takes the connection out of the node's PreAuth.
	leavePreAuth func()
}

func (c *conn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for _, f := range c.release {
			f()
		}
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

func connOf(c *smtp.Conn) *conn {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	rc, _ := nc.(*conn)
	return rc
}

func (r *Router) newSession(c *smtp.Conn) (smtp.Session, error) {
	rc := connOf(c)
	if rc == nil {
		return nil, errors.New("router: unexpected connection type")
	}
	if rc.log == nil {
		// The client has spoken (EHLO), so a balancer's header is in.
		who, release, err := r.gate.Identify(rc.Conn)
		if err != nil {
			c.Reject()
			return nil, err
		}
		rc.id, rc.client, rc.log = who.ID, who.Client, who.Log
		rc.leavePreAuth = r.opts.PreAuth.Enter(who.Client.Addr(), func() {
			who.Log.Info("closed to make room for new connections before login")
			rc.Close()
		})
		rc.mu.Lock()
		rc.release = append(rc.release, release, rc.leavePreAuth)
		rc.mu.Unlock()
		rc.log.Info("session started", "helo", c.Hostname())
	}
	_, isTLS := c.TLSConnectionState()
	return &smtpSession{r: r, c: rc, tls: isTLS}, nil
}

// smtpSession is one go-smtp session: the current transaction.
type smtpSession struct {
	r   *Router
	c   *conn
	tls bool
	// failedAuth counts the session's failed AUTH commands.
	failedAuth int

	from     string
	mailOpts *smtp.MailOptions
	// The transaction's home instance and the relay to it, from its first
	// accepted recipient on.
	instance string
	relay    *smtp.Client
	rcpts    []string
}

// AuthMechanisms implements smtp.AuthSession.
func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

// Auth implements smtp.AuthSession.
func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	check := func(login, password string) error { return s.authenticate(login, password) }
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, login, password string) error {
			if identity != "" && identity != login {
				return s.fail("authorization identity differs")
			}
			return check(login, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// fail answers a failed AUTH; the last one a session may have ends it
// (421), as Postfix's smtpd_hard_error_limit would, only sooner.
func (s *smtpSession) fail(reason string) error {
	s.r.opts.Metrics.Login("smtp", "invalid")
	s.c.log.Info("authentication failed", "reason", reason)
	s.failedAuth++
	if s.failedAuth >= s.r.opts.MaxFailedAuth {
		s.r.opts.Metrics.Refused("smtp", "too_many_failed_logins")
		s.c.log.Info("too many failed authentications, closing", "failures", s.failedAuth)
		// After go-smtp has written the answer.
		time.AfterFunc(200*time.Millisecond, func() { s.c.Close() })
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentications, closing connection"}
	}
	return smtp.ErrAuthFailed
}

func (s *smtpSession) authenticate(login, password string) error {
	if s.r.opts.TLSConfig != nil && !s.tls {
		// go-smtp does not offer AUTH before STARTTLS here; refuse anyway.
		s.r.opts.Metrics.Refused("smtp", "auth_before_starttls")
		return smtp.ErrAuthUnsupported
	}
	// One check at a time per client address; a failure is answered after
	// the node's penalty (session.Penalty).
	attempt := s.r.opts.Penalty.Attempt(s.c.client.Addr(), login)
	defer attempt.Release()
	ctx, cancel := context.WithTimeout(context.Background(), s.r.opts.BackendTimeout)
	defer cancel()
	a, err := s.r.opts.Directory.Authenticate(ctx, login, password)
	switch {
	case errors.Is(err, directory.ErrInvalidCredentials):
		attempt.Failed()
		return s.fail(err.Error())
	case err != nil:
		s.r.opts.Metrics.Login("smtp", "unavailable")
		s.c.log.Error("authentication impossible", "err", err)
		return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	}
	attempt.Succeeded()
	if s.c.leavePreAuth != nil {
		s.c.leavePreAuth()
	}
	s.r.opts.Metrics.Login("smtp", "ok")
	s.c.account = &a
	s.c.log.Info("authenticated", "user", a.Address, "home", a.Instance)
	return nil
}

// Mail implements smtp.Session: the sender is kept until the first
// recipient tells which instance to open the relay to.
func (s *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	s.abort()
	if s.c.leavePreAuth != nil {
		s.c.leavePreAuth() // a transaction: no longer an idle connection
	}
	if badPath(from) {
		// The client's fault, told as such: never a backend's.
		return errBadPath
	}
	if a := s.c.account; a != nil && from != "" && !sameAddress(from, a.Address) {
		// An authenticated user sends as itself only (Postfix's
		// reject_sender_login_mismatch).
		s.r.opts.Metrics.Refused("smtp", "sender_login_mismatch")
		s.c.log.Info("sender refused: not the login's address", "from", from, "login", a.Address)
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Sender address rejected: not owned by the authenticated user"}
	}
	s.from, s.mailOpts = from, opts
	return nil
}

// badPath says whether a MAIL or RCPT path carries what no address may:
// control characters (a CR would break the relay's command line).
func badPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return true
		}
	}
	return false
}

// sameAddress compares two addresses: the local parts in ASCII case, the
// domains in their canonical form.
func sameAddress(a, b string) bool {
	la, da, ok1 := strings.Cut(a, "@")
	lb, db, ok2 := strings.Cut(b, "@")
	return ok1 && ok2 && strings.EqualFold(la, lb) && isASCII(la) && maildomain.Equal(da, db)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var (
	errRelayDenied   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: authenticate first"}
	errBadPath       = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad address syntax"}
	errLiteralDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: no mail to address literals"}
	errNoSuchUser    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user in the directory"}
	errDirectory     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "Directory unavailable, try again later"}
	errNoRoute       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "No route to the recipient's mailbox, try again later"}
	errInstanceDown  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "Mailbox server unavailable, try again later"}
	errOtherHome     = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients: send this one in another transaction"}
)

// route is the instance that takes mail for to, or an SMTP error.
func (s *smtpSession) route(to string) (string, error) {
	_, domain, ok := strings.Cut(to, "@")
	if ok && strings.HasPrefix(domain, "[") {
		// An address literal names a host, not a domain: never relayed,
		// whoever asks.
		s.r.opts.Metrics.Refused("smtp", "relay")
		return "", errLiteralDenied
	}
	domain, err := maildomain.Canonical(domain)
	if !ok || err != nil {
		return "", &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address"}
	}
	if !s.r.domains[domain] {
		if s.c.account == nil {
			s.r.opts.Metrics.Refused("smtp", "relay")
			return "", errRelayDenied
		}
		// An account's outside mail goes through its own home instance,
		// whose queue delivers it.
		if s.c.account.Instance == "" {
			return "", errNoRoute
		}
		return s.c.account.Instance, nil
	}
	if !s.r.opts.Routing {
		if s.r.opts.DefaultRoute == "" {
			return "", errNoRoute
		}
		return s.r.opts.DefaultRoute, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.r.opts.BackendTimeout)
	defer cancel()
	a, err := s.r.opts.Directory.Lookup(ctx, to)
	switch {
	case errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrDuplicate):
		if s.r.opts.DefaultRoute != "" {
			// The default route's instance decides about the address.
			return s.r.opts.DefaultRoute, nil
		}
		s.r.opts.Metrics.Refused("smtp", "unknown_recipient")
		return "", errNoSuchUser
	case err != nil:
		s.c.log.Error("directory lookup failed", "rcpt", to, "err", err)
		return "", errDirectory
	case a.Instance == "":
		s.c.log.Error("home host is no known instance", "rcpt", to, "host", a.Host)
		return "", errNoRoute
	}
	return a.Instance, nil
}

// Rcpt implements smtp.Session: the recipient is passed to its home
// instance at once, so the instance's answer is the sender's answer.
func (s *smtpSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if badPath(to) {
		return errBadPath
	}
	inst, err := s.route(to)
	if err != nil {
		s.c.log.Info("recipient refused", "rcpt", to, "err", err)
		return err
	}
	if s.instance != "" && inst != s.instance {
		s.r.opts.Metrics.Refused("smtp", "other_instance")
		return errOtherHome
	}
	// LMTP answers each recipient at the end of DATA, but the sender gets
	// one answer: with one recipient per transaction that answer is exact.
	if s.r.opts.LMTP && len(s.rcpts) > 0 {
		s.r.opts.Metrics.Refused("smtp", "lmtp_one_recipient")
		return errOtherHome
	}
	if s.relay == nil {
		if err := s.open(inst); err != nil {
			return err
		}
	}
	if err := s.relay.Rcpt(to, nil); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.c.log.Info("recipient refused by its instance", "rcpt", to, "instance", inst, "err", err)
			return se
		}
		s.c.log.Error("relay failed", "instance", inst, "err", err)
		s.r.opts.Metrics.Backend(inst, "smtp", false)
		s.abort()
		return errInstanceDown
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// open connects the relay to inst and starts the transaction there.
func (s *smtpSession) open(inst string) error {
	route := s.r.opts.Instances[inst]
	addr := route.SMTP
	if s.r.opts.LMTP {
		addr = route.LMTP
	}
	if addr == "" {
		s.c.log.Error("instance has no listener to relay to", "instance", inst, "lmtp", s.r.opts.LMTP)
		return errNoRoute
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.r.opts.BackendTimeout)
	defer cancel()
	// The account this session authenticated as travels in the PROXY
	// header: the store relays to other domains for it only.
	auth := ""
	if s.c.account != nil {
		auth = s.c.account.Address
	}
	nc, err := session.DialBackend(ctx, addr, s.c.client, s.c.id, auth, s.r.opts.BackendTimeout)
	if err != nil {
		s.c.log.Error("instance unreachable", "instance", inst, "addr", addr, "err", err)
		s.r.opts.Metrics.Backend(inst, "smtp", false)
		return errInstanceDown
	}
	var cl *smtp.Client
	switch {
	case s.r.opts.LMTP:
		cl = smtp.NewClientLMTP(nc)
	case s.r.opts.BackendTLS != nil:
		tc := s.r.opts.BackendTLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		nc.SetDeadline(time.Now().Add(s.r.opts.BackendTimeout))
		cl, err = smtp.NewClientStartTLS(nc, tc)
		nc.SetDeadline(time.Time{})
		if err != nil {
			nc.Close()
			s.c.log.Error("STARTTLS to instance failed", "instance", inst, "err", err)
			s.r.opts.Metrics.Backend(inst, "smtp", false)
			return errInstanceDown
		}
	default:
		cl = smtp.NewClient(nc)
	}
	cl.CommandTimeout = s.r.opts.BackendTimeout
	cl.SubmissionTimeout = 10 * time.Minute
	if s.r.opts.BackendTLS == nil {
		// (With STARTTLS the client has said EHLO already.)
		err = cl.Hello(s.r.opts.Hostname)
	}
	if err == nil {
		err = cl.Mail(s.from, s.mailOpts)
	}
	if err != nil {
		cl.Close()
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			// The instance refuses the transaction: that is its answer.
			s.c.log.Info("transaction refused by instance", "instance", inst, "err", err)
			s.r.opts.Metrics.Backend(inst, "smtp", true)
			return se
		}
		s.c.log.Error("relay setup failed", "instance", inst, "err", err)
		s.r.opts.Metrics.Backend(inst, "smtp", false)
		return errInstanceDown
	}
	s.r.opts.Metrics.Backend(inst, "smtp", true)
	s.relay, s.instance = cl, inst
	return nil
}

// Data implements smtp.Session: 250 only once the home instance said 250.
func (s *smtpSession) Data(r io.Reader) error {
	defer s.abort()
	if s.relay == nil {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	}
	w, err := s.relay.Data()
	if err != nil {
		return s.dataErr(err)
	}
	client := &readErr{r: r}
	if _, err := io.Copy(w, client); err != nil {
		// A message over the size limit or a broken client: the
		// instance must not get a truncated message, so drop the relay
		// without ending the DATA.
		s.relay.Close()
		s.relay = nil
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		if client.err != nil {
			// The client's side failed (it went away mid-DATA): not the
			// instance's fault, which stays up in the metrics.
			s.r.opts.Metrics.Message("client_aborted")
			s.c.log.Info("client aborted during data", "instance", s.instance, "err", client.err)
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message not received in full"}
		}
		return s.dataErr(err)
	}
	if s.r.opts.LMTP {
		_, err := w.CloseWithLMTPResponse()
		var lerr smtp.LMTPDataError
		if errors.As(err, &lerr) {
			for _, e := range lerr {
				s.r.opts.Metrics.Message("refused")
				return e
			}
		}
		if err != nil {
			return s.dataErr(err)
		}
	} else if _, err := w.CloseWithResponse(); err != nil {
		return s.dataErr(err)
	}
	s.r.opts.Metrics.Message("accepted")
	s.c.log.Info("message relayed", "instance", s.instance, "from", s.from, "rcpts", len(s.rcpts))
	return nil
}

// readErr remembers the error of the client's side of a copy.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func (s *smtpSession) dataErr(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		s.r.opts.Metrics.Message("refused")
		s.c.log.Info("message refused by instance", "instance", s.instance, "err", err)
		return se
	}
	s.r.opts.Metrics.Message("failed")
	s.r.opts.Metrics.Backend(s.instance, "smtp", false)
	s.c.log.Error("relay failed during data", "instance", s.instance, "err", err)
	return errInstanceDown
}

// abort ends the transaction with the instance, if one is open.
func (s *smtpSession) abort() {
	if s.relay != nil {
		s.relay.Quit()
		s.relay.Close()
	}
	s.relay, s.instance, s.rcpts = nil, "", nil
}

// Reset implements smtp.Session.
func (s *smtpSession) Reset() {
	s.abort()
	s.from, s.mailOpts = "", nil
}

// Logout implements smtp.Session.
func (s *smtpSession) Logout() error {
	s.Reset()
	return nil
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl has only as a client.
type loginServer struct {
	check    func(login, password string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(response) == 0 {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.username, string(response))
	}
	return nil, true, errors.New("router: unexpected LOGIN response")
}
