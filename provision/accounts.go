package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/runtime/adminapi"
)

// ErrExists is returned by Add for an address that already has an entry.
var ErrExists = errors.New("the account already exists")

// ErrNoAccount is returned for an address with neither entry nor mailbox.
var ErrNoAccount = errors.New("no such account")

// Session is one bound LDAP connection on a Site.
type Session struct {
	*Site
	Conn *Conn
}

// Session dials and binds the directory.
func (s *Site) Session() (*Session, error) {
	c, err := s.Dir.Dial()
	if err != nil {
		return nil, err
	}
	return &Session{Site: s, Conn: c}, nil
}

func (ss *Session) Close() error { return ss.Conn.Close() }

// AddRequest is one account to create.
type AddRequest struct {
	Address string
	// Password is the clear text (hashed here) unless Hash is given.
	Password string
	Hash     string
	Instance string // "": by policy
	Quota    *int64 // bytes; nil: the domain's default

	// For bulk use: skip the directory lookup (the caller knows there is
	// no entry), the instance probes and the count queries.
	known    bool
	orphanOn string
	counts   func() map[string]int
}

// AddResult says where an account went.
type AddResult struct {
	Address, Instance, MailHost, DN string
	Adopted                         bool // an existing mailbox without entry was reused
}

// Add creates an account: domain, mailbox, then LDAP entry. When the LDAP
// step fails, the mailbox it created is removed again.
func (ss *Session) Add(ctx context.Context, r AddRequest) (AddResult, error) {
	addr, err := NormalizeAddress(r.Address)
	if err != nil {
		return AddResult{}, err
	}
	// One validation for every path that creates an account (add,
	// import): what `account set` would refuse is refused here too.
	if err := ss.CheckAddress(addr); err != nil {
		return AddResult{}, err
	}
	if r.Quota != nil && *r.Quota < 0 {
		return AddResult{}, fmt.Errorf("%s: a quota cannot be negative", addr)
	}
	hash := r.Hash
	if hash == "" {
		if hash, err = HashPassword(r.Password); err != nil {
			return AddResult{}, fmt.Errorf("%s: %w", addr, err)
		}
	} else if !IsHash(hash) {
		return AddResult{}, fmt.Errorf("%s: the password hash is not an {SSHA} hash", addr)
	}
	if !r.known {
		es, err := ss.Conn.Find(addr)
		if err != nil {
			return AddResult{}, err
		}
		if len(es) > 0 {
			return AddResult{}, fmt.Errorf("%s: %w (entry %s, mailHost %s)", addr, ErrExists, es[0].DN, es[0].MailHost)
		}
		// A mailbox without entry (an interrupted add or rm) is adopted
		// rather than left orphaned beside a new one.
		for _, name := range ss.Names {
			if _, err := ss.Instances[name].Account(ctx, addr); err == nil {
				r.orphanOn = name
				break
			} else if !errors.Is(err, adminapi.ErrNotFound) && r.Instance == "" && ss.Chooser.NeedsCounts() {
				return AddResult{}, err
			}
		}
	}
	home := r.Instance
	switch {
	case home != "":
		if _, err := ss.Instance(home); err != nil {
			return AddResult{}, err
		}
	case r.orphanOn != "":
		home = r.orphanOn
	default:
		var counts map[string]int
		if ss.Chooser.NeedsCounts() {
			if r.counts != nil {
				counts = r.counts()
			} else {
				counts = map[string]int{}
				for _, name := range ss.Names {
					n, err := ss.Instances[name].Count(ctx)
					if err != nil {
						return AddResult{}, fmt.Errorf("least_used policy: %w", err)
					}
					counts[name] = n
				}
			}
		}
		if home, err = ss.Chooser.Choose(domainOf(addr), counts); err != nil {
			return AddResult{}, err
		}
	}
	inst := ss.Instances[home]
	res := AddResult{Address: addr, Instance: home, MailHost: inst.FQDN, DN: ss.Dir.DN(addr)}
	if err := ss.EnsureDomain(ctx, domainOf(addr), ss.Chooser.DomainInstances(domainOf(addr), home)); err != nil {
		return res, fmt.Errorf("%s: creating domain %s: %w", addr, domainOf(addr), err)
	}
	created := false
	if r.orphanOn == home {
		res.Adopted = true
	} else {
		if _, err := inst.CreateAccount(ctx, addr); err != nil {
			return res, fmt.Errorf("%s: creating the mailbox: %w", addr, err)
		}
		created = true
	}
	if r.Quota != nil {
		if _, err := inst.SetQuota(ctx, addr, adminapi.Quota{MaxBytes: *r.Quota}); err != nil {
			return res, ss.rollback(addr, inst, created, fmt.Errorf("%s: setting the quota: %w", addr, err))
		}
	}
	if ss.AfterMailbox != nil {
		if err := ss.AfterMailbox(addr); err != nil {
			return res, fmt.Errorf("%s: interrupted after the mailbox step: %w", addr, err)
		}
	}
	if err := ss.Conn.Add(addr, inst.FQDN, hash); err != nil {
		if errors.Is(err, ErrOutcomeUnknown) {
			// Removing the mailbox now could leave an entry that routes to
			// nothing; an orphaned mailbox is the recoverable state.
			return res, fmt.Errorf("%w; the new mailbox on %s is kept so no entry routes to a missing one: run `mailfleet account check` (-fix removes it if the entry was not written)", err, inst.Name)
		}
		if IsExists(err) {
			// Created meanwhile by someone else: theirs may use this mailbox.
			if es, ferr := ss.Conn.Find(addr); ferr == nil && len(es) > 0 && ss.InstanceOf(es[0].MailHost) == home {
				created = false
			}
			err = fmt.Errorf("%s: %w (%v)", addr, ErrExists, err)
		}
		return res, ss.rollback(addr, inst, created, err)
	}
	return res, nil
}

