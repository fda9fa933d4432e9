package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/remote/sftp"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

// Defaults of Options.
const (
	DefaultParallelism   = 10
	DefaultActionTimeout = 10 * time.Minute
	// DefaultSetupTimeout bounds the setup commands and the package
	// installation of one host.
	DefaultSetupTimeout = 30 * time.Minute
)

// Options configure an Engine.
type Options struct {
	// Pool connects to the hosts. Required.
	Pool *sshconn.Pool
	// Root, if set, returns a directory prepended to every path
	// mailfleet reads or writes on the node (files, manifest, pending
	// actions, lock); for tests, which run many "hosts" on one machine.
	// nil in real use. Commands are not changed.
	Root func(node string) string
	// Parallelism is how many hosts are worked on at once;
	// DefaultParallelism if zero.
	Parallelism int
	// ActionTimeout bounds each action command; DefaultActionTimeout if
	// zero.
	ActionTimeout time.Duration
	// SetupTimeout bounds the setup commands and package installation of a
	// host; DefaultSetupTimeout if zero.
	SetupTimeout time.Duration
	// Progress, if set, is told what each host is doing. It is called from
	// many goroutines, never at once.
	Progress func(Event)
	// NoActions writes files only: the actions they trigger are recorded
	// as pending, not run, and the next apply without NoActions runs them.
	// A host whose only change is pending actions is left alone.
	NoActions bool
}

// Event is one step of one host, for progress displays.
type Event struct {
	Node   string
	Status string // "locking", "writing 3 files", "action restart x", "done", "FAILED: …"
	Done   bool   // the host is finished (Status says how)
	Failed bool
}

// Engine plans and applies host file sets over SSH.
type Engine struct {
	o    Options
	pmu  sync.Mutex
	hmu  sync.Mutex
	sftp map[string]*sftp.Host
}

// New returns an engine.
func New(o Options) *Engine {
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = DefaultActionTimeout
	}
	if o.SetupTimeout <= 0 {
		o.SetupTimeout = DefaultSetupTimeout
	}
	return &Engine{o: o, sftp: map[string]*sftp.Host{}}
}

// Close ends the SFTP sessions (the pool's connections are the caller's).
func (e *Engine) Close() {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	for k, h := range e.sftp {
		h.Close()
		delete(e.sftp, k)
	}
}

func (e *Engine) progress(node, status string) {
	if e.o.Progress == nil {
		return
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	e.o.Progress(Event{Node: node, Status: status})
}

func (e *Engine) finish(node string, err error) {
	if e.o.Progress == nil {
		return
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	if err != nil {
		e.o.Progress(Event{Node: node, Status: "FAILED: " + err.Error(), Done: true, Failed: true})
	} else {
		e.o.Progress(Event{Node: node, Status: "done", Done: true})
	}
}

// host returns an SFTP session to t, opening it (and the connection) if
// needed; a session whose connection dropped is replaced.
func (e *Engine) host(ctx context.Context, t sshconn.Target) (*sftp.Host, error) {
	c, err := e.o.Pool.Client(ctx, t)
	if err != nil {
		return nil, err
	}
	name := t.Name
	if name == "" {
		name = t.Host
	}
	e.hmu.Lock()
	defer e.hmu.Unlock()
	if h := e.sftp[name]; h != nil && h.Client() == c {
		return h, nil
	} else if h != nil {
		h.Close()
	}
	h, err := sftp.Open(name, c)
	if err != nil {
		return nil, err
	}
	e.sftp[name] = h
	return h, nil
}

func (e *Engine) root(node string) string {
	if e.o.Root == nil {
		return ""
	}
	return e.o.Root(node)
}

// parallel runs f for every index, at most Parallelism at once.
func (e *Engine) parallel(n int, f func(i int)) {
	sem := make(chan struct{}, e.o.Parallelism)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}(i)
	}
	wg.Wait()
}

