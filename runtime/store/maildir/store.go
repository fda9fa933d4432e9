package maildir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors callers map to protocol replies.
var (
	ErrNoMailbox     = errors.New("no such mailbox")
	ErrMailboxExists = errors.New("mailbox already exists")
	ErrHasChildren   = errors.New("mailbox has children")
	ErrInboxSpecial  = errors.New("INBOX cannot be deleted")
	ErrQuota         = errors.New("quota exceeded")
	ErrTooBig        = errors.New("message too big")
	ErrBadAddress    = errors.New("invalid account address")
	ErrNoAccount     = errors.New("no such account")
)

// Store is the storage partition of one instance.
type Store struct {
	root string
	host string

	mu       sync.Mutex
	accounts map[string]*Account

	uvMu   sync.Mutex // separate from mu: taken with an Account's lock held
	lastUV uint32
}

// Open opens (creating if needed) the storage root. host names this server
// in message file names.
func Open(root, host string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	return &Store{root: root, host: host, accounts: map[string]*Account{}}, nil
}

// Root returns the storage root directory.
func (s *Store) Root() string { return s.root }

const uidValidityFile = ".mailfleet-uidvalidity"

// newUIDValidity returns a UIDVALIDITY that no mailbox of this store got
// before: the current time, pushed past the last value handed out, which is
// kept in a file so that it holds across restarts and clock steps.
func (s *Store) newUIDValidity() uint32 {
	s.uvMu.Lock()
	defer s.uvMu.Unlock()
	path := filepath.Join(s.root, uidValidityFile)
	if s.lastUV == 0 {
		if b, err := os.ReadFile(path); err == nil {
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
				s.lastUV = uint32(v)
			}
		}
	}
	v := uint32(time.Now().Unix())
	if v <= s.lastUV {
		v = s.lastUV + 1
	}
	s.lastUV = v
	// Best effort: if the write fails, the time-based value still differs
	// from earlier ones unless the clock went back.
	_ = writeFileAtomic(path, []byte(strconv.FormatUint(uint64(v), 10)+"\n"), 0o600)
	return v
}

// SplitAddress validates an account address and returns its lower-cased
// local part and domain. Only characters that are safe as a directory name
// are allowed.
func SplitAddress(addr string) (local, domain string, err error) {
	// ASCII only, lower-cased as ASCII: Unicode case mapping would make
	// "maİlfleet.test" (U+0130) "mailfleet.test", another domain's mail.
	for i := 0; i < len(addr); i++ {
		if addr[i] >= 0x80 {
			return "", "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
		}
	}
	addr = strings.ToLower(addr)
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || len(local) > 64 || len(domain) > 253 {
		return "", "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
	}
	for _, r := range local {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$&'*+-=?^_`{|}~.", r)) {
			return "", "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "", "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "", "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
			}
		}
	}
	return local, domain, nil
}

func (s *Store) accountDir(local, domain string) string {
	return filepath.Join(s.root, domain, local)
}

// Account returns the account's storage, creating its maildir on first use.
func (s *Store) Account(addr string) (*Account, error) {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return nil, err
	}
	key := local + "@" + domain
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[key]; ok {
		return a, nil
	}
	dir := s.accountDir(local, domain)
	_, statErr := os.Stat(filepath.Join(dir, "cur"))
	if err := createMaildir(dir); err != nil {
		return nil, err
	}
	a := &Account{store: s, Address: key, dir: dir, mailboxes: map[string]*Mailbox{}}
	if err := a.loadSettings(); err != nil {
		return nil, err
	}
	if statErr != nil {
		// A new account starts with its domain's default quota.
		if ds, err := s.Domain(domain); err == nil && ds.DefaultQuota != (Quota{}) {
			b, _ := json.Marshal(accountSettings{Quota: ds.DefaultQuota})
			if err := writeFileAtomic(filepath.Join(dir, settingsFile), b, 0o600); err != nil {
				return nil, err
			}
			a.quota = ds.DefaultQuota
		}
	}
	s.accounts[key] = a
	return a, nil
}

// HasAccount reports whether the account has storage already.
func (s *Store) HasAccount(addr string) bool {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(s.accountDir(local, domain), "cur"))
	return err == nil
}

