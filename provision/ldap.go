package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailfleet/mailfleet/runtime/adminapi"
)

// The reference's account entry.
var entryClasses = []string{"account", "inetLocalMailRecipient", "simpleSecurityObject"}

const hostAttrDefault = "mailHost"

// Entry is an account's LDAP entry.
type Entry struct {
	DN       string
	Address  string // mailLocalAddress (uid when it has none), lower case
	MailHost string
}

// Directory is an admin connection to the directory.
type Directory struct {
	url, adminDN, password string
	base, hostAttr         string
	tlsCfg                 *tls.Config
	startTLS               bool
	Timeout                time.Duration
	// dial, when set, opens the TCP connection (through an SSH jump host,
	// say); nil dials directly.
	dial Dialer
}

// Dialer opens a connection to addr ("host:port"), as net.Dialer's
// DialContext does; the account commands pass one that tunnels through the
// topology's jump host.
type Dialer = adminapi.Dialer

// NewDirectory describes how to reach and bind to the directory.
func NewDirectory(url, base, adminDN, password, hostAttr string, startTLS bool, serverName, caFile string) (*Directory, error) {
	d := &Directory{url: url, base: base, adminDN: adminDN, password: password, hostAttr: hostAttr, startTLS: startTLS,
		Timeout: 10 * time.Second}
	if d.hostAttr == "" {
		d.hostAttr = hostAttrDefault
	}
	if startTLS || strings.HasPrefix(url, "ldaps://") {
		cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("directory CA: %w", err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			cfg.RootCAs = pool
		}
		d.tlsCfg = cfg
	}
	return d, nil
}

// DN is the DN of address's entry: uid=<address>,<base>.
func (d *Directory) DN(address string) string { return "uid=" + ldap.EscapeDN(address) + "," + d.base }

// Conn is one bound connection.
type Conn struct {
	d *Directory
	c *ldap.Conn
}

// Dial connects and binds as the directory's admin DN.
func (d *Directory) Dial() (*Conn, error) {
	c, err := d.connect()
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", d.url, cleanLDAPErr(err))
	}
	c.SetTimeout(d.Timeout)
	if d.startTLS {
		if err := c.StartTLS(d.tlsCfg); err != nil {
			c.Close()
			return nil, fmt.Errorf("directory %s: StartTLS: %w", d.url, cleanLDAPErr(err))
		}
	}
	if err := c.Bind(d.adminDN, d.password); err != nil {
		c.Close()
		return nil, fmt.Errorf("directory %s: bind as %s: %w", d.url, d.adminDN, cleanLDAPErr(err))
	}
	return &Conn{d: d, c: c}, nil
}

func (c *Conn) Close() error { return c.c.Close() }

// connect opens the LDAP connection, directly or through d.dial.
func (d *Directory) connect() (*ldap.Conn, error) {
	if d.dial == nil {
		opts := []ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: d.Timeout})}
		if d.tlsCfg != nil && strings.HasPrefix(d.url, "ldaps://") {
			opts = append(opts, ldap.DialWithTLSConfig(d.tlsCfg))
		}
		return ldap.DialURL(d.url, opts...)
	}
	u, err := url.Parse(d.url)
	if err != nil {
		return nil, err
	}
	ldaps := u.Scheme == "ldaps"
	host := u.Host
	if u.Port() == "" {
		port := "389"
		if ldaps {
			port = "636"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
	defer cancel()
	conn, err := d.dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if ldaps {
		tc := tls.Client(conn, d.tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	c := ldap.NewConn(conn, ldaps)
	c.Start()
	return c, nil
}

// cleanLDAPErr drops go-ldap's packet dumps and keeps the message, which
// never holds a password (go-ldap does not echo request values).
func cleanLDAPErr(err error) error {
	var le *ldap.Error
	if errors.As(err, &le) {
		if le.Err != nil {
			return fmt.Errorf("%s (%s)", ldap.LDAPResultCodeMap[le.ResultCode], le.Err.Error())
		}
		return errors.New(ldap.LDAPResultCodeMap[le.ResultCode])
	}
	return err
}

// Add creates address's entry routing to mailHost with passwordHash.
func (c *Conn) Add(address, mailHost, passwordHash string) error {
	req := ldap.NewAddRequest(c.d.DN(address), nil)
	req.Attribute("objectClass", entryClasses)
	req.Attribute("uid", []string{address})
	req.Attribute("mailLocalAddress", []string{address})
	req.Attribute(c.d.hostAttr, []string{mailHost})
	req.Attribute("userPassword", []string{passwordHash})
	if err := c.c.Add(req); err != nil {
		if unanswered(err) {
			return fmt.Errorf("directory: add %s: %w: %w", c.d.DN(address), ErrOutcomeUnknown, cleanLDAPErr(err))
		}
		return fmt.Errorf("directory: add %s: %w", c.d.DN(address), cleanLDAPErr(err))
	}
	return nil
}

// ErrOutcomeUnknown marks a write the directory did not answer: it may or
// may not have made it.
var ErrOutcomeUnknown = errors.New("the directory did not answer, the entry may or may not exist")

// unanswered reports an error that says nothing about the write itself: a
// timeout or a broken connection, not an LDAP result.
func unanswered(err error) bool {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return true
	}
	return le.ResultCode == ldap.ErrorNetwork || le.ResultCode == ldap.LDAPResultTimeout
}

// IsExists reports an LDAP "entry already exists".
func IsExists(err error) bool { return ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) }

// Delete removes an entry by DN.
func (c *Conn) Delete(dn string) error {
	if err := c.c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
		return fmt.Errorf("directory: delete %s: %w", dn, cleanLDAPErr(err))
	}
	return nil
}

// Replace replaces one attribute of an entry.
func (c *Conn) Replace(dn, attr, value string) error {
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace(attr, []string{value})
	if err := c.c.Modify(req); err != nil {
		return fmt.Errorf("directory: modify %s (%s): %w", dn, attr, cleanLDAPErr(err))
	}
	return nil
}

// SetMailHost points an entry at another instance.
func (c *Conn) SetMailHost(dn, host string) error { return c.Replace(dn, c.d.hostAttr, host) }

// Find returns every entry of address (more than one is a duplicate).
func (c *Conn) Find(address string) ([]Entry, error) {
	e := ldap.EscapeFilter(address)
	return c.search("(&(objectClass=inetLocalMailRecipient)(|(uid=" + e + ")(mailLocalAddress=" + e + ")))")
}

// All returns every mail recipient entry under the base.
func (c *Conn) All() ([]Entry, error) {
	return c.search("(objectClass=inetLocalMailRecipient)")
}

func (c *Conn) search(filter string) ([]Entry, error) {
	req := ldap.NewSearchRequest(c.d.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter,
		[]string{"uid", "mailLocalAddress", c.d.hostAttr}, nil)
	res, err := c.c.SearchWithPaging(req, 1000)
	if err != nil {
		return nil, fmt.Errorf("directory: search %s: %w", filter, cleanLDAPErr(err))
	}
	out := make([]Entry, 0, len(res.Entries))
	for _, e := range res.Entries {
		addr := e.GetAttributeValue("mailLocalAddress")
		if addr == "" {
			addr = e.GetAttributeValue("uid")
		}
		out = append(out, Entry{DN: e.DN, Address: strings.ToLower(addr), MailHost: strings.ToLower(e.GetAttributeValue(c.d.hostAttr))})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		return out[i].DN < out[j].DN
	})
	return out, nil
}
