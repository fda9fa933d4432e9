package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/internal/daemon"
	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/imap"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
	"github.com/mailfleet/mailfleet/runtime/store/pop3"
	"github.com/mailfleet/mailfleet/runtime/store/proxyhdr"
	"github.com/mailfleet/mailfleet/runtime/store/queue"
	"github.com/mailfleet/mailfleet/runtime/store/smtp"
)

// listenerKinds are the listener names a store config may use.
var listenerKinds = map[string]bool{"smtp": true, "lmtp": true, "imap": true, "imaps": true, "pop3": true, "pop3s": true, "admin": true}

// Instance is one running store: its storage, directory and listeners.
type Instance struct {
	cfg       config.Store
	log       *slog.Logger
	store     *maildir.Store
	dir       auth.Directory
	tlsConfig *tls.Config
	secret    string

	queue      *queue.Queue
	stopQueue  context.CancelFunc
	smtp, lmtp *smtp.Server
	imap       *imap.Server
	pop3       *pop3.Server
	admin      *http.Server

	listeners daemon.Listeners
	wg        sync.WaitGroup
	started   time.Time

	mu     sync.Mutex
	moving map[string]bool
	// inflight counts the deliveries being written, by account, so that
	// marking an account moving can wait for them (see hold).
	inflight map[string]*deliveries

	metrics *metrics
}

// Options tune an Instance beyond its config. The zero value is usable.
type Options struct {
	// Logger receives the structured log. Nil discards it.
	Logger *slog.Logger
}