// Read connects to every target (in parallel) and reads what a plan and
// render need: the manifest, the pending actions, and every managed file
// up to LargeFile. Target.Name is the node. Unreachable hosts come back
// with Err set.
func (e *Engine) Read(ctx context.Context, targets []sshconn.Target) []*HostState {
	out := make([]*HostState, len(targets))
	e.parallel(len(targets), func(i int) {
		t := targets[i]
		s := &HostState{Node: t.Name, Target: t}
		out[i] = s
		e.progress(t.Name, "reading")
		h, err := e.host(ctx, t)
		if err != nil {
			s.Err = err
			return
		}
		s.v = newView(h, e.root(t.Name))
		m, _, err := readManifest(s.v, t.Name)
		if err != nil {
			s.Err = err
			return
		}
		if _, err := readPending(s.v, t.Name); err != nil {
			s.Err = err
			return
		}
		for _, f := range m.Files {
			i, ok, err := s.v.Stat(f.Path)
			if err != nil {
				s.Err = err
				return
			}
			if ok && i.Mode.IsRegular() && i.Size <= LargeFile {
				if _, _, err := s.v.ReadFile(f.Path); err != nil {
					s.Err = err
					return
				}
			}
		}
	})
	return out
}

// Plan compares h with the host as s read it (and reads what it still
// needs): files, pending actions still known to h, packages missing
// (dpkg-query). It changes nothing.
func (e *Engine) Plan(ctx context.Context, s *HostState, h Host) (*HostPlan, error) {
	if s.Err != nil {
		return nil, s.Err
	}
	hp, err := e.plan(ctx, s.v, h)
	if err != nil {
		return nil, err
	}
	hp.Read = s.v.fingerprint()
	return hp, nil
}

func (e *Engine) plan(ctx context.Context, v *view, h Host) (*HostPlan, error) {
	hp, err := PlanHost(h.Node, v, h.Files, ManifestPath)
	if err != nil {
		return nil, err
	}
	hc := h
	hp.Host = &hc
	pend, err := readPending(v, h.Node)
	if err != nil {
		return nil, err
	}
	known := desiredActions(h.Files)
	seen := map[string]bool{}
	for _, a := range pend {
		if d, ok := known[a.Name]; ok && !seen[a.Name] {
			seen[a.Name] = true
			hp.Pending = append(hp.Pending, d)
		}
	}
	if len(h.Packages) > 0 {
		hp.Install, err = e.missingPackages(ctx, v.h, h.Node, h.Packages)
		if err != nil {
			return nil, err
		}
	}
	return hp, nil
}

func desiredActions(files []File) map[string]*Action {
	m := map[string]*Action{}
	for _, f := range files {
		for _, a := range f.Actions {
			if _, ok := m[a.Name]; !ok {
				m[a.Name] = a
			}
		}
	}
	return m
}

// missingPackages asks dpkg-query which of pkgs are not installed.
func (e *Engine) missingPackages(ctx context.Context, h *sftp.Host, node string, pkgs []string) ([]string, error) {
	q := make([]string, len(pkgs))
	for i, p := range pkgs {
		q[i] = sftp.Quote(p)
	}
	cmd := "command -v dpkg-query >/dev/null 2>&1 || exit 127; timeout 120 dpkg-query -W -f=" + sftp.Quote(DpkgQueryFormat) + " " +
		strings.Join(q, " ") + " 2>/dev/null; exit 0"
	r, err := h.Run(ctx, cmd, nil)
	if err != nil {
		return nil, err
	}
	if r.ExitStatus == 127 {
		return nil, fmt.Errorf("%s: not a Debian system (no dpkg-query); install these packages by other means: %s",
			node, strings.Join(pkgs, " "))
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%s: dpkg-query: %w", node, err)
	}
	return MissingPackages(r.Stdout, pkgs), nil
}

// DpkgQueryFormat is the dpkg-query -f format MissingPackages reads.
const DpkgQueryFormat = "${Package}\t${db:Status-Status}\n"

// MissingPackages returns, sorted, those of pkgs that out, the output of
// dpkg-query -W -f DpkgQueryFormat, does not show installed (a package
// with an architecture, name:arch, counts for its name too).
func MissingPackages(out []byte, pkgs []string) []string {
	installed := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		name, status, ok := strings.Cut(l, "\t")
		if ok && status == "installed" {
			installed[name] = true
			if n, _, ok := strings.Cut(name, ":"); ok {
				installed[n] = true
			}
		}
	}
	var missing []string
	for _, p := range pkgs {
		if n, _, _ := strings.Cut(p, ":"); !installed[p] && !installed[n] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	return missing
}

// StaleError says a host's state is not what its plan saw.
type StaleError struct {
	Node  string
	Paths []string // what changed
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("host %s changed since the plan was made (%s)", e.Node, strings.Join(e.Paths, ", "))
}

