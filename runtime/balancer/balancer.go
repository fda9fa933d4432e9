package balancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// Options tune a Balancer beyond its config. The zero value is usable.
type Options struct {
	// Logger receives the structured logs (one line per session, health
	// changes, reloads, refusals). Nil discards them.
	Logger *slog.Logger
	// ConnectTimeout bounds the connect to a backend for a client; past it
	// the next backend is tried. Zero means 3 seconds.
	ConnectTimeout time.Duration
	// DefaultIdleTimeout applies when the config's limits set no idle
	// timeout. Zero means 31 minutes (IMAP's autologout is at least 30).
	DefaultIdleTimeout time.Duration
}

// Balancer is one running balancer: its listeners, backends and checkers.
type Balancer struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	limiter limiter
	limits  atomic.Pointer[config.Limits]
	node    atomic.Pointer[string]

	mu       sync.Mutex
	cfg      *config.Balancer
	services []*service            // in config order
	draining map[*backend]string   // removed backends with open connections → service name
	sessions map[*session]struct{} // open client sessions, cut by Close
	admin    *http.Server
	adminLn  net.Listener
	serving  bool
	closed   bool

	wg sync.WaitGroup // accept loops, checkers and sessions
}

// New checks cfg and prepares a Balancer; Listen binds its sockets.
func New(cfg *config.Balancer, opts Options) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("balancer: %w", err)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 3 * time.Second
	}
	if opts.DefaultIdleTimeout <= 0 {
		opts.DefaultIdleTimeout = 31 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Balancer{opts: opts, log: log, cfg: cfg, draining: map[*backend]string{}, sessions: map[*session]struct{}{}}
	b.metrics = newMetrics(b)
	b.limits.Store(&cfg.Limits)
	b.node.Store(&cfg.Node)
	return b, nil
}

// listen binds one service listener.
func listen(addr string) (net.Listener, error) {
	// No TCP keepalive (four setsockopt calls per connection): the idle
	// timeout ends sessions whose client vanished, as in HAProxy.
	lc := net.ListenConfig{Control: freebind, KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}

// Listen binds every service listener and the admin listener. Once it
// returns, they accept connections (the kernel queues them until Serve).
func (b *Balancer) Listen() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.services) > 0 {
		return errors.New("balancer: Listen called twice or after Close")
	}
	var services []*service
	for _, sc := range b.cfg.Services {
		ln, err := listen(sc.Listen)
		if err != nil {
			for _, s := range services {
				s.ln.Close()
			}
			return fmt.Errorf("balancer: service %s: %w", sc.Name, err)
		}
		services = append(services, newService(sc, ln))
	}
	if b.cfg.Admin != "" {
		ln, err := net.Listen("tcp", b.cfg.Admin)
		if err != nil {
			for _, s := range services {
				s.ln.Close()
			}
			return fmt.Errorf("balancer: admin: %w", err)
		}
		b.adminLn = ln
	}
	b.services = services
	return nil
}

func newService(sc config.BalancedService, ln net.Listener) *service {
	s := &service{ln: ln, key: listenKey(sc), cfg: sc}
	for _, bc := range sc.Backends {
		s.backends = append(s.backends, newBackend(bc))
	}
	return s
}

// Serve starts the accept loops, the health checkers and the admin server,
// and returns.
func (b *Balancer) Serve() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.serving {
		return
	}
	b.serving = true
	for _, s := range b.services {
		b.startService(s)
	}
	if b.adminLn != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", b.handleHealthz)
		mux.Handle("/metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
		b.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go b.admin.Serve(b.adminLn)
	}
	b.log.Info("serving", "node", b.cfg.Node, "listeners", b.addrsLocked())
}

// startService starts s's accept loop and the checkers of its backends.
// b.mu is held.
func (b *Balancer) startService(s *service) {
	b.wg.Add(1)
	go b.acceptLoop(s)
	for _, be := range s.backends {
		b.wg.Add(1)
		go b.runChecker(s, be)
	}
}

func (b *Balancer) acceptLoop(s *service) {
	defer b.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: wait, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			b.log.Error("accept", "listen", s.ln.Addr().String(), "err", err.Error(), "retry_in", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		b.wg.Add(1)
		go b.serveConn(s, c.(*net.TCPConn))
	}
}

// Addrs returns the bound address of each listener by service name, and
// the admin listener's as "admin".
func (b *Balancer) Addrs() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrsLocked()
}