// rollback removes a mailbox Add created and says so in the error.
func (ss *Session) rollback(addr string, inst *adminapi.Client, created bool, cause error) error {
	if !created {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := inst.DeleteAccount(ctx, addr); err != nil {
		return fmt.Errorf("%w; removing the new mailbox on %s failed too (%v): `mailfleet account check -fix` removes it", cause, inst.Name, err)
	}
	return fmt.Errorf("%w; the new mailbox on %s was removed again, nothing was created", cause, inst.Name)
}

// one is the single entry of addr; duplicates are an error.
func (ss *Session) one(addr string) (Entry, error) {
	es, err := ss.Conn.Find(addr)
	if err != nil {
		return Entry{}, err
	}
	switch len(es) {
	case 0:
		return Entry{}, fmt.Errorf("%s: %w in the directory", addr, ErrNoAccount)
	case 1:
		return es[0], nil
	}
	dns := make([]string, len(es))
	for i, e := range es {
		dns[i] = e.DN
	}
	return Entry{}, fmt.Errorf("%s has %d directory entries (%s): run `mailfleet account check -fix`", addr, len(es), strings.Join(dns, "; "))
}

// Passwd replaces the account's password in the directory.
func (ss *Session) Passwd(ctx context.Context, address, password string) error {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	e, err := ss.one(addr)
	if err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return ss.Conn.Replace(e.DN, "userPassword", hash)
}

// SetQuota sets the account's quota on its home instance.
func (ss *Session) SetQuota(ctx context.Context, address string, maxBytes int64) (adminapi.Account, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return adminapi.Account{}, err
	}
	e, err := ss.one(addr)
	if err != nil {
		return adminapi.Account{}, err
	}
	name := ss.InstanceOf(e.MailHost)
	if name == "" {
		return adminapi.Account{}, fmt.Errorf("%s: mailHost %q names no instance of the topology", addr, e.MailHost)
	}
	inst := ss.Instances[name]
	cur, err := inst.Account(ctx, addr)
	if err != nil {
		return adminapi.Account{}, err
	}
	return inst.SetQuota(ctx, addr, adminapi.Quota{MaxBytes: maxBytes, MaxMessages: cur.Quota.MaxMessages})
}

// Remove stops routing (deletes every entry of the address), then removes
// the mailbox from every instance that has one.
func (ss *Session) Remove(ctx context.Context, address string) ([]string, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return nil, err
	}
	es, err := ss.Conn.Find(addr)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, e := range es {
		if err := ss.Conn.Delete(e.DN); err != nil {
			return done, err
		}
		done = append(done, "directory entry "+e.DN)
	}
	var errs []error
	for _, name := range ss.Names {
		inst := ss.Instances[name]
		if _, err := inst.Account(ctx, addr); errors.Is(err, adminapi.ErrNotFound) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := inst.DeleteAccount(ctx, addr); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, "mailbox on "+name)
	}
	if len(errs) > 0 {
		return done, fmt.Errorf("%s: %w; the account no longer routes, and `mailfleet account check -fix` removes what is left once the instance answers", addr, errors.Join(errs...))
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("%s: %w", addr, ErrNoAccount)
	}
	return done, nil
}

// Account is an account as both places see it.
type Account struct {
	Address  string            `json:"address"`
	DN       string            `json:"dn,omitempty"`
	MailHost string            `json:"mail_host,omitempty"`
	Instance string            `json:"instance,omitempty"`
	Mailbox  *adminapi.Account `json:"mailbox,omitempty"`
	Problem  string            `json:"problem,omitempty"`
}

// Show describes one account.
func (ss *Session) Show(ctx context.Context, address string) (Account, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return Account{}, err
	}
	es, err := ss.Conn.Find(addr)
	if err != nil {
		return Account{}, err
	}
	a := Account{Address: addr}
	if len(es) > 1 {
		a.Problem = fmt.Sprintf("%d directory entries", len(es))
	}
	if len(es) > 0 {
		a.DN, a.MailHost = es[0].DN, es[0].MailHost
		a.Instance = ss.InstanceOf(a.MailHost)
		if a.Instance == "" {
			a.Problem = "mailHost names no instance"
		}
	}
	for _, name := range ss.Names {
		mb, err := ss.Instances[name].Account(ctx, addr)
		if errors.Is(err, adminapi.ErrNotFound) {
			continue
		}
		if err != nil {
			return a, err
		}
		if name == a.Instance || a.Instance == "" && a.Mailbox == nil {
			m := mb
			a.Mailbox = &m
			if a.DN == "" {
				a.Instance = name
				a.Problem = "mailbox without directory entry"
			}
		}
	}
	if a.DN == "" && a.Mailbox == nil {
		return a, fmt.Errorf("%s: %w", addr, ErrNoAccount)
	}
	if a.DN != "" && a.Instance != "" && a.Mailbox == nil && a.Problem == "" {
		a.Problem = "no mailbox on " + a.Instance
	}
	return a, nil
}
