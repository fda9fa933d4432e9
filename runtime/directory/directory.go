package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// Errors of Lookup and Authenticate. Callers map ErrNotFound and
// ErrInvalidCredentials to a permanent refusal, ErrUnavailable to a
// temporary one.
var (
	ErrNotFound           = errors.New("directory: no such account")
	ErrDuplicate          = errors.New("directory: several entries match the account")
	ErrInvalidCredentials = errors.New("directory: invalid credentials")
	ErrUnavailable        = errors.New("directory: unavailable")
	ErrClosed             = errors.New("directory: closed")
)

// Observer learns what the directory does, for metrics. op is "search" or
// "bind"; result is "ok", "not_found", "duplicate", "invalid" or "error".
type Observer interface {
	LDAPRequest(op, result string, took time.Duration)
	CacheHit(found bool)
}

// Options configure a Directory.
type Options struct {
	// LDAP is the connector from the front-end config. Required.
	LDAP config.LDAP
	// BindPassword is the service DN's password. Empty: read from
	// LDAP.BindPasswordFile (an empty file is refused).
	BindPassword string
	// Instances maps each home-host value (an instance FQDN) to its
	// listeners. An entry whose host is not in it has no Instance.
	Instances map[string]config.InstanceRoute
	// PoolSize is the number of service connections. Zero: 4.
	PoolSize int
	// CacheTTL is how long a found account is remembered. Zero: 30s;
	// negative: no caching at all.
	CacheTTL time.Duration
	// NegativeTTL is how long an address that was not found (or matched
	// several entries) is remembered. Zero: 5s.
	NegativeTTL time.Duration
	// CacheSize caps the cached addresses. Zero: 10,000.
	CacheSize int
	// Observer receives timings and cache hits. Nil: none.
	Observer Observer
	// Logger receives warnings (a dead server, a duplicate). Nil: discarded.
	Logger *slog.Logger
}

// Account is the directory's answer for one address.
type Account struct {
	// Address is the address looked up, lowercased.
	Address string
	DN      string
	// Host is the value of the home-host attribute, "" when absent.
	Host string
	// Instance is the key of Options.Instances that Host names, "" when
	// Host names none; Route is that instance's listeners.
	Instance string
	Route    config.InstanceRoute
}

// Directory is a pooled, caching LDAP client. It is safe for concurrent
// use.
type Directory struct {
	opts     Options
	cfg      config.LDAP
	password string
	timeout  time.Duration
	tls      *tls.Config
	obs      Observer
	log      *slog.Logger

	slots  chan *ldap.Conn
	closed atomic.Bool
	// binds are idle connections for user binds, never used for
	// searches: a bind replaces who the connection is, so a user bind
	// needs no new connection of its own.
	binds chan *ldap.Conn
	cache *cache

	userBinds atomic.Int64
}

// MaxAddressLength bounds the names the directory searches for (RFC 5321
// §4.5.3.1: 64 + 1 + 255).
const MaxAddressLength = 320