func (b *Balancer) addrsLocked() map[string]string {
	out := map[string]string{}
	for _, s := range b.services {
		s.mu.Lock()
		out[s.cfg.Name] = s.ln.Addr().String()
		s.mu.Unlock()
	}
	if b.adminLn != nil {
		out["admin"] = b.adminLn.Addr().String()
	}
	return out
}

// Reload applies cfg: new services get listeners, services no longer in
// cfg stop listening, backends are added and removed, and everything else
// (scheduler, weights, health settings, limits) changes in place. Removed
// backends drain: their open connections run on until they end. A
// listener that cannot be bound fails the reload and changes nothing.
// The admin address changes only with a restart.
func (b *Balancer) Reload(cfg *config.Balancer) (err error) {
	defer func() {
		result := "ok"
		if err != nil {
			result = "failed"
			b.log.Error("reload failed", "err", err.Error())
		}
		b.metrics.reloads.WithLabelValues(result).Inc()
	}()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("balancer: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("balancer: closed")
	}
	old := map[string]*service{}
	for _, s := range b.services {
		old[s.key] = s
	}
	// Bind what is new first, so that a failure leaves the old config.
	fresh := map[string]net.Listener{}
	for _, sc := range cfg.Services {
		if k := listenKey(sc); old[k] == nil && fresh[k] == nil {
			ln, err := listen(sc.Listen)
			if err != nil {
				for _, l := range fresh {
					l.Close()
				}
				return fmt.Errorf("balancer: reload: service %s: %w", sc.Name, err)
			}
			fresh[k] = ln
		}
	}
	var services []*service
	var added, removed []string
	for _, sc := range cfg.Services {
		k := listenKey(sc)
		if s := old[k]; s != nil {
			delete(old, k)
			a, r := b.updateService(s, sc)
			added, removed = append(added, a...), append(removed, r...)
			services = append(services, s)
			continue
		}
		s := newService(sc, fresh[k])
		services = append(services, s)
		if b.serving {
			b.startService(s)
		}
		added = append(added, "service "+sc.Name)
	}
	for _, s := range old {
		s.ln.Close()
		s.mu.Lock()
		for _, be := range s.backends {
			b.retire(s.cfg.Name, be)
		}
		s.backends = nil
		s.mu.Unlock()
		removed = append(removed, "service "+s.cfg.Name)
	}
	b.services = services
	if cfg.Admin != b.cfg.Admin {
		b.log.Warn("admin address changes only with a restart", "admin", b.cfg.Admin, "wanted", cfg.Admin)
		cfg.Admin = b.cfg.Admin
	}
	b.cfg = cfg
	b.limits.Store(&cfg.Limits)
	b.node.Store(&cfg.Node)
	b.log.Info("reloaded", "added", added, "removed", removed, "draining", len(b.draining), "listeners", b.addrsLocked())
	return nil
}

// updateService applies sc to a running service s. b.mu is held.
func (b *Balancer) updateService(s *service, sc config.BalancedService) (added, removed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Name != sc.Name {
		b.metrics.checkSeconds.DeletePartialMatch(map[string]string{"service": s.cfg.Name})
	}
	s.cfg = sc
	have := map[string]*backend{}
	for _, be := range s.backends {
		have[be.name+"@"+be.addr] = be
	}
	var next []*backend
	for _, bc := range sc.Backends {
		k := bc.Name + "@" + bc.Address
		if be := have[k]; be != nil {
			delete(have, k)
			be.weight = bc.Weight
			next = append(next, be)
			continue
		}
		be := newBackend(bc)
		next = append(next, be)
		if b.serving {
			b.wg.Add(1)
			go b.runChecker(s, be)
		}
		added = append(added, sc.Name+"/"+bc.Name)
	}
	for _, be := range have {
		b.retire(sc.Name, be)
		removed = append(removed, sc.Name+"/"+be.name)
	}
	s.backends = next
	return added, removed
}

// retire takes be out of service: no new connections, no more checks;
// its open connections drain. b.mu is held.
func (b *Balancer) retire(svc string, be *backend) {
	be.removed.Store(true)
	close(be.stop)
	b.metrics.checkSeconds.DeleteLabelValues(svc, be.name)
	if be.active.Load() > 0 {
		b.draining[be] = svc
		b.log.Info("backend draining", "service", svc, "backend", be.name, "active", be.active.Load())
	}
}

// release ends one connection's claim on be.
func (b *Balancer) release(be *backend) {
	if be.active.Add(-1) == 0 && be.removed.Load() {
		b.mu.Lock()
		if svc, ok := b.draining[be]; ok {
			delete(b.draining, be)
			b.log.Info("backend drained", "service", svc, "backend", be.name)
		}
		b.mu.Unlock()
	}
}

