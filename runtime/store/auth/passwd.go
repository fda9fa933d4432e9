package auth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailfleet/mailfleet/internal/ssha"
)

// PasswdFile is a directory kept in a text file, one account a line:
//
//	address:{SCHEME}hash
//
// Schemes: {BLF-CRYPT} (bcrypt, also a bare "$2a$/$2b$/$2y$" hash),
// {SSHA}, {SSHA256}, {SSHA512} (base64 of digest+salt). Plaintext schemes
// are refused when the file is read. Lines starting with '#' are comments.
// The file is read again when its modification time changes.
type PasswdFile struct {
	path string

	mu      sync.Mutex
	mtime   time.Time
	size    int64
	entries map[string]string
}

// NewPasswdFile reads path and returns the directory it holds.
func NewPasswdFile(path string) (*PasswdFile, error) {
	p := &PasswdFile{path: path}
	if err := p.reload(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PasswdFile) reload() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fi, err := os.Stat(p.path)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if p.entries != nil && fi.ModTime().Equal(p.mtime) && fi.Size() == p.size {
		return nil
	}
	f, err := os.Open(p.path)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	entries := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		addr, hash, ok := strings.Cut(line, ":")
		if !ok || addr == "" || !strings.Contains(addr, "@") {
			return fmt.Errorf("auth: %s:%d: want address:{SCHEME}hash", p.path, n)
		}
		hash, _, _ = strings.Cut(hash, ":") // later fields are reserved
		if err := checkScheme(hash); err != nil {
			return fmt.Errorf("auth: %s:%d: %w", p.path, n, err)
		}
		entries[strings.ToLower(addr)] = hash
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	p.entries, p.mtime, p.size = entries, fi.ModTime(), fi.Size()
	return nil
}

func checkScheme(h string) error {
	switch {
	case strings.HasPrefix(h, "$2"), strings.HasPrefix(h, "{BLF-CRYPT}"), strings.HasPrefix(h, "{BCRYPT}"),
		strings.HasPrefix(h, "{SSHA}"), strings.HasPrefix(h, "{SSHA256}"), strings.HasPrefix(h, "{SSHA512}"):
		return nil
	case strings.HasPrefix(h, "{PLAIN}"), strings.HasPrefix(h, "{CLEARTEXT}"), strings.HasPrefix(h, "{CLEAR}"):
		return errors.New("plaintext passwords are not accepted; hash them")
	default:
		return errors.New("unknown password scheme (want {BLF-CRYPT}, {SSHA}, {SSHA256} or {SSHA512})")
	}
}

// HashPassword returns a {BLF-CRYPT} hash for a passwd file.
func HashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	return "{BLF-CRYPT}" + string(h), nil
}

// dummyHash is checked when the user does not exist, so that a missing
// account takes as long as a wrong password. Made on first use, not at
// start: a bcrypt hash costs tens of milliseconds, and every start of a
// store is part of a failover.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("mailfleet-dummy"), bcrypt.DefaultCost)
	return h
})

func verify(h, pw string) bool {
	for _, pfx := range []string{"{BLF-CRYPT}", "{BCRYPT}"} {
		if rest, ok := strings.CutPrefix(h, pfx); ok {
			return bcrypt.CompareHashAndPassword([]byte(rest), []byte(pw)) == nil
		}
	}
	if strings.HasPrefix(h, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)) == nil
	}
	return ssha.Verify(h, pw)
}

// Authenticate implements Directory.
func (p *PasswdFile) Authenticate(ctx context.Context, username, password string) (string, error) {
	if err := p.reload(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	addr := strings.ToLower(username)
	p.mu.Lock()
	h, ok := p.entries[addr]
	p.mu.Unlock()
	if password == "" {
		return "", ErrInvalidCredentials
	}
	if !ok {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return "", ErrInvalidCredentials
	}
	if !verify(h, password) {
		return "", ErrInvalidCredentials
	}
	return addr, nil
}

// Lookup implements Directory.
func (p *PasswdFile) Lookup(ctx context.Context, address string) (string, bool, error) {
	if err := p.reload(); err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	addr := strings.ToLower(address)
	p.mu.Lock()
	_, ok := p.entries[addr]
	p.mu.Unlock()
	return addr, ok, nil
}

// AppendPasswdEntry adds an account line to a passwd file (creating it
// 0600), for development mode and tests.
func AppendPasswdEntry(path, address, password string) error {
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%s:%s\n", strings.ToLower(address), h); err != nil {
		f.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("auth: %w", err)
	}
	return f.Close()
}
