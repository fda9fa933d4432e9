// Package config is the on-disk configuration of the mailfleetd roles: the
// JSON documents that render writes and the daemons read. It is the one
// contract between the compiler and the runtime, so it must not import spec,
// render or remote; both sides import it.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// FormatVersion is written into every config; a daemon refuses a config with
// a different major version.
const FormatVersion = 1

// Duration is a time.Duration that reads and writes as a Go duration string
// ("1s", "250ms").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// TLS names certificate files on the host. Empty Cert means no TLS.
type TLS struct {
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// CA verifies the peer on client hops (front-end → store, → LDAP).
	CA string `json:"ca,omitempty"`
}

// Enabled reports whether a certificate is configured.
func (t *TLS) Enabled() bool { return t != nil && t.Cert != "" }

func (t *TLS) validate(where string) error {
	if t == nil {
		return nil
	}
	if (t.Cert == "") != (t.Key == "") {
		return fmt.Errorf("%s: tls needs both cert and key", where)
	}
	return nil
}

// LDAP is how a role reaches the directory.
type LDAP struct {
	// URLs are tried in order.
	URLs   []string `json:"urls"`
	BindDN string   `json:"bind_dn"`
	// BindPasswordFile holds the service DN's password (mode 0600/0640); the
	// password itself never appears in a config document.
	BindPasswordFile string `json:"bind_password_file"`
	Base             string `json:"base"`
	// Filter has %e (address), %u (local part) and %d (domain) placeholders;
	// values are escaped with RFC 4515 rules before substitution.
	Filter           string   `json:"filter"`
	HostAttribute    string   `json:"host_attribute"`
	RefuseDuplicates bool     `json:"refuse_duplicates"`
	StartTLS         bool     `json:"starttls,omitempty"`
	CA               string   `json:"ca,omitempty"`
	Timeout          Duration `json:"timeout,omitempty"`
}

func (l *LDAP) validate(where string) error {
	if l == nil {
		return nil
	}
	var errs []error
	if len(l.URLs) == 0 {
		errs = append(errs, fmt.Errorf("%s: ldap.urls is empty", where))
	}
	for _, u := range l.URLs {
		if !strings.HasPrefix(u, "ldap://") && !strings.HasPrefix(u, "ldaps://") {
			errs = append(errs, fmt.Errorf("%s: ldap url %q must start with ldap:// or ldaps://", where, u))
		}
	}
	if l.BindDN == "" || l.BindPasswordFile == "" {
		errs = append(errs, fmt.Errorf("%s: ldap needs bind_dn and bind_password_file (no anonymous or empty-password binds)", where))
	}
	if l.Base == "" {
		errs = append(errs, fmt.Errorf("%s: ldap.base is empty", where))
	}
	if !strings.Contains(l.Filter, "%e") && !strings.Contains(l.Filter, "%u") {
		errs = append(errs, fmt.Errorf("%s: ldap.filter %q has no %%e or %%u placeholder", where, l.Filter))
	}
	if l.HostAttribute == "" {
		errs = append(errs, fmt.Errorf("%s: ldap.host_attribute is empty", where))
	}
	return errors.Join(errs...)
}

// Nameserver is one DNS server of a resolver, tried by ascending priority.
type Nameserver struct {
	Address  string `json:"address"`
	Priority int    `json:"priority"`
}

type Resolver struct {
	Nameservers []Nameserver `json:"nameservers"`
	Timeout     Duration     `json:"timeout"`
	Retries     int          `json:"retries"`
}

func (r *Resolver) validate(where string) error {
	for _, ns := range r.Nameservers {
		if _, err := netip.ParseAddr(ns.Address); err != nil {
			return fmt.Errorf("%s: nameserver %q: %w", where, ns.Address, err)
		}
	}
	if r.Retries < 0 {
		return fmt.Errorf("%s: resolver retries is negative", where)
	}
	return nil
}

// Load reads a config document of any role into v and validates it.
func Load(path string, v interface{ Validate() error }) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(b, v)
}

// Decode parses b strictly (unknown fields are errors) into v and validates it.
func Decode(b []byte, v interface{ Validate() error }) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return errors.New("config: trailing data after the JSON document")
	}
	return v.Validate()
}

func checkVersion(v int) error {
	if v != FormatVersion {
		return fmt.Errorf("config: format_version %d is not supported (want %d)", v, FormatVersion)
	}
	return nil
}

func checkAddrPort(where, s string) error {
	if _, err := netip.ParseAddrPort(s); err != nil {
		return fmt.Errorf("%s: %q is not ADDR:PORT: %w", where, s, err)
	}
	return nil
}

func checkPrefixes(where string, ps []string) error {
	for _, p := range ps {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("%s: trusted network %q: %w", where, p, err)
		}
	}
	return nil
}