// Result is what an apply did on one host.
type Result struct {
	Node      string
	Changed   bool // there was something to do
	Installed []string
	Written   int
	Deleted   int
	Actions   []string // run, in order
	// Deferred are the actions left pending by NoActions.
	Deferred []string
	Err      error
}

// Summary is one line: "proxy1: 3 files written, 1 deleted, actions:
// restart x" or "ldapnode: FAILED: …".
func (r *Result) Summary() string {
	var parts []string
	if len(r.Installed) > 0 {
		parts = append(parts, "installed "+strings.Join(r.Installed, " "))
	}
	if r.Written > 0 {
		parts = append(parts, plural(r.Written, "file")+" written")
	}
	if r.Deleted > 0 {
		parts = append(parts, fmt.Sprintf("%d deleted", r.Deleted))
	}
	if len(r.Actions) > 0 {
		parts = append(parts, "actions: "+strings.Join(r.Actions, ", "))
	}
	if len(r.Deferred) > 0 {
		parts = append(parts, "actions left pending: "+strings.Join(r.Deferred, ", "))
	}
	s := strings.Join(parts, ", ")
	if r.Err != nil {
		if s != "" {
			s += "; "
		}
		return r.Node + ": " + s + "FAILED: " + r.Err.Error()
	}
	if !r.Changed {
		return r.Node + ": no changes"
	}
	if s == "" {
		s = "manifest updated"
	}
	return r.Node + ": " + s
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// applying is one host during an apply.
type applying struct {
	plan    *HostPlan
	res     *Result
	h       *sftp.Host
	v       *view
	release func()
	actions []*Action // to run, sorted by Order then Name
	pending []*Action // still recorded in PendingPath
}

// Apply applies the plans: every host with changes (in parallel) takes
// its lock and checks that its state is still what its plan read (if any
// host's is not, nothing is applied anywhere and every such host fails
// with a *StaleError); then each installs missing packages, runs its setup
// commands, records the actions to run as pending, writes the changed
// files, deletes the files no longer wanted and writes the manifest last.
// Then the actions of the changed files (and those left pending) run in
// phases by Order across all hosts: every host's lowest-order actions, a
// wait for all, the next order… A host that failed leaves the later
// phases; the others go on. Results are in the order of plans.
func (e *Engine) Apply(ctx context.Context, plans []*HostPlan) []*Result {
	hs := make([]*applying, len(plans))
	results := make([]*Result, len(plans))
	var work []*applying
	for i, p := range plans {
		changed := p.HasChanges()
		if e.o.NoActions && changed && p.onlyPending() {
			changed = false
		}
		results[i] = &Result{Node: p.Node, Changed: changed}
		hs[i] = &applying{plan: p, res: results[i]}
		if results[i].Changed {
			work = append(work, hs[i])
		} else if e.o.Progress != nil {
			e.pmu.Lock()
			e.o.Progress(Event{Node: p.Node, Status: "no changes", Done: true})
			e.pmu.Unlock()
		}
	}
	defer func() {
		for _, a := range work {
			if a.release != nil {
				a.release()
			}
		}
	}()

	// Phase 1: lock and check.
	e.parallel(len(work), func(i int) { e.lockAndCheck(ctx, work[i]) })
	var stale bool
	for _, a := range work {
		var se *StaleError
		if errors.As(a.res.Err, &se) {
			stale = true
		}
	}
	if stale {
		for _, a := range work {
			if a.res.Err == nil {
				a.res.Err = errors.New("not applied: another host's plan is stale")
			}
			e.finish(a.plan.Node, a.res.Err)
		}
		return results
	}

	// Phase 2: packages, setup, pending actions, files, manifest.
	e.parallel(len(work), func(i int) {
		a := work[i]
		if a.res.Err != nil {
			e.finish(a.plan.Node, a.res.Err)
			return
		}
		if err := e.writeHost(ctx, a); err != nil {
			a.res.Err = err
			e.finish(a.plan.Node, err)
		}
	})

	// Phase 3: actions, by order, across hosts.
	orders := map[int]bool{}
	for _, a := range work {
		if a.res.Err == nil && !e.o.NoActions {
			for _, x := range a.actions {
				orders[x.Order] = true
			}
		}
	}
	for _, o := range slices.Sorted(maps.Keys(orders)) {
		var phase []*applying
		for _, a := range work {
			if a.res.Err == nil && hasOrder(a.actions, o) {
				phase = append(phase, a)
			}
		}
		e.parallel(len(phase), func(i int) {
			a := phase[i]
			if err := e.runActions(ctx, a, o); err != nil {
				a.res.Err = err
				e.finish(a.plan.Node, err)
			}
		})
	}
	for _, a := range work {
		if a.res.Err == nil {
			e.finish(a.plan.Node, nil)
		}
	}
	return results
}

func hasOrder(as []*Action, o int) bool {
	for _, a := range as {
		if a.Order == o {
			return true
		}
	}
	return false
}

func (e *Engine) lockAndCheck(ctx context.Context, a *applying) {
	node := a.plan.Node
	if a.plan.Host == nil {
		a.res.Err = fmt.Errorf("%s: the plan holds no desired state", node)
		return
	}
	e.progress(node, "connecting")
	h, err := e.host(ctx, a.plan.Host.Target)
	if err != nil {
		a.res.Err = err
		return
	}
	a.h = h
	e.progress(node, "locking")
	a.release, err = h.Lock(ctx, e.root(node)+LockPath)
	if err != nil {
		if errors.Is(err, sftp.ErrLocked) {
			err = fmt.Errorf("%s: another apply holds the lock %s; try again once it has finished", node, LockPath)
		}
		a.res.Err = err
		return
	}
	e.progress(node, "checking")
	a.v = newView(h, e.root(node))
	changed, err := a.v.changedSince(ctx, a.plan.Read)
	if err != nil {
		a.res.Err = err
		return
	}
	if len(changed) > 0 {
		a.res.Err = &StaleError{Node: node, Paths: changed}
	}
}

// writeHost does phase 2 on one host.
func (e *Engine) writeHost(ctx context.Context, a *applying) error {
	node, host := a.plan.Node, a.plan.Host
	if len(host.Packages) > 0 {
		e.progress(node, "checking packages")
		missing, err := e.missingPackages(ctx, a.h, node, host.Packages)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			e.progress(node, "installing "+strings.Join(missing, " "))
			q := make([]string, len(missing))
			for i, p := range missing {
				q[i] = sftp.Quote(p)
			}
			cmd := "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " + strings.Join(q, " ")
			if err := e.command(ctx, a.h, cmd, e.o.SetupTimeout, "apt-get install"); err != nil {
				return fmt.Errorf("%s: %w", node, err)
			}
			a.h.ForgetIDs()
			a.res.Installed = missing
		}
	}
	// Setup after the packages: it may use what they made (the openldap
	// user, say). One command; set -e stops at the first that fails.
	if len(host.Setup) > 0 {
		e.progress(node, "setup")
		if err := e.command(ctx, a.h, "set -e\n"+strings.Join(host.Setup, "\n"), e.o.SetupTimeout, "setup"); err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
		a.h.ForgetIDs()
	}
	// Plan again under the lock: the check above made sure the state is
	// the one the plan saw, so this is the same plan, now with fresh ids.
	hp, err := e.plan(ctx, a.v, *host)
	if err != nil {
		return err
	}
	// Actions: those still pending, then those of the changed files.
	want := map[string]*Action{}
	for _, x := range hp.Pending {
		want[x.Name] = x
	}
	var writes, deletes []FileChange
	for _, c := range hp.Changes {
		switch c.Kind {
		case Create, Update:
			writes = append(writes, c)
			for _, x := range c.File.Actions {
				if _, ok := want[x.Name]; !ok {
					want[x.Name] = x
				}
			}
		case Delete:
			deletes = append(deletes, c)
		}
	}
	for _, x := range want {
		a.actions = append(a.actions, x)
	}
	sort.Slice(a.actions, func(i, j int) bool {
		if a.actions[i].Order != a.actions[j].Order {
			return a.actions[i].Order < a.actions[j].Order
		}
		return a.actions[i].Name < a.actions[j].Name
	})
	a.pending = append([]*Action(nil), a.actions...)
	if err := e.writePending(a); err != nil {
		return err
	}
	writeOrder(writes)
	for i, c := range writes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
		e.progress(node, fmt.Sprintf("writing %d/%d files", i+1, len(writes)))
		f := c.File
		if err := a.h.NoLinks(e.root(node), f.Path); err != nil {
			return err
		}
		if err := a.h.WriteFile(e.root(node)+f.Path, f.Content, f.Mode, f.Owner, f.Group); err != nil {
			return err
		}
		a.res.Written++
	}
	for _, c := range deletes {
		e.progress(node, "deleting "+c.Path)
		if err := a.h.NoLinks(e.root(node), c.Path); err != nil {
			return err
		}
		if err := a.h.Remove(e.root(node) + c.Path); err != nil {
			return err
		}
		a.res.Deleted++
	}
	// The manifest holds the hashes of secrets too: root only.
	e.progress(node, "writing the manifest")
	nm := NewManifest(host.Files)
	if err := e.stampLarge(a, &nm, host.Files); err != nil {
		return err
	}
	m, err := json.MarshalIndent(nm, "", "  ")
	if err != nil {
		return err
	}
	if err := a.h.WriteFile(e.root(node)+ManifestPath, append(m, '\n'), 0o600, "", ""); err != nil {
		return err
	}
	if e.o.NoActions {
		for _, x := range a.actions {
			a.res.Deferred = append(a.res.Deferred, x.Name)
		}
	} else if len(a.actions) > 0 {
		e.progress(node, "waiting for the other hosts")
	}
	return nil
}