// New prepares an instance from a validated config; Listen binds its
// sockets.
func New(cfg *config.Store, opts Options) (*Instance, error) {
	for kind := range cfg.Listeners {
		if !listenerKinds[kind] {
			return nil, fmt.Errorf("store: unknown listener kind %q", kind)
		}
	}
	in := &Instance{cfg: *cfg, listeners: daemon.Listeners{}, moving: map[string]bool{}, inflight: map[string]*deliveries{}}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	in.log = opts.Logger.With("instance", cfg.Instance)
	for _, p := range []string{cfg.StoragePath, cfg.QueuePath, cfg.RunPath} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	st, err := maildir.Open(cfg.StoragePath, cfg.Hostname)
	if err != nil {
		return nil, err
	}
	in.store = st
	switch {
	case cfg.PasswdFile != "":
		d, err := auth.NewPasswdFile(cfg.PasswdFile)
		if err != nil {
			return nil, err
		}
		in.dir = d
	case cfg.LDAP != nil:
		d, err := auth.NewLDAP(cfg.LDAP, cfg.Hostname)
		if err != nil {
			return nil, err
		}
		in.dir = d
	}
	secret, err := os.ReadFile(cfg.AdminSecretFile)
	if err != nil {
		return nil, fmt.Errorf("store: admin secret: %w", err)
	}
	in.secret = strings.TrimSpace(string(secret))
	if len(in.secret) < 16 {
		return nil, errors.New("store: admin secret must be at least 16 characters")
	}
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("store: tls: %w", err)
		}
		in.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// Backoff scales with the retry period so that a short period (a test,
	// a site that wants fast bounces) still sees several attempts; with the
	// default 5 days it is 5 minutes growing to an hour.
	retry := cfg.RetryPeriod.D()
	if retry == 0 {
		retry = 5 * 24 * time.Hour
	}
	kinds := make([]string, 0, len(cfg.Listeners))
	for kind := range cfg.Listeners {
		kinds = append(kinds, kind)
	}
	in.metrics = newMetrics(cfg.Instance, kinds, func() (int, error) { return in.queue.Len() }, in.uptime)
	q, err := queue.Open(queue.Options{Dir: cfg.QueuePath, Hostname: cfg.Hostname, Resolver: resolver(cfg.Resolver),
		RetryPeriod: retry, MinBackoff: max(min(5*time.Minute, retry/16), time.Millisecond), MaxBackoff: max(min(time.Hour, retry/4), time.Millisecond),
		Bounce: in.bounce, Attempted: in.metrics.outbound, Logger: in.log.With("component", "queue")})
	if err != nil {
		return nil, err
	}
	in.queue = q
	lim := cfg.Limits
	// Messages arrive into the run partition's spool, one unlinked file
	// each, never whole in memory.
	spool := filepath.Join(cfg.RunPath, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for _, proto := range []string{"smtp", "lmtp"} {
		if _, ok := cfg.Listeners[proto]; !ok {
			continue
		}
		s := smtp.New(smtp.Options{Hostname: cfg.Hostname, Store: st, Directory: in.dir, DomainServed: in.domainServed,
			Relay: in.relayAllowed, Enqueue: in.enqueue, LMTP: proto == "lmtp", SpoolDir: spool,
			TLSConfig: in.tlsConfig, MaxMessageBytes: lim.MaxMessageBytes, MaxRecipients: lim.MaxRecipients,
			Refuse: in.refuse, Hold: in.hold, Delivered: in.metrics.delivered,
			Rejected: func(reason string) { in.metrics.refused(proto, reason) }, Logger: in.log})
		if proto == "smtp" {
			in.smtp = s
		} else {
			in.lmtp = s
		}
	}
	in.imap = imap.New(imap.Options{Store: st, Auth: meteredAuth{in.dir, "imap", in.metrics}, TLSConfig: in.tlsConfig,
		FailedLoginDelay: lim.FailedLoginDelay.D(), AppendLimit: uint32(min(lim.MaxMessageBytes, 1<<31)),
		Refuse: in.refuser("imap"), Logger: in.log})
	in.pop3 = pop3.New(pop3.Options{Hostname: cfg.Hostname, Store: st, Auth: meteredAuth{in.dir, "pop3", in.metrics},
		TLSConfig: in.tlsConfig, IdleTimeout: lim.IdleTimeout.D(), FailedLoginDelay: lim.FailedLoginDelay.D(),
		Refuse: in.refuser("pop3"), Logger: in.log})
	in.admin = &http.Server{Handler: in.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	return in, nil
}

// domainServed: a domain of the config, or one created through the admin
// API. With neither configured, every domain the directory knows is served.
func (in *Instance) domainServed(domain string) bool {
	for _, d := range in.cfg.Domains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	if _, err := in.store.Domain(domain); err == nil {
		return true
	}
	if len(in.cfg.Domains) == 0 {
		ds, err := in.store.Domains()
		return err == nil && len(ds) == 0
	}
	return false
}

// relayAllowed: only the trusted networks (the front-end routers) may hand
// over mail for other domains.
func (in *Instance) relayAllowed(peer net.Addr, authenticated string) bool {
	// Only a session a trusted front-end authenticated (its mark in the
	// PROXY header) may relay: a front-end's unauthenticated session, or
	// anything else from its network, may not.
	if authenticated == "" {
		return false
	}
	ta, ok := peer.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	for _, t := range in.cfg.TrustedNetworks {
		if p, err := netip.ParsePrefix(t); err == nil && p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

func (in *Instance) enqueue(from string, rcpts []string, msg io.Reader) error {
	_, err := in.queue.Enqueue(from, rcpts, msg)
	return err
}

// bounce delivers a delivery status notification to a local sender.
func (in *Instance) bounce(to string, msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, ok, err := in.dir.Lookup(ctx, to)
	if errors.Is(err, auth.ErrElsewhere) {
		// The sender's account has moved: the notification goes to its
		// new home the way outside mail does (null sender, so it never
		// causes another), not into a mailbox left here.
		in.log.Info("notification for a sender homed on another instance queued", "to", to, "err", err)
		_, err := in.queue.Enqueue("", []string{to}, bytes.NewReader(msg))
		if err == nil {
			in.metrics.bounces.Inc()
		}
		return err
	}
	if err != nil {
		return err
	}
	if !ok {
		in.log.Warn("notification for a sender that is not local dropped", "to", to)
		return nil
	}
	a, err := in.store.Account(addr)
	if err != nil {
		return err
	}
	if _, err := a.Inbox().Deliver(bytes.NewReader(msg), maildir.DeliverOptions{IgnoreQuota: true}); err != nil {
		return err
	}
	in.metrics.bounces.Inc()
	return nil
}

// resolver asks the configured nameservers, by priority, falling back to
// the system's when none is configured.
func resolver(rc config.Resolver) *net.Resolver {
	if len(rc.Nameservers) == 0 {
		return net.DefaultResolver
	}
	ns := append([]config.Nameserver(nil), rc.Nameservers...)
	sort.SliceStable(ns, func(i, j int) bool { return ns[i].Priority < ns[j].Priority })
	timeout := rc.Timeout.D()
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	tries := rc.Retries + 1
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var last error
		for t := 0; t < tries; t++ {
			for _, n := range ns {
				d := net.Dialer{Timeout: timeout}
				c, err := d.DialContext(ctx, network, net.JoinHostPort(n.Address, "53"))
				if err == nil {
					return c, nil
				}
				last = err
			}
		}
		return nil, last
	}}
}

// refuse answers logins and deliveries for an account being moved.
func (in *Instance) refuse(addr string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.moving[addr] {
		return errors.New("account is being moved, try again later")
	}
	return nil
}

// deliveries are the messages being written to one account.
type deliveries struct {
	n    int
	done chan struct{} // closed when n drops to 0
}

// hold starts the writing of a message to the accounts addrs, unless one
// of them is moving (marked since its RCPT was accepted: the message
// would miss the copy). release ends it.
func (in *Instance) hold(addrs []string) (release func(), err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, a := range addrs {
		if in.moving[a] {
			return nil, errors.New("account is being moved, try again later")
		}
	}
	for _, a := range addrs {
		d := in.inflight[a]
		if d == nil {
			d = &deliveries{done: make(chan struct{})}
			in.inflight[a] = d
		}
		d.n++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			for _, a := range addrs {
				d := in.inflight[a]
				if d.n--; d.n == 0 {
					close(d.done)
					delete(in.inflight, a)
				}
			}
		})
	}, nil
}

