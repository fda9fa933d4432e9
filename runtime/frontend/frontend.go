package frontend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory"
	"github.com/mailfleet/mailfleet/runtime/internal/daemon"
	"github.com/mailfleet/mailfleet/runtime/proxy/imap"
	"github.com/mailfleet/mailfleet/runtime/proxy/pop3"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/router"
)

// preAuthPerClient bounds the connections of one client address that have
// not logged in: logins take milliseconds, so even an office behind one
// address rarely has more than a few in flight.
const preAuthPerClient = 16

// Node is one running front-end node.
type Node struct {
	cfg     config.Frontend
	log     *slog.Logger
	dir     *directory.Directory
	imap    *imap.Proxy
	pop3    *pop3.Proxy
	smtp    *router.Router
	admin   *http.Server
	metrics *session.Metrics

	listeners daemon.Listeners
	wg        sync.WaitGroup
	started   time.Time
}

// Options tune a Node beyond its config. The zero value is usable.
type Options struct {
	// Logger receives the structured log. Nil discards it.
	Logger *slog.Logger
}

// New prepares a node from a validated config; Listen binds its sockets.
func New(cfg *config.Frontend, opts Options) (*Node, error) {
	n := &Node{cfg: *cfg, listeners: daemon.Listeners{}}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n.log = opts.Logger.With("node", cfg.Node)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.metrics = session.NewMetrics(reg)
	d, err := directory.New(directory.Options{LDAP: cfg.LDAP, Instances: cfg.Instances, Observer: n.metrics,
		Logger: n.log.With("component", "directory")})
	if err != nil {
		return nil, err
	}
	n.dir = d
	trusted, err := session.ParsePrefixes(cfg.TrustedBalancers)
	if err != nil {
		return nil, err
	}
	var backendTLS *tls.Config
	if cfg.BackendTLS {
		backendTLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.BackendCA != "" {
			pem, err := os.ReadFile(cfg.BackendCA)
			if err != nil {
				return nil, fmt.Errorf("frontend: backend ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("frontend: backend ca %s holds no certificate", cfg.BackendCA)
			}
			backendTLS.RootCAs = pool
		}
	}
	lim := cfg.Limits
	// One failed-login penalty for the node's three protocols: guesses
	// spread over IMAP, POP3 and SMTP AUTH count together.
	penalty := session.NewPenalty(lim.FailedLoginDelay.D())
	penalty.Penalized = n.metrics.Penalized
	// Connections that have not logged in may take half the node, 16 of
	// them one client address; beyond, the oldest is closed (PreAuth).
	preAuth := &session.PreAuth{Max: lim.MaxConnections / 2, PerClient: preAuthPerClient,
		Dropped: func(limit string) { n.metrics.Refused("preauth", "oldest_closed_"+limit) }}
	if p := cfg.IMAP; p != nil {
		tc, err := serverTLS(p.TLS)
		if err != nil {
			return nil, err
		}
		if n.imap, err = imap.New(imap.Options{Node: cfg.Node, Directory: d, Instances: cfg.Instances, DefaultRoute: cfg.DefaultRoute,
			AuthenticateOnProxy: p.AuthenticateOnProxy, TLSConfig: tc, BackendTLS: backendTLS, TrustedBalancers: trusted,
			MaxConnections: lim.MaxConnections, MaxPerClient: lim.MaxPerClient, PreAuthTimeout: min(lim.PreAuthTimeout.D(), config.LoginTimeout),
			IdleTimeout: lim.IdleTimeout.D(), FailedLoginDelay: lim.FailedLoginDelay.D(), Penalty: penalty, PreAuth: preAuth, Metrics: n.metrics, Logger: n.log}); err != nil {
			return nil, err
		}
	}
	if p := cfg.POP3; p != nil {
		tc, err := serverTLS(p.TLS)
		if err != nil {
			return nil, err
		}
		if n.pop3, err = pop3.New(pop3.Options{Node: cfg.Node, Directory: d, Instances: cfg.Instances, DefaultRoute: cfg.DefaultRoute,
			AuthenticateOnProxy: p.AuthenticateOnProxy, TLSConfig: tc, BackendTLS: backendTLS, TrustedBalancers: trusted,
			MaxConnections: lim.MaxConnections, MaxPerClient: lim.MaxPerClient, PreAuthTimeout: min(lim.PreAuthTimeout.D(), config.LoginTimeout),
			IdleTimeout: min(lim.IdleTimeout.D(), 10*time.Minute), FailedLoginDelay: lim.FailedLoginDelay.D(),
			Penalty: penalty, PreAuth: preAuth, Metrics: n.metrics, Logger: n.log}); err != nil {
			return nil, err
		}
	}
	if s := cfg.SMTP; s != nil {
		tc, err := serverTLS(s.TLS)
		if err != nil {
			return nil, err
		}
		host, _ := os.Hostname()
		if cfg.Node != "" {
			host = cfg.Node
		}
		if n.smtp, err = router.New(router.Options{Hostname: host, Node: cfg.Node, Directory: d, Instances: cfg.Instances,
			DefaultRoute: cfg.DefaultRoute, Domains: cfg.Domains, Routing: s.Routing, LMTP: s.LMTP, TLSConfig: tc,
			BackendTLS: backendTLS, TrustedBalancers: trusted, MaxConnections: lim.MaxConnections, MaxPerClient: lim.MaxPerClient,
			Timeout: lim.PreAuthTimeout.D(), FailedLoginDelay: lim.FailedLoginDelay.D(), Penalty: penalty, PreAuth: preAuth, MaxMessageBytes: lim.MaxMessageBytes,
			MaxRecipients: lim.MaxRecipients, Metrics: n.metrics, Logger: n.log}); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", n.handleHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	n.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return n, nil
}

func serverTLS(t *config.TLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("frontend: tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Listen binds every configured listener.
func (n *Node) Listen() error {
	addrs := map[string]string{}
	if n.imap != nil {
		addrs["imap"] = n.cfg.IMAP.Listen
	}
	if n.pop3 != nil {
		addrs["pop3"] = n.cfg.POP3.Listen
	}
	if n.smtp != nil {
		addrs["smtp"] = n.cfg.SMTP.Listen
	}
	if n.cfg.Admin != "" {
		addrs["admin"] = n.cfg.Admin
	}
	ls, err := daemon.Listen("frontend", addrs, nil)
	if err != nil {
		return err
	}
	n.listeners = ls
	return nil
}

// Addrs returns the bound address of each listener.
func (n *Node) Addrs() map[string]string { return n.listeners.Addrs() }

// Serve starts serving on every listener.
func (n *Node) Serve() {
	n.started = time.Now()
	daemon.Serve(&n.wg, n.log, n.listeners, func(kind string) func(net.Listener) error {
		switch kind {
		case "imap":
			return n.imap.Serve
		case "pop3":
			return n.pop3.Serve
		case "smtp":
			return n.smtp.Serve
		case "admin":
			return n.admin.Serve
		}
		return nil
	}, closedErrs...)
}

// closedErrs are the proxies' own errors for a closed server.
var closedErrs = []error{imap.ErrClosed, pop3.ErrClosed}

func closedErr(err error) bool { return daemon.Closed(err, closedErrs...) }

// Close stops the node at once: Shutdown without waiting.
func (n *Node) Close() error { return daemon.CloseNow(n.Shutdown) }

// Shutdown lets SMTP transactions finish until ctx ends, then closes
// every session and the directory.
func (n *Node) Shutdown(ctx context.Context) error {
	n.log.Info("shutting down")
	var errs []error
	if n.smtp != nil {
		if err := n.smtp.Shutdown(ctx); err != nil && !closedErr(err) {
			errs = append(errs, err)
		}
	}
	if n.imap != nil {
		n.imap.Close()
	}
	if n.pop3 != nil {
		n.pop3.Close()
	}
	n.admin.Shutdown(ctx)
	n.listeners.Close()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	n.dir.Close()
	n.log.Info("stopped")
	return errors.Join(errs...)
}

// handleHealth answers 200 while the node serves: the listeners are up and
// the directory answers (a lookup of an address that cannot exist).
func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status, code := "ok", http.StatusOK
	if _, err := n.dir.Lookup(ctx, "healthcheck@mailfleet.invalid"); err != nil && !errors.Is(err, directory.ErrNotFound) {
		status, code = "directory unavailable: "+err.Error(), http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "node": n.cfg.Node, "listeners": n.Addrs(),
		"uptime": time.Since(n.started).Round(time.Second).String()})
}

// LogFile opens the node's log file, when the config names one.
func LogFile(cfg *config.Frontend) (*os.File, error) {
	if cfg.LogFile == "" {
		return nil, nil
	}
	return os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
}