// writeOrder puts the binaries (the files with a precomputed Sum) first,
// the rest in their order: the other files may run a binary the moment they
// land (a cluster's resource agent that execs mailfleetd runs every second),
// so a new binary must be in place before what calls it.
func writeOrder(writes []FileChange) {
	sort.SliceStable(writes, func(i, j int) bool { return writes[i].File.Sum != "" && writes[j].File.Sum == "" })
}

// stampLarge records the size and time of every large file in m, as they
// are on the host now (written by this apply, or left as they were when
// they already matched), so that the next plan can skip hashing them.
func (e *Engine) stampLarge(a *applying, m *Manifest, files []File) error {
	large := map[string]bool{}
	for _, f := range files {
		if len(f.Content) > LargeFile {
			large[f.Path] = true
		}
	}
	for i := range m.Files {
		mf := &m.Files[i]
		if !large[mf.Path] {
			continue
		}
		info, ok, err := a.h.Stat(e.root(a.plan.Node) + mf.Path)
		if err != nil {
			return err
		}
		if ok {
			mf.Size, mf.MTime = info.Size, info.MTime
		}
	}
	return nil
}

// writePending records a.pending (or removes the file when empty).
func (e *Engine) writePending(a *applying) error {
	p := e.root(a.plan.Node) + PendingPath
	if len(a.pending) == 0 {
		return a.h.Remove(p)
	}
	b, err := json.MarshalIndent(Pending{FormatVersion: PendingVersion, Actions: a.pending}, "", "  ")
	if err != nil {
		return err
	}
	return a.h.WriteFile(p, append(b, '\n'), 0o600, "", "")
}

