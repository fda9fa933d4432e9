package provision

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/mailfleet/mailfleet/runtime/adminapi"
)

// Snapshot is both places at one moment.
type Snapshot struct {
	Entries   []Entry
	Mailboxes map[string]map[string]adminapi.Account // instance → address → mailbox
}

// Snapshot reads every entry and every instance's mailboxes.
func (ss *Session) Snapshot(ctx context.Context) (*Snapshot, error) {
	es, err := ss.Conn.All()
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Entries: es, Mailboxes: map[string]map[string]adminapi.Account{}}
	for _, name := range ss.Names {
		mbs, err := ss.Instances[name].Accounts(ctx)
		if err != nil {
			return nil, err
		}
		m := make(map[string]adminapi.Account, len(mbs))
		for _, mb := range mbs {
			m[mb.Address] = mb
		}
		snap.Mailboxes[name] = m
	}
	return snap, nil
}

// List is every account, by address: entries with their home's mailbox,
// then mailboxes without entry.
func (ss *Session) List(ctx context.Context) ([]Account, error) {
	snap, err := ss.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var out []Account
	seen := map[string]bool{}
	for _, e := range snap.Entries {
		a := Account{Address: e.Address, DN: e.DN, MailHost: e.MailHost, Instance: ss.InstanceOf(e.MailHost)}
		if seen[e.Address] {
			a.Problem = "duplicate directory entry"
		}
		seen[e.Address] = true
		if a.Instance == "" {
			a.Problem = "mailHost names no instance"
		} else if mb, ok := snap.Mailboxes[a.Instance][e.Address]; ok {
			a.Mailbox = &mb
		} else if a.Problem == "" {
			a.Problem = "no mailbox on " + a.Instance
		}
		out = append(out, a)
	}
	for _, name := range ss.Names {
		for addr, mb := range snap.Mailboxes[name] {
			if !seen[addr] {
				m := mb
				out = append(out, Account{Address: addr, Instance: name, Mailbox: &m, Problem: "mailbox without directory entry"})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, nil
}

// Problem kinds found by Check.
const (
	OrphanMailbox = "orphaned mailbox"      // a mailbox no entry routes to
	NoMailbox     = "entry without mailbox" // the mailHost instance has none
	UnknownHost   = "mailHost names no instance"
	Duplicate     = "duplicate entries"
)

// Problem is one difference between the directory and the instances.
type Problem struct {
	Kind     string `json:"kind"`
	Address  string `json:"address"`
	Instance string `json:"instance,omitempty"`
	DN       string `json:"dn,omitempty"`
	Detail   string `json:"detail"`
	Fixed    string `json:"fixed,omitempty"`     // what -fix did
	FixError string `json:"fix_error,omitempty"` // why -fix could not
}

// Check compares the directory with every instance; with fix, it repairs:
//   - duplicate entries: keeps the one whose mailHost has the mailbox (the
//     canonical DN first), deletes the others;
//   - mailHost naming no instance: points it at the one instance holding
//     the mailbox, if exactly one does;
//   - entry without mailbox: points mailHost at the instance holding the
//     mailbox if another does, else creates an empty mailbox on the home;
//   - orphaned mailbox: removes it when it holds no message (what an
//     interrupted add or rm leaves); one with mail is left for a human
//     (`account rm` removes it, `account add` adopts it).
//
// Mailboxes being moved are skipped.
func (ss *Session) Check(ctx context.Context, fix bool) ([]Problem, error) {
	snap, err := ss.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	byAddr := map[string][]Entry{}
	var addrs []string
	for _, e := range snap.Entries {
		if _, ok := byAddr[e.Address]; !ok {
			addrs = append(addrs, e.Address)
		}
		byAddr[e.Address] = append(byAddr[e.Address], e)
	}
	holders := func(addr string) []string {
		var out []string
		for _, name := range ss.Names {
			if _, ok := snap.Mailboxes[name][addr]; ok {
				out = append(out, name)
			}
		}
		return out
	}
	var probs []Problem
	routed := map[string]string{} // address → the instance its kept entry routes to
	for _, addr := range addrs {
		es := byAddr[addr]
		keep := es[0]
		if len(es) > 1 {
			// Prefer an entry whose home holds the mailbox, canonical DN first.
			best := -1
			for _, e := range es {
				ok := false
				if in := ss.InstanceOf(e.MailHost); in != "" {
					_, ok = snap.Mailboxes[in][addr]
				}
				score := 0
				if ok {
					score += 2
				}
				if e.DN == ss.Dir.DN(addr) {
					score++
				}
				if score > best {
					best, keep = score, e
				}
			}
			p := Problem{Kind: Duplicate, Address: addr, DN: keep.DN,
				Detail: fmt.Sprintf("%d entries for one address; the front-ends refuse it", len(es))}
			if fix {
				var errs []error
				for _, e := range es {
					if e.DN != keep.DN {
						if err := ss.Conn.Delete(e.DN); err != nil {
							errs = append(errs, err)
						}
					}
				}
				if err := errors.Join(errs...); err != nil {
					p.FixError = err.Error()
				} else {
					p.Fixed = "kept " + keep.DN + ", deleted the others"
				}
			}
			probs = append(probs, p)
		}
		home := ss.InstanceOf(keep.MailHost)
		hs := holders(addr)
		if home == "" {
			p := Problem{Kind: UnknownHost, Address: addr, DN: keep.DN, Detail: fmt.Sprintf("mailHost %q is no instance's FQDN", keep.MailHost)}
			if fix {
				if len(hs) == 1 {
					if err := ss.Conn.SetMailHost(keep.DN, ss.Instances[hs[0]].FQDN); err != nil {
						p.FixError = err.Error()
					} else {
						p.Fixed = "mailHost set to " + ss.Instances[hs[0]].FQDN
						home = hs[0]
					}
				} else {
					p.FixError = fmt.Sprintf("%d instances hold a mailbox for it; set its home with `account rm` and `account add -instance`", len(hs))
				}
			}
			probs = append(probs, p)
			if home == "" {
				for _, h := range hs {
					routed[addr] = h // reported above, not as an orphan too
				}
				continue
			}
		}
		routed[addr] = home
		if _, ok := snap.Mailboxes[home][addr]; !ok {
			p := Problem{Kind: NoMailbox, Address: addr, Instance: home, DN: keep.DN, Detail: "the entry routes to " + home + ", which has no mailbox for it"}
			if fix {
				if len(hs) == 1 {
					if err := ss.Conn.SetMailHost(keep.DN, ss.Instances[hs[0]].FQDN); err != nil {
						p.FixError = err.Error()
					} else {
						p.Fixed = "mailHost set to " + ss.Instances[hs[0]].FQDN + ", which holds the mailbox"
						routed[addr] = hs[0]
					}
				} else if _, err := ss.Instances[home].CreateAccount(ctx, addr); err != nil {
					p.FixError = err.Error()
				} else {
					p.Fixed = "created an empty mailbox on " + home
				}
			}
			probs = append(probs, p)
		}
	}
	for _, name := range ss.Names {
		var orphans []string
		for addr, mb := range snap.Mailboxes[name] {
			if routed[addr] != name && !mb.Moving {
				orphans = append(orphans, addr)
			}
		}
		sort.Strings(orphans)
		for _, addr := range orphans {
			mb := snap.Mailboxes[name][addr]
			p := Problem{Kind: OrphanMailbox, Address: addr, Instance: name,
				Detail: fmt.Sprintf("no directory entry routes to this mailbox (%d messages)", mb.Usage.Messages)}
			if fix {
				switch {
				case mb.Usage.Messages > 0:
					p.FixError = "it holds mail: remove it with `mailfleet account rm` or give it an entry with `mailfleet account add`"
				default:
					if err := ss.Instances[name].DeleteAccount(ctx, addr); err != nil {
						p.FixError = err.Error()
					} else {
						p.Fixed = "removed the empty mailbox"
					}
				}
			}
			probs = append(probs, p)
		}
	}
	return probs, nil
}
