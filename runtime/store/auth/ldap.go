package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// LDAP is a directory in LDAP: accounts are found with the configured
// filter over a service connection bound as the service DN, and a password
// is checked by binding as the account's entry on a connection of its own,
// so that a user bind never changes who the search connection is.
//
// When self is set (the instance's own FQDN) and an entry carries the
// host attribute (cfg.HostAttribute, e.g. mailHost) naming another host,
// the account is homed elsewhere: Lookup and Authenticate return an
// *ElsewhereError (ErrElsewhere). An entry without the attribute is
// served here.
type LDAP struct {
	cfg      config.LDAP
	self     string
	password string
	timeout  time.Duration
	tls      *tls.Config

	mu  sync.Mutex
	svc *ldap.Conn
}

// NewLDAP returns an LDAP directory for the instance whose FQDN is self
// ("": no home check). The service password is read from
// cfg.BindPasswordFile and must not be empty.
func NewLDAP(cfg *config.LDAP, self string) (*LDAP, error) {
	b, err := os.ReadFile(cfg.BindPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("auth: ldap bind password: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return nil, errors.New("auth: ldap bind password file is empty")
	}
	l := &LDAP{cfg: *cfg, self: self, password: pw, timeout: cfg.Timeout.D()}
	if l.timeout == 0 {
		l.timeout = 5 * time.Second
	}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("auth: ldap ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auth: ldap ca %s holds no certificate", cfg.CA)
		}
		l.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return l, nil
}

// dial connects to the first URL that answers.
func (l *LDAP) dial() (*ldap.Conn, error) {
	var errs []error
	for _, u := range l.cfg.URLs {
		opts := []ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: l.timeout})}
		if l.tls != nil {
			opts = append(opts, ldap.DialWithTLSConfig(l.tls))
		}
		c, err := ldap.DialURL(u, opts...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.SetTimeout(l.timeout)
		if l.cfg.StartTLS {
			tc := l.tls
			if tc == nil {
				tc = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			if host, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(u, "ldap://"), "ldaps://")); err == nil {
				tc = tc.Clone()
				tc.ServerName = host
			}
			if err := c.StartTLS(tc); err != nil {
				c.Close()
				errs = append(errs, err)
				continue
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// service returns the bound service connection, reconnecting if needed.
// l.mu must be held.
func (l *LDAP) serviceLocked() (*ldap.Conn, error) {
	if l.svc != nil && !l.svc.IsClosing() {
		return l.svc, nil
	}
	c, err := l.dial()
	if err != nil {
		return nil, err
	}
	if err := c.Bind(l.cfg.BindDN, l.password); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: service bind: %w", ErrUnavailable, err)
	}
	l.svc = c
	return c, nil
}

// filter fills the placeholders of the configured filter, escaping each
// value (RFC 4515).
func (l *LDAP) filter(address string) string {
	local, domain, _ := strings.Cut(address, "@")
	return strings.NewReplacer("%e", ldap.EscapeFilter(address), "%u", ldap.EscapeFilter(local), "%d", ldap.EscapeFilter(domain)).Replace(l.cfg.Filter)
}

type entry struct {
	dn, mail, host string
}

// elsewhere returns an *ElsewhereError when the entry's host attribute
// names another instance than this one.
func (l *LDAP) elsewhere(e entry) error {
	if l.self == "" || l.cfg.HostAttribute == "" || strings.TrimSpace(e.host) == "" || SameHost(e.host, l.self) {
		return nil
	}
	return &ElsewhereError{Address: e.mail, Host: strings.TrimSpace(e.host)}
}

// find searches the account's entry; found is false when there is none.
func (l *LDAP) find(address string) (entry, bool, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	if address == "" || len(address) > 320 || !strings.Contains(address, "@") {
		return entry{}, false, nil
	}
	req := ldap.NewSearchRequest(l.cfg.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, int(l.timeout.Seconds()), false,
		l.filter(address), []string{"mail", l.cfg.HostAttribute}, nil)
	l.mu.Lock()
	defer l.mu.Unlock()
	var res *ldap.SearchResult
	for attempt := 0; ; attempt++ {
		c, err := l.serviceLocked()
		if err != nil {
			return entry{}, false, err
		}
		res, err = c.Search(req)
		if err == nil || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			break
		}
		// A dropped connection gets one reconnect.
		c.Close()
		l.svc = nil
		if attempt == 1 {
			return entry{}, false, fmt.Errorf("%w: search: %w", ErrUnavailable, err)
		}
	}
	switch {
	case res == nil || len(res.Entries) == 0:
		return entry{}, false, nil
	case len(res.Entries) > 1:
		// Two entries for one address: binding to either would be a guess.
		return entry{}, false, fmt.Errorf("%w: %d entries match %s", ErrUnavailable, len(res.Entries), address)
	}
	e := res.Entries[0]
	mail := strings.ToLower(e.GetAttributeValue("mail"))
	if mail == "" {
		mail = address
	}
	var host string
	if l.cfg.HostAttribute != "" {
		host = e.GetAttributeValue(l.cfg.HostAttribute)
	}
	return entry{dn: e.DN, mail: mail, host: host}, true, nil
}

// Authenticate implements Directory. An empty password is refused before
// any bind: an empty-password simple bind is an unauthenticated bind that
// many servers accept (RFC 4513 5.1.2).
func (l *LDAP) Authenticate(ctx context.Context, username, password string) (string, error) {
	if password == "" {
		return "", ErrInvalidCredentials
	}
	e, ok, err := l.find(username)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrInvalidCredentials
	}
	c, err := l.dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Bind(e.dn, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return "", ErrInvalidCredentials
		}
		return "", fmt.Errorf("%w: bind: %w", ErrUnavailable, err)
	}
	// Checked after the bind: only the account's owner learns where it
	// lives.
	if err := l.elsewhere(e); err != nil {
		return "", err
	}
	return e.mail, nil
}

// Lookup implements Directory.
func (l *LDAP) Lookup(ctx context.Context, address string) (string, bool, error) {
	e, ok, err := l.find(address)
	if err != nil || !ok {
		return "", false, err
	}
	if err := l.elsewhere(e); err != nil {
		return "", false, err
	}
	return e.mail, true, nil
}

// Close closes the service connection.
func (l *LDAP) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.svc != nil {
		l.svc.Close()
		l.svc = nil
	}
	return nil
}
