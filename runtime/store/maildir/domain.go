package maildir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DomainSettings are the per-domain settings of the admin API.
type DomainSettings struct {
	// DefaultQuota is given to accounts created in the domain.
	DefaultQuota Quota `json:"default_quota"`
	// MaxAccounts bounds the accounts created through the admin API (0: no
	// limit).
	MaxAccounts int `json:"max_accounts"`
}

const domainFile = "mailfleet-domain.json"

// ErrNoDomain is returned for a domain without settings.
var ErrNoDomain = errors.New("no such domain")

// ErrDomainNotEmpty is returned when deleting a domain that has accounts.
var ErrDomainNotEmpty = errors.New("domain still has accounts")

func checkDomain(domain string) (string, error) {
	_, d, err := SplitAddress("x@" + domain)
	return d, err
}

// SetDomain creates or updates a domain's settings.
func (s *Store) SetDomain(domain string, st DomainSettings) error {
	d, err := checkDomain(domain)
	if err != nil {
		return err
	}
	if st.MaxAccounts < 0 || st.DefaultQuota.MaxBytes < 0 || st.DefaultQuota.MaxMessages < 0 {
		return errors.New("maildir: negative domain setting")
	}
	dir := filepath.Join(s.root, d)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	b, _ := json.Marshal(st)
	return writeFileAtomic(filepath.Join(dir, domainFile), b, 0o600)
}

// Domain returns a domain's settings.
func (s *Store) Domain(domain string) (DomainSettings, error) {
	var st DomainSettings
	d, err := checkDomain(domain)
	if err != nil {
		return st, err
	}
	b, err := os.ReadFile(filepath.Join(s.root, d, domainFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%w: %s", ErrNoDomain, d)
	}
	if err != nil {
		return st, fmt.Errorf("maildir: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("maildir: %s: %w", domainFile, err)
	}
	return st, nil
}

// Domains lists the domains that have settings.
func (s *Store) Domains() ([]string, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(s.root, e.Name(), domainFile)); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// DeleteDomain removes a domain's settings; it must have no accounts.
func (s *Store) DeleteDomain(domain string) error {
	d, err := checkDomain(domain)
	if err != nil {
		return err
	}
	accts, err := s.Accounts()
	if err != nil {
		return err
	}
	for _, a := range accts {
		if strings.HasSuffix(a, "@"+d) {
			return fmt.Errorf("%w: %s", ErrDomainNotEmpty, d)
		}
	}
	if err := os.Remove(filepath.Join(s.root, d, domainFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNoDomain, d)
		}
		return fmt.Errorf("maildir: %w", err)
	}
	os.Remove(filepath.Join(s.root, d)) // only if empty
	return syncDir(s.root)
}

// DeleteAccount removes an account and all its mail. The caller makes sure
// no session uses it (the admin API requires the moving state).
func (s *Store) DeleteAccount(addr string) error {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return err
	}
	dir := s.accountDir(local, domain)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%w: %s", ErrNoAccount, addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	trash, err := os.MkdirTemp(filepath.Dir(dir), ".deleting-")
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := os.Rename(dir, filepath.Join(trash, "account")); err != nil {
		os.Remove(trash)
		return fmt.Errorf("maildir: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	if a, ok := s.accounts[local+"@"+domain]; ok {
		a.mu.Lock()
		for _, m := range a.mailboxes {
			m.markDeleted()
		}
		a.mu.Unlock()
		delete(s.accounts, local+"@"+domain)
	}
	return os.RemoveAll(trash)
}