// Accounts lists the addresses that have storage, sorted.
func (s *Store) Accounts() ([]string, error) {
	domains, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	var out []string
	for _, d := range domains {
		if !d.IsDir() {
			continue
		}
		locals, err := os.ReadDir(filepath.Join(s.root, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
		for _, l := range locals {
			addr := l.Name() + "@" + d.Name()
			if _, _, err := SplitAddress(addr); err == nil && l.IsDir() {
				out = append(out, addr)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// createMaildir creates dir with cur/, new/ and tmp/ and makes the new
// entries durable.
func createMaildir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "tmp")); err == nil {
		return nil
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
	// Make the new directories durable up to the storage root.
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Quota limits an account; zero fields mean no limit.
type Quota struct {
	MaxBytes    int64 `json:"max_bytes"`
	MaxMessages int64 `json:"max_messages"`
}

// Usage is what an account holds.
type Usage struct {
	Bytes    int64 `json:"bytes"`
	Messages int64 `json:"messages"`
}

// Account is the storage of one mail account.
type Account struct {
	store   *Store
	Address string
	dir     string

	mu         sync.Mutex
	mailboxes  map[string]*Mailbox
	quota      Quota
	usage      Usage
	usageKnown bool
}

type accountSettings struct {
	Quota Quota `json:"quota"`
}

const settingsFile = "mailfleet-account.json"

func (a *Account) loadSettings() error {
	b, err := os.ReadFile(filepath.Join(a.dir, settingsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	var st accountSettings
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("maildir: %s: %w", settingsFile, err)
	}
	a.quota = st.Quota
	return nil
}

// Quota returns the account's limits.
func (a *Account) Quota() Quota {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.quota
}

// SetQuota stores new limits durably.
func (a *Account) SetQuota(q Quota) error {
	if q.MaxBytes < 0 || q.MaxMessages < 0 {
		return errors.New("maildir: negative quota")
	}
	b, _ := json.Marshal(accountSettings{Quota: q})
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := writeFileAtomic(filepath.Join(a.dir, settingsFile), b, 0o600); err != nil {
		return err
	}
	a.quota = q
	return nil
}

// Usage returns the bytes and messages the account holds. The first call
// scans the account; later calls use the figure kept up to date in memory.
func (a *Account) Usage() (Usage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.usageLocked()
}

func (a *Account) usageLocked() (Usage, error) {
	if a.usageKnown {
		return a.usage, nil
	}
	var u Usage
	dirs := []string{a.dir}
	names, err := a.listLocked()
	if err != nil {
		return u, err
	}
	for _, n := range names {
		if n != Inbox {
			dirs = append(dirs, filepath.Join(a.dir, dirName(n)))
		}
	}
	for _, d := range dirs {
		for _, sub := range []string{"cur", "new"} {
			ents, err := os.ReadDir(filepath.Join(d, sub))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return u, fmt.Errorf("maildir: %w", err)
			}
			for _, e := range ents {
				n, err := ParseName(e.Name())
				if err != nil {
					continue
				}
				size := n.Size
				if size < 0 {
					if fi, err := e.Info(); err == nil {
						size = fi.Size()
					}
				}
				u.Bytes += size
				u.Messages++
			}
		}
	}
	a.usage, a.usageKnown = u, true
	return u, nil
}

// CheckQuota reports ErrQuota when adding size bytes (and one message)
// would exceed the account's limits.
func (a *Account) CheckQuota(size int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checkQuotaLocked(size, 1)
}

func (a *Account) checkQuotaLocked(size, count int64) error {
	if a.quota.MaxBytes == 0 && a.quota.MaxMessages == 0 {
		return nil
	}
	u, err := a.usageLocked()
	if err != nil {
		return err
	}
	if a.quota.MaxBytes > 0 && u.Bytes+size > a.quota.MaxBytes {
		return ErrQuota
	}
	if a.quota.MaxMessages > 0 && u.Messages+count > a.quota.MaxMessages {
		return ErrQuota
	}
	return nil
}

func (a *Account) addUsage(bytes, count int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.usageKnown {
		a.usage.Bytes += bytes
		a.usage.Messages += count
	}
}

// List returns the names of all mailboxes, INBOX first, then sorted.
func (a *Account) List() ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.listLocked()
}

func (a *Account) listLocked() ([]string, error) {
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if n, ok := mailboxFromDir(e.Name()); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return append([]string{Inbox}, names...), nil
}

// Mailbox returns an existing mailbox.
func (a *Account) Mailbox(name string) (*Mailbox, error) {
	name, err := CanonicalMailboxName(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mailboxLocked(name)
}

func (a *Account) mailboxLocked(name string) (*Mailbox, error) {
	if m, ok := a.mailboxes[name]; ok {
		return m, nil
	}
	dir := a.dir
	if name != Inbox {
		dir = filepath.Join(a.dir, dirName(name))
		if _, err := os.Stat(filepath.Join(dir, "cur")); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNoMailbox, name)
		}
	}
	m := &Mailbox{acct: a, name: name, dir: dir}
	a.mailboxes[name] = m
	return m, nil
}

// Inbox returns the INBOX.
func (a *Account) Inbox() *Mailbox {
	m, _ := a.Mailbox(Inbox)
	return m
}

// CreateMailbox creates a mailbox and any missing parents. The new folder
// appears complete or not at all: it is built under a temporary name and
// renamed into place.
func (a *Account) CreateMailbox(name string) error {
	name, err := CanonicalMailboxName(name)
	if err != nil {
		return err
	}
	if name == Inbox {
		return fmt.Errorf("%w: %s", ErrMailboxExists, name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	parts := strings.Split(name, string(Delim))
	for i := range parts {
		n := strings.Join(parts[:i+1], string(Delim))
		if n == Inbox {
			continue
		}
		final := filepath.Join(a.dir, dirName(n))
		if _, err := os.Stat(final); err == nil {
			if i == len(parts)-1 {
				return fmt.Errorf("%w: %s", ErrMailboxExists, name)
			}
			continue
		}
		if err := a.createFolder(final); err != nil {
			return err
		}
	}
	return nil
}

func (a *Account) createFolder(final string) error {
	tmp, err := os.MkdirTemp(a.dir, "creating-")
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(tmp, sub), 0o700); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "maildirfolder"), nil, 0o600); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := writeUIDList(tmp, a.store.newUIDValidity(), 1, nil); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return syncDir(a.dir)
}

// DeleteMailbox removes a mailbox and its messages. INBOX and mailboxes
// with children cannot be deleted.
func (a *Account) DeleteMailbox(name string) error {
	name, err := CanonicalMailboxName(name)
	if err != nil {
		return err
	}
	if name == Inbox {
		return ErrInboxSpecial
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	names, err := a.listLocked()
	if err != nil {
		return err
	}
	found := false
	for _, n := range names {
		if n == name {
			found = true
		}
		if strings.HasPrefix(n, name+string(Delim)) {
			return fmt.Errorf("%w: %s", ErrHasChildren, name)
		}
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrNoMailbox, name)
	}
	dir := filepath.Join(a.dir, dirName(name))
	trash, err := os.MkdirTemp(a.dir, "deleting-")
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	target := filepath.Join(trash, "mbox")
	if err := os.Rename(dir, target); err != nil {
		os.Remove(trash)
		return fmt.Errorf("maildir: %w", err)
	}
	if err := syncDir(a.dir); err != nil {
		return err
	}
	if m, ok := a.mailboxes[name]; ok {
		m.markDeleted()
		delete(a.mailboxes, name)
	}
	a.usageKnown = false
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}

// RenameMailbox renames a mailbox and its children. Renaming INBOX moves
// its messages into a new mailbox and leaves INBOX empty (RFC 3501 6.3.5).
func (a *Account) RenameMailbox(from, to string) error {
	from, err := CanonicalMailboxName(from)
	if err != nil {
		return err
	}
	to, err = CanonicalMailboxName(to)
	if err != nil {
		return err
	}
	if to == Inbox || to == from || strings.HasPrefix(to, from+string(Delim)) {
		return fmt.Errorf("%w: cannot rename %s to %s", ErrMailboxExists, from, to)
	}
	if from == Inbox {
		if err := a.CreateMailbox(to); err != nil {
			return err
		}
		src := a.Inbox()
		dst, err := a.Mailbox(to)
		if err != nil {
			return err
		}
		msgs, err := src.Messages()
		if err != nil {
			return err
		}
		uids := make([]uint32, len(msgs))
		for i, m := range msgs {
			uids[i] = m.UID
		}
		_, err = src.Move(uids, dst)
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	names, err := a.listLocked()
	if err != nil {
		return err
	}
	var moving []string
	for _, n := range names {
		if n == to {
			return fmt.Errorf("%w: %s", ErrMailboxExists, to)
		}
		if n == from || strings.HasPrefix(n, from+string(Delim)) {
			moving = append(moving, n)
		}
	}
	if len(moving) == 0 {
		return fmt.Errorf("%w: %s", ErrNoMailbox, from)
	}
	for _, n := range moving {
		nn := to + strings.TrimPrefix(n, from)
		if _, err := CanonicalMailboxName(nn); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(a.dir, dirName(n)), filepath.Join(a.dir, dirName(nn))); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
		if m, ok := a.mailboxes[n]; ok {
			m.markDeleted()
			delete(a.mailboxes, n)
		}
	}
	// Parents of the new name must exist as folders too.
	parts := strings.Split(to, string(Delim))
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], string(Delim))
		if p == Inbox {
			continue
		}
		if _, err := os.Stat(filepath.Join(a.dir, dirName(p))); err != nil {
			if err := a.createFolder(filepath.Join(a.dir, dirName(p))); err != nil {
				return err
			}
		}
	}
	return syncDir(a.dir)
}

const subscriptionsFile = "subscriptions"

// Subscriptions returns the subscribed mailbox names.
func (a *Account) Subscriptions() (map[string]bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subscriptionsLocked()
}

func (a *Account) subscriptionsLocked() (map[string]bool, error) {
	out := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(a.dir, subscriptionsFile))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out[l] = true
		}
	}
	return out, nil
}

// Subscribe adds (on) or removes a subscription.
func (a *Account) Subscribe(name string, on bool) error {
	name, err := CanonicalMailboxName(name)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	subs, err := a.subscriptionsLocked()
	if err != nil {
		return err
	}
	if on {
		subs[name] = true
	} else {
		delete(subs, name)
	}
	var names []string
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	data := strings.Join(names, "\n")
	if data != "" {
		data += "\n"
	}
	return writeFileAtomic(filepath.Join(a.dir, subscriptionsFile), []byte(data), 0o600)
}
