package directory

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory/slapdtest"
)

var testAccounts = []slapdtest.Account{
	{Address: "alice@example.org", Password: "alice-pw", MailHost: "mail1.backend.cluster"},
	{Address: "bob@example.org", Password: "bob-pw", MailHost: "MAIL2.backend.cluster."},
	{Address: "st*r@example.org", Password: "star-pw", MailHost: "mail1.backend.cluster"},
	{Address: "lost@example.org", Password: "lost-pw", MailHost: "gone.backend.cluster"},
	{Address: "nohost@example.org", Password: "nohost-pw"},
	{Address: "twice@example.org", Password: "twice-pw", MailHost: "mail1.backend.cluster"},
	{Address: "twice@example.org", Password: "twice-pw", MailHost: "mail2.backend.cluster", OU: "others"},
}

var testInstances = map[string]config.InstanceRoute{
	"mail1.backend.cluster": {Name: "mail1", IMAP: "10.0.0.1:143"},
	"mail2.backend.cluster": {Name: "mail2", IMAP: "10.0.0.2:143"},
}

type countingObserver struct {
	mu       sync.Mutex
	requests map[string]int
	hits     int
}

func (o *countingObserver) LDAPRequest(op, result string, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests[op+" "+result]++
}

func (o *countingObserver) CacheHit(bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hits++
}

func (o *countingObserver) count(k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[k]
}

func newTestDirectory(t *testing.T, srv *slapdtest.Server, mod func(*Options)) (*Directory, *countingObserver) {
	t.Helper()
	obs := &countingObserver{requests: map[string]int{}}
	opts := Options{LDAP: srv.Config(), Instances: testInstances, Observer: obs, PoolSize: 2}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, obs
}

func TestLookupResolvesHomeInstance(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	d, obs := newTestDirectory(t, srv, nil)
	ctx := context.Background()
	a, err := d.Lookup(ctx, "Alice@Example.org")
	if err != nil || a.Instance != "mail1.backend.cluster" || a.Route.Name != "mail1" || a.Address != "alice@example.org" {
		t.Fatalf("alice: %+v %v", a, err)
	}
	// Case and a trailing dot in mailHost do not matter.
	if a, err := d.Lookup(ctx, "bob@example.org"); err != nil || a.Route.Name != "mail2" {
		t.Fatalf("bob: %+v %v", a, err)
	}
	// A host that is no instance, or no host at all: found, but no route.
	for _, addr := range []string{"lost@example.org", "nohost@example.org"} {
		if a, err := d.Lookup(ctx, addr); err != nil || a.Instance != "" || a.DN == "" {
			t.Fatalf("%s: %+v %v", addr, a, err)
		}
	}
	if _, err := d.Lookup(ctx, "nobody@example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nobody: %v", err)
	}
	// The escaped filter still finds an address with a special character.
	if a, err := d.Lookup(ctx, "st*r@example.org"); err != nil || a.Route.Name != "mail1" {
		t.Fatalf("st*r: %+v %v", a, err)
	}
	searches := obs.count("search ok") + obs.count("search not_found")
	// Answers come from the cache now, found and not found alike.
	for _, addr := range []string{"alice@example.org", "nobody@example.org", "ALICE@example.org"} {
		d.Lookup(ctx, addr)
	}
	if n := obs.count("search ok") + obs.count("search not_found"); n != searches || obs.hits != 3 {
		t.Fatalf("searches %d -> %d, cache hits %d", searches, n, obs.hits)
	}
}

func TestDuplicatesRefused(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	d, _ := newTestDirectory(t, srv, nil)
	ctx := context.Background()
	if _, err := d.Lookup(ctx, "twice@example.org"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("lookup: %v", err)
	}
	binds := d.UserBinds()
	if _, err := d.Authenticate(ctx, "twice@example.org", "twice-pw"); !errors.Is(err, ErrInvalidCredentials) || !errors.Is(err, ErrDuplicate) {
		t.Fatalf("authenticate: %v", err)
	}
	if d.UserBinds() != binds {
		t.Fatal("a duplicate account was bound")
	}
	// "Use first returned field = yes": the first entry routes.
	d2, _ := newTestDirectory(t, srv, func(o *Options) { o.LDAP.RefuseDuplicates = false })
	if a, err := d2.Lookup(ctx, "twice@example.org"); err != nil || a.Instance == "" {
		t.Fatalf("duplicates allowed: %+v %v", a, err)
	}
}