// markMoving marks addr moving and returns once no message is being
// written to it any more: what it holds then is what an export copies.
// Deliveries accepted before the mark but not yet written are refused
// with 451 at their end of data (hold) and come again.
func (in *Instance) markMoving(ctx context.Context, addr string) error {
	in.mu.Lock()
	in.moving[addr] = true
	d := in.inflight[addr]
	in.mu.Unlock()
	if d == nil {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refuser is refuse for the logins of one protocol, counted.
func (in *Instance) refuser(proto string) func(string) error {
	return func(addr string) error {
		err := in.refuse(addr)
		if err != nil {
			in.metrics.refused(proto, "moving")
		}
		return err
	}
}

// Listen binds every configured listener. Once it returns, each of them
// accepts connections (the kernel queues them until Serve picks them up).
func (in *Instance) Listen() error {
	ls, err := daemon.Listen("store", in.cfg.Listeners, in.wrapListener)
	if err != nil {
		return err
	}
	in.listeners = ls
	return nil
}

// wrapListener adds to a client listener its count, its connection limit
// (beyond it, connections wait in the kernel's queue), the PROXY header
// from the trusted peers and TLS for the implicit-TLS kinds; the admin
// listener gets TLS when the instance has a certificate.
func (in *Instance) wrapListener(kind string, l net.Listener) (net.Listener, error) {
	if kind == "admin" {
		if in.tlsConfig != nil {
			l = tls.NewListener(l, in.tlsConfig)
		}
		return l, nil
	}
	if (kind == "imaps" || kind == "pop3s") && in.tlsConfig == nil {
		return nil, fmt.Errorf("listener %s needs a tls certificate", kind)
	}
	l = countedListener{Listener: l, kind: kind, m: in.metrics}
	if n := in.cfg.Limits.MaxConnections; n > 0 {
		l = netutil.LimitListener(l, n)
	}
	l, err := proxyhdr.Wrap(l, in.cfg.TrustedNetworks)
	if err != nil {
		return nil, err
	}
	if kind == "imaps" || kind == "pop3s" {
		l = tls.NewListener(l, in.tlsConfig)
	}
	return l, nil
}

// Addrs returns the bound address of each listener.
func (in *Instance) Addrs() map[string]string { return in.listeners.Addrs() }

// Serve starts serving on every listener.
func (in *Instance) Serve() {
	in.started = time.Now()
	qctx, cancel := context.WithCancel(context.Background())
	in.stopQueue = cancel
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.queue.Run(qctx)
	}()
	daemon.Serve(&in.wg, in.log, in.listeners, func(kind string) func(net.Listener) error {
		switch kind {
		case "smtp":
			return in.smtp.Serve
		case "lmtp":
			return in.lmtp.Serve
		case "imap", "imaps":
			return in.imap.Serve
		case "pop3", "pop3s":
			return in.pop3.Serve
		case "admin":
			return in.admin.Serve
		}
		return nil
	}, closedErrs...)
}

// closedErrs are the servers' own errors for a closed server.
var closedErrs = []error{pop3.ErrServerClosed, smtp.ErrServerClosed, imap.ErrServerClosed}

func isClosed(err error) bool { return daemon.Closed(err, closedErrs...) }

// Close stops the instance at once: Shutdown without waiting.
func (in *Instance) Close() error { return daemon.CloseNow(in.Shutdown) }

// Shutdown stops accepting, lets running SMTP transactions finish until
// ctx ends, then closes every session.
func (in *Instance) Shutdown(ctx context.Context) error {
	in.log.Info("shutting down")
	var errs []error
	for _, s := range []*smtp.Server{in.smtp, in.lmtp} {
		if s != nil {
			if err := s.Shutdown(ctx); err != nil && !isClosed(err) {
				errs = append(errs, err)
			}
		}
	}
	if in.stopQueue != nil {
		in.stopQueue()
	}
	in.admin.Shutdown(ctx)
	in.imap.Close()
	in.pop3.Close()
	in.listeners.Close()
	done := make(chan struct{})
	go func() { in.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	in.log.Info("stopped")
	return errors.Join(errs...)
}

// Store returns the instance's storage.
func (in *Instance) Store() *maildir.Store { return in.store }

// LogFile opens the instance's log file, named after its log name.
func LogFile(cfg *config.Store) (*os.File, error) {
	if cfg.LogDir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(cfg.LogDir, 0o750); err != nil {
		return nil, err
	}
	name := cfg.LogName
	if name == "" {
		name = cfg.Instance
	}
	return os.OpenFile(filepath.Join(cfg.LogDir, "store-"+name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// uptime is the time since the instance started serving (0 before).
func (in *Instance) uptime() time.Duration {
	if in.started.IsZero() {
		return 0
	}
	return time.Since(in.started)
}