// Shutdown stops accepting, lets the open sessions end by themselves
// until ctx ends, then closes the balancer (Close). It returns ctx's error
// when sessions were still open then.
func (b *Balancer) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	for _, s := range b.services {
		s.ln.Close()
	}
	b.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var err error
	for err == nil && b.openSessions() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	return errors.Join(err, b.Close())
}

func (b *Balancer) openSessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// Close stops listening and checking and cuts every open session.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, s := range b.services {
		s.ln.Close()
		s.mu.Lock()
		for _, be := range s.backends {
			be.removed.Store(true)
			close(be.stop)
		}
		s.mu.Unlock()
	}
	if b.admin != nil {
		b.admin.Close()
	} else if b.adminLn != nil {
		b.adminLn.Close()
	}
	for ss := range b.sessions {
		ss.cut("shutdown")
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.log.Info("stopped")
	return nil
}

// backendEntry is a backend and the name of its service.
type backendEntry struct {
	service string
	be      *backend
}

// backendEntries lists the live backends in config order, then the
// draining ones.
func (b *Balancer) backendEntries() []backendEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backendEntry
	for _, s := range b.services {
		s.mu.Lock()
		for _, be := range s.backends {
			out = append(out, backendEntry{s.cfg.Name, be})
		}
		s.mu.Unlock()
	}
	var drain []backendEntry
	for be, svc := range b.draining {
		drain = append(drain, backendEntry{svc, be})
	}
	sort.Slice(drain, func(i, j int) bool {
		if drain[i].service != drain[j].service {
			return drain[i].service < drain[j].service
		}
		return drain[i].be.name < drain[j].be.name
	})
	return append(out, drain...)
}

// Status is what /healthz shows: every service and backend.
type Status struct {
	Node     string          `json:"node"`
	OK       bool            `json:"ok"` // every service has a backend up
	Services []ServiceStatus `json:"services"`
}

type ServiceStatus struct {
	Name     string          `json:"name"`
	Listen   string          `json:"listen"`
	Backends []BackendStatus `json:"backends"`
}

type BackendStatus struct {
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	State     string    `json:"state"` // unknown, up, down
	Draining  bool      `json:"draining,omitempty"`
	Weight    int       `json:"weight"`
	Active    int64     `json:"active"`
	Total     uint64    `json:"total"`
	LastCheck time.Time `json:"last_check,omitzero"`
	CheckMS   float64   `json:"check_ms"`
	LastError string    `json:"last_error,omitempty"`
}

// Status reports the state of every service and backend, draining ones
// last under their service.
func (b *Balancer) Status() Status {
	st := Status{Node: *b.node.Load(), OK: true}
	byName := map[string]int{}
	b.mu.Lock()
	for _, s := range b.services {
		s.mu.Lock()
		ss := ServiceStatus{Name: s.cfg.Name, Listen: s.ln.Addr().String()}
		up := false
		for _, be := range s.backends {
			ss.Backends = append(ss.Backends, be.status(be.weight))
			up = up || be.state() == stateUp
		}
		s.mu.Unlock()
		st.OK = st.OK && up
		byName[ss.Name] = len(st.Services)
		st.Services = append(st.Services, ss)
	}
	b.mu.Unlock()
	for _, e := range b.backendEntries() {
		if !e.be.removed.Load() {
			continue
		}
		i, ok := byName[e.service]
		if !ok {
			i = len(st.Services)
			byName[e.service] = i
			st.Services = append(st.Services, ServiceStatus{Name: e.service})
		}
		st.Services[i].Backends = append(st.Services[i].Backends, e.be.status(0))
	}
	return st
}

func (be *backend) status(weight int) BackendStatus {
	be.checkMu.Lock()
	defer be.checkMu.Unlock()
	return BackendStatus{Name: be.name, Address: be.addr, State: be.state().String(), Draining: be.removed.Load(),
		Weight: weight, Active: be.active.Load(), Total: be.total.Load(), LastCheck: be.lastCheck,
		CheckMS: float64(be.lastTook.Microseconds()) / 1000, LastError: be.lastErr}
}

// handleHealthz answers 200 when every service has a backend up, 503
// otherwise, with the Status as JSON either way.
func (b *Balancer) handleHealthz(w http.ResponseWriter, r *http.Request) {
	st := b.Status()
	w.Header().Set("Content-Type", "application/json")
	if !st.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(st)
}