// New returns a Directory. It does not connect: the first request does.
func New(opts Options) (*Directory, error) {
	cfg := opts.LDAP
	if len(cfg.URLs) == 0 || cfg.Base == "" || cfg.Filter == "" || cfg.HostAttribute == "" || cfg.BindDN == "" {
		return nil, errors.New("directory: ldap needs urls, base, filter, host_attribute and bind_dn")
	}
	pw := opts.BindPassword
	if pw == "" {
		b, err := os.ReadFile(cfg.BindPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("directory: bind password: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if pw == "" {
		// An empty password is an unauthenticated bind (RFC 4513 §5.1.2).
		return nil, errors.New("directory: the service bind password is empty")
	}
	d := &Directory{opts: opts, cfg: cfg, password: pw, timeout: cfg.Timeout.D(), obs: opts.Observer, log: opts.Logger}
	if d.timeout <= 0 {
		d.timeout = 5 * time.Second
	}
	if d.obs == nil {
		d.obs = nopObserver{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("directory: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("directory: ca %s holds no certificate", cfg.CA)
		}
		d.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	n := opts.PoolSize
	if n <= 0 {
		n = 4
	}
	d.slots = make(chan *ldap.Conn, n)
	d.binds = make(chan *ldap.Conn, 4*n)
	for range n {
		d.slots <- nil
	}
	if opts.CacheTTL >= 0 {
		ttl, neg, size := opts.CacheTTL, opts.NegativeTTL, opts.CacheSize
		if ttl == 0 {
			ttl = 30 * time.Second
		}
		if neg <= 0 {
			neg = 5 * time.Second
		}
		if size <= 0 {
			size = 10000
		}
		d.cache = newCache(ttl, neg, size)
	}
	return d, nil
}

type nopObserver struct{}

func (nopObserver) LDAPRequest(string, string, time.Duration) {}
func (nopObserver) CacheHit(bool)                             {}

// UserBinds is the number of user binds attempted so far (a test sees with
// it that a refused login never reached the directory).
func (d *Directory) UserBinds() int64 { return d.userBinds.Load() }

// Close closes the service connections. Requests after Close fail.
func (d *Directory) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	for range cap(d.slots) {
		if c := <-d.slots; c != nil {
			c.Close()
		}
	}
	d.drainBinds()
	return nil
}

func (d *Directory) drainBinds() {
	for {
		select {
		case c := <-d.binds:
			c.Close()
		default:
			return
		}
	}
}

// bindConn takes an idle connection for a user bind (pooled) or dials one.
func (d *Directory) bindConn() (c *ldap.Conn, pooled bool, err error) {
	for {
		select {
		case c := <-d.binds:
			if !c.IsClosing() {
				return c, true, nil
			}
			c.Close()
		default:
			c, err := d.dial()
			return c, false, err
		}
	}
}

// putBind keeps a connection after a user bind that the server answered
// (success or invalid credentials) for the next one.
func (d *Directory) putBind(c *ldap.Conn) {
	if d.closed.Load() {
		c.Close()
		return
	}
	select {
	case d.binds <- c:
		if d.closed.Load() {
			d.drainBinds()
		}
	default:
		c.Close()
	}
}

// dial connects to the first URL that answers, with StartTLS when
// configured.
func (d *Directory) dial() (*ldap.Conn, error) {
	var errs []error
	for _, u := range d.cfg.URLs {
		c, err := d.dialOne(u)
		if err != nil {
			d.log.Warn("ldap server unreachable", "url", u, "err", err)
			errs = append(errs, err)
			continue
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

func (d *Directory) dialOne(u string) (*ldap.Conn, error) {
	tc := d.tls
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if pu, err := url.Parse(u); err == nil && pu.Hostname() != "" {
		tc = tc.Clone()
		tc.ServerName = pu.Hostname()
	}
	c, err := ldap.DialURL(u, ldap.DialWithDialer(&net.Dialer{Timeout: d.timeout}), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(d.timeout)
	if d.cfg.StartTLS && strings.HasPrefix(u, "ldap://") {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// service takes a bound service connection from the pool; put gives it
// back (broken ones are closed and replaced on the next take).
func (d *Directory) service(ctx context.Context) (*ldap.Conn, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	t := time.NewTimer(d.timeout)
	defer t.Stop()
	var c *ldap.Conn
	select {
	case c = <-d.slots:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case <-t.C:
		return nil, fmt.Errorf("%w: no free service connection", ErrUnavailable)
	}
	if c != nil && !c.IsClosing() {
		return c, nil
	}
	if c != nil {
		c.Close()
	}
	c, err := d.dial()
	if err == nil {
		if err = c.Bind(d.cfg.BindDN, d.password); err != nil {
			c.Close()
			err = fmt.Errorf("%w: service bind: %w", ErrUnavailable, err)
		}
	}
	if err != nil {
		d.slots <- nil
		return nil, err
	}
	return c, nil
}

func (d *Directory) put(c *ldap.Conn, broken bool) {
	if broken || d.closed.Load() {
		c.Close()
		c = nil
	}
	d.slots <- c
}

// filter fills the placeholders of the configured filter, each value
// escaped (RFC 4515).
func (d *Directory) filter(address string) string {
	local, domain, _ := strings.Cut(address, "@")
	return strings.NewReplacer("%e", ldap.EscapeFilter(address), "%u", ldap.EscapeFilter(local),
		"%d", ldap.EscapeFilter(domain)).Replace(d.cfg.Filter)
}

// validName reports whether s may be searched at all: no control
// characters, no spaces, not too long.
func validName(s string) bool {
	if s == "" || len(s) > MaxAddressLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Lookup finds the account of address. It returns ErrNotFound,
// ErrDuplicate (when the directory refuses duplicates) or ErrUnavailable.
func (d *Directory) Lookup(ctx context.Context, address string) (Account, error) {
	address = strings.ToLower(address)
	if !validName(address) {
		return Account{}, ErrNotFound
	}
	if d.cache != nil {
		if a, err, ok := d.cache.get(address); ok {
			d.obs.CacheHit(err == nil)
			return a, err
		}
	}
	a, err := d.search(ctx, address)
	if d.cache != nil && (err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrDuplicate)) {
		d.cache.put(address, a, err)
	}
	return a, err
}

func (d *Directory) search(ctx context.Context, address string) (Account, error) {
	req := ldap.NewSearchRequest(d.cfg.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2,
		max(1, int(d.timeout/time.Second)), false, d.filter(address), []string{d.cfg.HostAttribute}, nil)
	start := time.Now()
	var res *ldap.SearchResult
	for attempt := 0; ; attempt++ {
		c, err := d.service(ctx)
		if err != nil {
			d.obs.LDAPRequest("search", "error", time.Since(start))
			return Account{}, err
		}
		res, err = c.Search(req)
		if err == nil || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			if err != nil && (res == nil || len(res.Entries) < 2) {
				// A size limit with fewer than two entries shown: more
				// than one matched all the same.
				res = &ldap.SearchResult{Entries: make([]*ldap.Entry, 2)}
			}
			d.put(c, false)
			break
		}
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode != ldap.ErrorNetwork && le.ResultCode < ldap.ErrorNetwork {
			// The server answered with an error: no use retrying.
			d.put(c, false)
			d.obs.LDAPRequest("search", "error", time.Since(start))
			return Account{}, fmt.Errorf("%w: search: %w", ErrUnavailable, err)
		}
		// A dropped connection gets one retry on a fresh one.
		d.put(c, true)
		if attempt == 1 {
			d.obs.LDAPRequest("search", "error", time.Since(start))
			return Account{}, fmt.Errorf("%w: search: %w", ErrUnavailable, err)
		}
	}
	took := time.Since(start)
	switch {
	case len(res.Entries) == 0:
		d.obs.LDAPRequest("search", "not_found", took)
		return Account{}, ErrNotFound
	case len(res.Entries) > 1 && d.cfg.RefuseDuplicates:
		d.obs.LDAPRequest("search", "duplicate", took)
		d.log.Warn("several directory entries match one account; it is refused", "address", address)
		return Account{}, ErrDuplicate
	}
	d.obs.LDAPRequest("search", "ok", took)
	e := res.Entries[0]
	a := Account{Address: address, DN: e.DN, Host: e.GetAttributeValue(d.cfg.HostAttribute)}
	a.Instance, a.Route = d.resolve(a.Host)
	return a, nil
}

// resolve finds the instance a home-host value names, ignoring case and a
// trailing dot.
func (d *Directory) resolve(host string) (string, config.InstanceRoute) {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if h == "" {
		return "", config.InstanceRoute{}
	}
	if r, ok := d.opts.Instances[h]; ok {
		return h, r
	}
	for k, r := range d.opts.Instances {
		if strings.TrimSuffix(strings.ToLower(k), ".") == h {
			return k, r
		}
	}
	return "", config.InstanceRoute{}
}

// Authenticate checks password by binding as the entry of login (an
// address) on a connection used only for user binds (kept for the next
// one, never for searches). An empty password, a name that is
// not an account and duplicate entries are ErrInvalidCredentials (the
// last wrapping ErrDuplicate too); a directory that cannot answer is
// ErrUnavailable.
func (d *Directory) Authenticate(ctx context.Context, login, password string) (Account, error) {
	if password == "" {
		// Refused before any bind: an empty-password simple bind is an
		// unauthenticated bind that servers accept (RFC 4513 §5.1.2).
		return Account{}, ErrInvalidCredentials
	}
	a, err := d.Lookup(ctx, login)
	switch {
	case errors.Is(err, ErrNotFound):
		return Account{}, ErrInvalidCredentials
	case errors.Is(err, ErrDuplicate):
		return Account{}, fmt.Errorf("%w: %w", ErrInvalidCredentials, ErrDuplicate)
	case err != nil:
		return Account{}, err
	}
	if d.closed.Load() {
		return Account{}, ErrClosed
	}
	start := time.Now()
	d.userBinds.Add(1)
	c, pooled, err := d.bindConn()
	if err != nil {
		d.obs.LDAPRequest("bind", "error", time.Since(start))
		return Account{}, err
	}
	err = c.Bind(a.DN, password)
	if err != nil && pooled && !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		// A kept connection the server may have dropped: once more on a
		// new one.
		c.Close()
		if c, err = d.dial(); err != nil {
			d.obs.LDAPRequest("bind", "error", time.Since(start))
			return Account{}, err
		}
		err = c.Bind(a.DN, password)
	}
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			// The connection is anonymous again (RFC 4511 §4.2.1): reusable.
			d.putBind(c)
			d.obs.LDAPRequest("bind", "invalid", time.Since(start))
			return Account{}, ErrInvalidCredentials
		}
		c.Close()
		d.obs.LDAPRequest("bind", "error", time.Since(start))
		return Account{}, fmt.Errorf("%w: bind: %w", ErrUnavailable, err)
	}
	d.putBind(c)
	d.obs.LDAPRequest("bind", "ok", time.Since(start))
	return a, nil
}

// cache remembers answers for a short time. When full, expired entries go
// first, then arbitrary ones: the cache only spares the directory load, so
// what it forgets is merely asked again.
type cache struct {
	ttl, negTTL time.Duration
	size        int
	mu          sync.Mutex
	m           map[string]cacheEntry
}

type cacheEntry struct {
	a       Account
	err     error
	expires time.Time
}

func newCache(ttl, negTTL time.Duration, size int) *cache {
	return &cache{ttl: ttl, negTTL: negTTL, size: size, m: make(map[string]cacheEntry)}
}

func (c *cache) get(k string) (Account, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return Account{}, nil, false
	}
	if time.Now().After(e.expires) {
		delete(c.m, k)
		return Account{}, nil, false
	}
	return e.a, e.err, true
}

func (c *cache) put(k string, a Account, err error) {
	ttl := c.ttl
	if err != nil {
		ttl = c.negTTL
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.size {
		for key, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.size {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = cacheEntry{a: a, err: err, expires: now.Add(ttl)}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
