package devcluster

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailfleet/mailfleet/internal/ssha"
)

// Account is one seeded account: its address (the login name), its
// password and the name of its home instance.
type Account struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Instance string `json:"instance"`
}

// secrets are the cluster's throwaway credentials. Each lives in a file of
// its own under DIR/topology/secrets (mode 0600), so that the topology names it with
// file(); they are made on the first start and read on every later one.
type secrets struct {
	dir             string
	SiteKey         string
	LDAPAdmin       string
	LDAPService     string
	AdminSecrets    map[string]string // instance name → admin API secret
	Accounts        []Account
	siteKeyFile     string
	ldapAdminFile   string
	ldapServiceFile string
}

func (s *secrets) adminSecretFile(instance string) string {
	return filepath.Join(s.dir, instance+"-admin.secret")
}

// Names of the secret files under DIR/topology/secrets.
const (
	siteKeyName     = "site.key"
	ldapAdminName   = "ldap-admin.password"
	ldapServiceName = "ldap-service.password"
	accountsName    = "accounts.json"
)

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// loadSecrets reads the secrets under dir, making each one that is missing.
// An existing file is never rewritten, so credentials survive restarts.
func loadSecrets(dir string, instances []string) (*secrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	s := &secrets{dir: dir, AdminSecrets: map[string]string{},
		siteKeyFile: filepath.Join(dir, siteKeyName), ldapAdminFile: filepath.Join(dir, ldapAdminName),
		ldapServiceFile: filepath.Join(dir, ldapServiceName)}
	var err error
	if s.SiteKey, err = secretFile(s.siteKeyFile, 32); err != nil {
		return nil, err
	}
	if s.LDAPAdmin, err = secretFile(s.ldapAdminFile, 18); err != nil {
		return nil, err
	}
	if s.LDAPService, err = secretFile(s.ldapServiceFile, 18); err != nil {
		return nil, err
	}
	if s.LDAPAdmin == s.LDAPService {
		return nil, fmt.Errorf("%s and %s hold the same password; remove one to start afresh", s.ldapAdminFile, s.ldapServiceFile)
	}
	for _, name := range instances {
		if s.AdminSecrets[name], err = secretFile(s.adminSecretFile(name), 24); err != nil {
			return nil, err
		}
	}
	if s.Accounts, err = accountsFile(filepath.Join(dir, accountsName), instances); err != nil {
		return nil, err
	}
	return s, nil
}

// secretFile returns the content of path, after writing a random token of
// n bytes there if it does not exist.
func secretFile(path string, n int) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		v := strings.TrimSpace(string(b))
		if len(v) < 16 {
			return "", fmt.Errorf("%s holds fewer than 16 characters; remove it to start afresh", path)
		}
		return v, os.Chmod(path, 0o600)
	case errors.Is(err, os.ErrNotExist):
		v := randomToken(n)
		return v, writeFileAtomic(path, []byte(v), 0o600)
	default:
		return "", err
	}
}

// accountsFile returns one account per instance, as kept in path, making
// (and keeping) those that are missing.
func accountsFile(path string, instances []string) ([]Account, error) {
	var kept []Account
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &kept); err != nil {
			return nil, fmt.Errorf("%s is damaged (%v); remove it to start afresh", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	byInstance := map[string]Account{}
	for _, a := range kept {
		if a.User != "" && a.Password != "" {
			byInstance[a.Instance] = a
		}
	}
	out := make([]Account, 0, len(instances))
	changed := len(kept) != len(instances)
	for i, name := range instances {
		a, ok := byInstance[name]
		if !ok {
			a = Account{User: accountLocalParts[i%len(accountLocalParts)] + "@" + Domain, Password: randomToken(12), Instance: name}
			changed = true
		}
		out = append(out, a)
	}
	if changed {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	return out, os.Chmod(path, 0o600)
}

// accountLocalParts name the seeded accounts, one per instance in order.
var accountLocalParts = []string{"alice", "bob", "carol", "dave"}

// writeFileAtomic writes path through a temporary file and a rename, so a
// crash leaves the old file or the new one.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sshaOf is OpenLDAP's {SSHA} form of a generated (never empty) password.
func sshaOf(password string) string {
	h, err := ssha.New(password)
	if err != nil {
		panic("devcluster: " + err.Error())
	}
	return h
}
