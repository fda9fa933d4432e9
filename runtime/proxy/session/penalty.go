package session

import (
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Penalty slows password guessing on one front-end node, across its
// protocols (IMAP, POP3, SMTP AUTH share one), as Dovecot's auth_penalty
// does:
//
//   - the logins of one client address are checked one at a time, so that
//     parallel connections gain nothing;
//   - a failed login is answered after Base × 2^(n−1), at most Max, where
//     n counts the recent failures of its client address or of its
//     account (any address), whichever is more; a right password is
//     answered at once, and clears its address's count;
//   - a count is forgotten Forget after its last failure.
//
// So n wrong passwords from one address, in parallel or not, take at
// least the sum of those delays, while another address logs in at once.
// The zero value (Base 0) never delays but still serializes.
type Penalty struct {
	Base, Max, Forget time.Duration
	// Penalized, if set, is told of each delay (metrics).
	Penalized func(d time.Duration)

	mu    sync.Mutex
	addrs map[netip.Addr]*penaltyEntry
	accts map[string]*penaltyEntry
}

// NewPenalty is the penalty mailfleet's front-ends use: base the first
// failure's delay (config.DefaultFailedLoginDelay), doubling up to 15 s as
// Dovecot's auth_penalty, counts forgotten after 15 minutes.
func NewPenalty(base time.Duration) *Penalty {
	return &Penalty{Base: base, Max: max(base, 15*time.Second), Forget: 15 * time.Minute}
}

type penaltyEntry struct {
	failures int
	last     time.Time
	turn     chan struct{} // one check at a time (addresses only)
	waiting  int
}

// Attempt is one login being checked: it holds its client address's turn
// until Failed, Succeeded or Release.
type Attempt struct {
	p       *Penalty
	e       *penaltyEntry
	addr    netip.Addr
	account string
	ended   bool
}

// Attempt waits for the client address's turn to check a login for
// account.
func (p *Penalty) Attempt(addr netip.Addr, account string) *Attempt {
	addr = addr.Unmap()
	p.mu.Lock()
	if p.addrs == nil {
		p.addrs, p.accts = map[netip.Addr]*penaltyEntry{}, map[string]*penaltyEntry{}
	}
	e := p.addrs[addr]
	if e == nil {
		e = &penaltyEntry{turn: make(chan struct{}, 1)}
		p.addrs[addr] = e
	}
	e.waiting++
	p.mu.Unlock()
	e.turn <- struct{}{}
	return &Attempt{p: p, e: e, addr: addr, account: strings.ToLower(account)}
}

// Failed counts the failure and waits its penalty, then gives the turn
// back: answer the client after it.
func (a *Attempt) Failed() {
	if !a.ended {
		a.p.wait(a.addr, a.account)
	}
	a.end(false)
}

// Succeeded clears the address's failures and gives the turn back.
func (a *Attempt) Succeeded() { a.end(true) }

// Release gives the turn back without counting anything (the directory
// was unavailable, say); after Failed or Succeeded it does nothing.
func (a *Attempt) Release() { a.end(false) }

func (a *Attempt) end(clear bool) {
	if a.ended {
		return
	}
	a.ended = true
	p := a.p
	p.mu.Lock()
	if clear {
		a.e.failures = 0
	}
	a.e.waiting--
	p.sweepLocked()
	p.mu.Unlock()
	<-a.e.turn
}

// wait counts a failure of addr and account and sleeps their penalty.
func (p *Penalty) wait(addr netip.Addr, account string) {
	now := time.Now()
	p.mu.Lock()
	n := 0
	for _, e := range []*penaltyEntry{p.addrs[addr], p.accountLocked(account)} {
		if e == nil {
			continue
		}
		if p.Forget > 0 && now.Sub(e.last) > p.Forget {
			e.failures = 0
		}
		e.failures++
		e.last = now
		n = max(n, e.failures)
	}
	p.mu.Unlock()
	d := p.delay(n)
	if d > 0 {
		if p.Penalized != nil {
			p.Penalized(d)
		}
		time.Sleep(d)
	}
}

func (p *Penalty) accountLocked(account string) *penaltyEntry {
	if account == "" {
		return nil
	}
	e := p.accts[account]
	if e == nil {
		e = &penaltyEntry{}
		p.accts[account] = e
	}
	return e
}

// delay is the penalty of the n-th failure.
func (p *Penalty) delay(n int) time.Duration {
	if n <= 0 || p.Base <= 0 {
		return 0
	}
	d := p.Base
	for i := 1; i < n && (p.Max <= 0 || d < p.Max); i++ {
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	return d
}

// sweepLocked forgets the entries nobody waits on whose failures are
// forgotten, so that the maps stay as small as the recent attackers.
func (p *Penalty) sweepLocked() {
	if len(p.addrs)+len(p.accts) < 1024 {
		return
	}
	now := time.Now()
	old := func(e *penaltyEntry) bool {
		return e.waiting == 0 && (e.failures == 0 || p.Forget > 0 && now.Sub(e.last) > p.Forget)
	}
	for k, e := range p.addrs {
		if old(e) {
			delete(p.addrs, k)
		}
	}
	for k, e := range p.accts {
		if old(e) {
			delete(p.accts, k)
		}
	}
}