// runActions runs a's actions of order o, one after the other.
func (e *Engine) runActions(ctx context.Context, a *applying, o int) error {
	for _, x := range a.actions {
		if x.Order != o {
			continue
		}
		e.progress(a.plan.Node, "action "+x.Name)
		if err := e.command(ctx, a.h, x.Command, e.o.ActionTimeout, "action "+strconvQuote(x.Name)); err != nil {
			return fmt.Errorf("%s: %w", a.plan.Node, err)
		}
		a.res.Actions = append(a.res.Actions, x.Name)
		for i, p := range a.pending {
			if p.Name == x.Name {
				a.pending = append(a.pending[:i], a.pending[i+1:]...)
				break
			}
		}
		if err := e.writePending(a); err != nil {
			return err
		}
	}
	return nil
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// command runs script with sh -c on the host, bounded by timeout(1) (sshd
// does not pass signals on), and reports a failure with the end of its
// output.
func (e *Engine) command(ctx context.Context, h *sftp.Host, script string, d time.Duration, what string) error {
	secs := int((d + time.Second - 1) / time.Second)
	cmd := fmt.Sprintf("timeout -k 10 %d sh -c %s 2>&1", secs, sftp.Quote(script))
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	r, err := h.Run(cctx, cmd, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if r.ExitStatus == 0 && r.Signal == "" {
		return nil
	}
	out := strings.TrimSpace(string(r.Stdout) + string(r.Stderr))
	if len(out) > 2000 {
		out = "…" + out[len(out)-2000:]
	}
	switch {
	case r.ExitStatus == 124:
		return fmt.Errorf("%s: timed out after %v: %s", what, d, out)
	case r.Signal != "":
		return fmt.Errorf("%s: killed by signal %s: %s", what, r.Signal, out)
	}
	return fmt.Errorf("%s: exit status %d: %s", what, r.ExitStatus, out)
}