func TestAuthenticate(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	d, obs := newTestDirectory(t, srv, nil)
	ctx := context.Background()
	a, err := d.Authenticate(ctx, "alice@example.org", "alice-pw")
	if err != nil || a.Route.Name != "mail1" {
		t.Fatalf("alice: %+v %v", a, err)
	}
	if _, err := d.Authenticate(ctx, "alice@example.org", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	// A user bind does not change who the service connections are.
	for range 5 {
		if _, err := d.Lookup(ctx, "bob@example.org"); err != nil {
			t.Fatal(err)
		}
		d.cache = nil
	}
	if obs.count("bind ok") != 1 || obs.count("bind invalid") != 1 {
		t.Fatalf("binds: %v", obs.requests)
	}
}

// TestSecurityFilterInjectionAndEmptyPassword: special characters of a
// filter in the login name find nothing and bind nothing; an empty password
// never reaches the directory.
func TestSecurityFilterInjectionAndEmptyPassword(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	d, obs := newTestDirectory(t, srv, func(o *Options) { o.CacheTTL = -1 })
	ctx := context.Background()
	names := []string{"*", "*@example.org", "alice*", "a*e@example.org", "alice@example.org)(uid=*",
		"*)(uid=*", ")(", "alice@example.org)(|(uid=*)", `alice\2a@example.org`, `\`, `\00`, `\2a`,
		"alice@example.org\x00", "\x00", "alice@example.org\x00)(uid=*", "st*r@*", "(uid=*)"}
	for _, name := range names {
		if a, err := d.Lookup(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %+v, %v; want not found", name, a, err)
		}
		for _, pw := range []string{"alice-pw", "star-pw", "*"} {
			if _, err := d.Authenticate(ctx, name, pw); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("Authenticate(%q) = %v; want invalid credentials", name, err)
			}
		}
	}
	if n := d.UserBinds(); n != 0 {
		t.Fatalf("%d user binds for injected names", n)
	}
	if n := obs.count("search ok"); n != 0 {
		t.Fatalf("%d searches found an entry for injected names", n)
	}
	// An empty password is refused before any search or bind.
	before := obs.count("search ok") + obs.count("search not_found")
	for _, name := range []string{"alice@example.org", "bob@example.org", "*"} {
		if _, err := d.Authenticate(ctx, name, ""); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("empty password for %s: %v", name, err)
		}
	}
	if d.UserBinds() != 0 || obs.count("search ok")+obs.count("search not_found") != before {
		t.Fatal("an empty password reached the directory")
	}
	// And an empty service password is refused at New.
	if _, err := New(Options{LDAP: srv.Config(), BindPassword: "", Instances: testInstances}); err != nil {
		t.Fatalf("service password from file: %v", err)
	}
	cfg := srv.Config()
	cfg.BindPasswordFile = "/dev/null"
	if _, err := New(Options{LDAP: cfg}); err == nil {
		t.Fatal("empty service password accepted")
	}
}

func TestURLsTriedInOrderAndOutage(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "ldap://" + dead.Addr().String() + "/"
	dead.Close()
	d, _ := newTestDirectory(t, srv, func(o *Options) {
		o.LDAP.URLs = []string{deadURL, srv.URL}
		o.LDAP.Timeout = config.Duration(2 * time.Second)
		o.CacheTTL = -1
	})
	ctx := context.Background()
	if _, err := d.Authenticate(ctx, "alice@example.org", "alice-pw"); err != nil {
		t.Fatalf("second URL: %v", err)
	}
	srv.Stop()
	if _, err := d.Lookup(ctx, "alice@example.org"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("directory down: %v", err)
	}
	if _, err := d.Authenticate(ctx, "alice@example.org", "alice-pw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("directory down, authenticate: %v", err)
	}
}

func TestWrongServicePasswordIsUnavailable(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	d, _ := newTestDirectory(t, srv, func(o *Options) { o.BindPassword = "nope" })
	if _, err := d.Lookup(context.Background(), "alice@example.org"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong service password: %v", err)
	}
}

func TestConcurrentLookups(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	d, _ := newTestDirectory(t, srv, func(o *Options) { o.CacheTTL = -1 })
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				addr := []string{"alice@example.org", "bob@example.org"}[(i+j)%2]
				if a, err := d.Lookup(context.Background(), addr); err != nil || !strings.HasPrefix(a.Route.Name, "mail") {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestCacheSizeCap(t *testing.T) {
	c := newCache(time.Minute, time.Minute, 3)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		c.put(k, Account{Address: k}, nil)
	}
	if c.len() != 3 {
		t.Fatalf("cache holds %d, cap 3", c.len())
	}
	if _, _, ok := c.get("e"); !ok {
		t.Fatal("newest entry missing")
	}
	c2 := newCache(time.Nanosecond, time.Nanosecond, 10)
	c2.put("x", Account{}, ErrNotFound)
	time.Sleep(time.Millisecond)
	if _, _, ok := c2.get("x"); ok {
		t.Fatal("expired entry returned")
	}
}

// TestUserBindsReuseConnections: user binds keep their connection for the
// next one; a bind that failed or succeeded before does not decide the
// next, and the service connections never carry a user bind.
func TestUserBindsReuseConnections(t *testing.T) {
	srv := slapdtest.Start(t, testAccounts)
	d, obs := newTestDirectory(t, srv, func(o *Options) { o.CacheTTL = -1 })
	ctx := context.Background()
	for range 3 {
		for _, c := range []struct {
			login, pw string
			ok        bool
		}{{"alice@example.org", "alice-pw", true}, {"alice@example.org", "bob-pw", false},
			{"bob@example.org", "bob-pw", true}, {"bob@example.org", "alice-pw", false}} {
			_, err := d.Authenticate(ctx, c.login, c.pw)
			if c.ok && err != nil || !c.ok && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("%s/%s: %v", c.login, c.pw, err)
			}
		}
	}
	if n := len(d.binds); n != 1 {
		t.Fatalf("%d kept bind connections, want 1", n)
	}
	if obs.count("bind ok") != 6 || obs.count("bind invalid") != 6 {
		t.Fatalf("binds: %v", obs.requests)
	}
	// A kept connection that was closed is not used.
	c := <-d.binds
	c.Close()
	d.binds <- c
	if _, err := d.Authenticate(ctx, "alice@example.org", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lookup(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if n := len(d.binds); n != 0 {
		t.Fatalf("%d bind connections after Close", n)
	}
}
