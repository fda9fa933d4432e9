package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/mailfleet/mailfleet/remote"
	"github.com/mailfleet/mailfleet/remote/sshconn"
	"github.com/mailfleet/mailfleet/render"
	"github.com/mailfleet/mailfleet/spec/diagview"
)

// Test seams, set only by this package's tests: deployRoot prefixes every
// path on every host (remote.Options.Root); deployHook may rewrite the
// hosts before they are planned (tests replace the rendered commands,
// which would otherwise run on the test machine itself).
var (
	deployRoot func(node string) string
	deployHook func([]remote.Host)
)

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// deployFlags are the flags plan and apply share.
type deployFlags struct {
	sshFlags
	json        bool
	targets     multiFlag
	parallelism int
	timeout     time.Duration
	mailfleetd  string
}

func (d *deployFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&d.json, "json", false, "machine-readable output: one JSON object per line")
	fs.Var(&d.targets, "target", "limit to the `NODE` (repeatable)")
	fs.IntVar(&d.parallelism, "parallelism", remote.DefaultParallelism, "work on at most `N` hosts at once")
	d.sshFlags.register(fs)
	fs.DurationVar(&d.timeout, "timeout", remote.DefaultActionTimeout, "bound on each action command")
	fs.StringVar(&d.mailfleetd, "mailfleetd", "", "the mailfleetd binary `PATH` to install (default: the one next to mailfleet, else from $PATH)")
}

// deploy is one plan or apply run.
type deploy struct {
	e    *env
	cmd  string // "plan" or "apply"
	f    deployFlags
	pool *sshconn.Pool
	eng  *remote.Engine
	jmu  sync.Mutex
	// applying is set once the plan is made and approved: progress is
	// shown from then on.
	applying bool
	// noActions: apply -no-actions.
	noActions bool
}

func (d *deploy) close() {
	if d.eng != nil {
		d.eng.Close()
	}
	if d.pool != nil {
		d.pool.Close()
	}
}

// errorf reports an error, as text or a JSON diagnostic.
func (d *deploy) errorf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if d.f.json {
		d.emit("diagnostic", msg, map[string]any{"diagnostic": map[string]string{"severity": "error", "summary": msg}})
		return
	}
	fmt.Fprintf(d.e.stderr, "mailfleet %s: %s\n", d.cmd, msg)
}

// emit writes one JSON line (Terraform's machine-readable UI shape).
func (d *deploy) emit(typ, msg string, fields map[string]any) {
	m := map[string]any{"format_version": "1", "type": typ, "@message": msg,
		"@level": "info", "@timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
	for k, v := range fields {
		m[k] = v
	}
	if _, set := fields["@level"]; typ == "diagnostic" && !set {
		m["@level"] = "error"
	}
	b, _ := json.Marshal(m)
	d.jmu.Lock()
	defer d.jmu.Unlock()
	d.e.stdout.Write(append(b, '\n'))
}

func (d *deploy) connect() bool {
	p, err := d.f.pool(d.e)
	if err != nil {
		d.errorf("%v", err)
		return false
	}
	d.pool = p
	o := remote.Options{Pool: p, Parallelism: d.f.parallelism, ActionTimeout: d.f.timeout, Root: deployRoot,
		NoActions: d.noActions}
	if d.cmd == "apply" {
		o.Progress = d.progressFunc()
	}
	d.eng = remote.New(o)
	return true
}

// progressFunc shows the engine's events once the apply proper has begun
// (d.applying): reading the hosts for the plan goes unreported.
func (d *deploy) progressFunc() func(remote.Event) {
	tty := false
	if f, ok := d.e.stdout.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	var p *remote.Progress
	return func(ev remote.Event) {
		if !d.applying {
			return
		}
		if d.f.json {
			d.emit("apply_progress", ev.Node+": "+ev.Status, map[string]any{"node": ev.Node, "status": ev.Status,
				"done": ev.Done, "failed": ev.Failed})
			return
		}
		if p == nil {
			p = remote.NewProgress(d.e.stdout, tty)
		}
		p.Event(ev)
	}
}

// localBuild is a program of the local build that render asks to install:
// its bytes and their SHA-256, computed once however many hosts get it.
type localBuild struct {
	content []byte
	sum     string
}

func newLocalBuild(b []byte) localBuild {
	s := sha256.Sum256(b)
	return localBuild{content: b, sum: hex.EncodeToString(s[:])}
}

// hostsFromRender converts render's hosts (minus the workstation
// pseudo-host) into remote's: files, binaries (from bins, by Name), setup
// commands, packages and how to reach each host.
func hostsFromRender(out *render.Output, bins map[string]localBuild) ([]remote.Host, error) {
	var hs []remote.Host
	for _, h := range out.Hosts {
		if h.Node == render.WorkstationHost {
			continue
		}
		t, err := hostTarget(h)
		if err != nil {
			return nil, err
		}
		rh := remote.Host{Node: h.Node, Target: t, Packages: h.Packages, Setup: h.Setup}
		for _, f := range h.Files {
			rh.Files = append(rh.Files, remote.File{Path: f.Path, Mode: f.Mode, Owner: f.Owner, Group: f.Group,
				Content: f.Content, Sensitive: f.Sensitive, Actions: actionsOf(f.Actions)})
		}
		for _, b := range h.Binaries {
			lb, ok := bins[b.Name]
			if !ok {
				return nil, fmt.Errorf("%s: no local build of %q for %s", h.Node, b.Name, b.Path)
			}
			rh.Files = append(rh.Files, remote.File{Path: b.Path, Mode: b.Mode, Content: lb.content, Sum: lb.sum,
				Actions: actionsOf(b.Actions)})
		}
		hs = append(hs, rh)
	}
	return hs, nil
}

func actionsOf(as []*render.Action) []*remote.Action {
	var out []*remote.Action
	for _, a := range as {
		out = append(out, &remote.Action{Name: a.Name, Command: a.Command, Order: a.Order})
	}
	return out
}

// binaryNames lists the programs the hosts need from the local build.
func binaryNames(out *render.Output, want func(string) bool) []string {
	seen := map[string]bool{}
	for _, h := range out.Hosts {
		if !want(h.Node) {
			continue
		}
		for _, b := range h.Binaries {
			seen[b.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// hostTarget is how to reach rendered host h (a node or a router): its
// address and SSH settings, through its jump hosts (nodes, as nodeTarget
// reaches them).
func hostTarget(h *render.Host) (sshconn.Target, error) {
	if h.Address == "" {
		return sshconn.Target{}, fmt.Errorf("%s: no address to reach it at", h.Node)
	}
	t := sshconn.Target{Name: h.Node, Host: h.Address, Port: h.SSH.Port, User: h.SSH.User, KeyFile: h.SSH.KeyFile}
	if h.SSH.Jump != nil {
		j, err := nodeTarget(h.SSH.Jump, 1)
		if err != nil {
			return t, fmt.Errorf("%s: %w", h.Node, err)
		}
		t.Jump = &j
	}
	return t, nil
}

// localBinary finds the local build of a program render names: for
// mailfleetd, -mailfleetd, else the file next to this executable, else
// $PATH; it must report this mailfleet's version.
func (d *deploy) localBinary(name string) ([]byte, error) {
	if name != "mailfleetd" {
		return nil, fmt.Errorf("render asks for a binary %q that mailfleet does not know", name)
	}
	p := d.f.mailfleetd
	if p == "" {
		if exe, err := os.Executable(); err == nil {
			if c := filepath.Join(filepath.Dir(exe), name); fileExists(c) {
				p = c
			}
		}
	}
	if p == "" {
		lp, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("no %s next to mailfleet nor in $PATH: build it (go build ./cmd/mailfleetd) and give -mailfleetd PATH", name)
		}
		p = lp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	outb, err := exec.CommandContext(ctx, p, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version: %w", p, err)
	}
	f := strings.Fields(string(outb))
	if len(f) != 2 || f[0] != name || f[1] != version {
		return nil, fmt.Errorf("%s reports %q, this mailfleet is version %s: install a %s of the same build (-mailfleetd PATH)",
			p, strings.TrimSpace(string(outb)), version, name)
	}
	return os.ReadFile(p)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// planned is the outcome of planning every host.
type planned struct {
	plans  []*remote.HostPlan // hosts planned without error, in node order
	failed []*remote.Result   // hosts that could not be read or planned
}

// makePlan renders the topology at path against the hosts' current files
// and plans every (targeted) host; errors are reported as they come.
func (d *deploy) makePlan(path string) (*planned, bool) {
	t, ds, src := load(d.e, path, true)
	if !d.f.json {
		diagview.Text(d.e.stderr, ds, src, d.e.color)
	}
	if t == nil {
		if d.f.json {
			d.errorf("the topology has errors (mailfleet validate %s)", path)
		}
		return nil, false
	}
	// A first render tells which hosts there are and how to reach them.
	first, err := render.Render(t, render.Options{})
	if err != nil {
		d.errorf("%v", err)
		return nil, false
	}
	want := map[string]bool{}
	for _, n := range d.f.targets {
		if first.Host(n) == nil || n == render.WorkstationHost {
			d.errorf("-target %s: no such node", n)
			return nil, false
		}
		want[n] = true
	}
	keep := func(n string) bool { return n != render.WorkstationHost && (len(want) == 0 || want[n]) }
	if len(want) > 0 {
		d.warnTarget()
	}
	bins := map[string]localBuild{}
	for _, n := range binaryNames(first, keep) {
		b, err := d.localBinary(n)
		if err != nil {
			d.errorf("%v", err)
			return nil, false
		}
		bins[n] = newLocalBuild(b)
	}
	all, err := hostsFromRender(first, bins)
	if err != nil {
		d.errorf("%v", err)
		return nil, false
	}
	var targets []sshconn.Target
	for _, h := range all {
		if keep(h.Node) {
			targets = append(targets, h.Target)
		}
	}
	if !d.connect() {
		return nil, false
	}
	// Read first, then render with the files read, then plan.
	states := d.eng.Read(context.Background(), targets)
	byNode := map[string]*remote.HostState{}
	for _, s := range states {
		byNode[s.Node] = s
	}
	out, err := render.Render(t, render.Options{Current: func(node, p string) ([]byte, bool) {
		return byNode[node].Current(p)
	}})
	if err != nil {
		d.errorf("%v", err)
		return nil, false
	}
	all, err = hostsFromRender(out, bins)
	if err != nil {
		d.errorf("%v", err)
		return nil, false
	}
	var hosts []remote.Host
	for _, h := range all {
		if keep(h.Node) {
			hosts = append(hosts, h)
		}
	}
	if deployHook != nil {
		deployHook(hosts)
	}
	res := &planned{}
	plans := make([]*remote.HostPlan, len(hosts))
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, max(1, d.f.parallelism))
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			s := byNode[hosts[i].Node]
			if s == nil {
				errs[i] = fmt.Errorf("%s: not read", hosts[i].Node)
				return
			}
			plans[i], errs[i] = d.eng.Plan(context.Background(), s, hosts[i])
		}(i)
	}
	wg.Wait()
	for i, h := range hosts {
		if errs[i] != nil {
			msg := errs[i].Error()
			if !strings.HasPrefix(msg, h.Node+":") {
				msg = h.Node + ": " + msg
			}
			d.errorf("%s", msg)
			res.failed = append(res.failed, &remote.Result{Node: h.Node, Changed: true, Err: errors.New(msg)})
			continue
		}
		res.plans = append(res.plans, plans[i])
	}
	return res, true
}

func (d *deploy) warnTarget() {
	const msg = `Warning: Resource targeting is in effect

You are working on only part of the site with -target: the result may not
represent all of the changes the topology asks for, and hosts that depend
on each other may be left out of step. Use -target only to recover from
mistakes or to work around a host that cannot be reached, not as a routine.`
	if d.f.json {
		d.emit("diagnostic", "Resource targeting is in effect", map[string]any{
			"@level": "warn", "diagnostic": map[string]string{"severity": "warning", "summary": "Resource targeting is in effect",
				"detail": msg}})
		return
	}
	fmt.Fprintln(d.e.stderr, msg)
	fmt.Fprintln(d.e.stderr)
}

// show prints the plans (text or JSON planned_change + change_summary).
func (d *deploy) show(plans []*remote.HostPlan, op string) {
	if !d.f.json {
		if len(plans) > 0 {
			remote.Format(d.e.stdout, plans)
		}
		return
	}
	var add, change, destroy int
	for _, hp := range plans {
		a, c, x := hp.Counts()
		add, change, destroy = add+a, change+c, destroy+x
		for _, p := range hp.Install {
			d.emit("planned_change", hp.Node+": install package "+p, map[string]any{"change": map[string]any{
				"node": hp.Node, "resource_type": "package", "name": p, "action": "create"}})
		}
		for _, c := range hp.Changes {
			if c.Kind == remote.Unchanged {
				continue
			}
			action := map[remote.Kind]string{remote.Create: "create", remote.Update: "update", remote.Delete: "delete"}[c.Kind]
			ch := map[string]any{"node": hp.Node, "resource_type": "file", "path": c.Path, "action": action,
				"sensitive": c.Sensitive}
			if len(c.Reasons) > 0 {
				ch["reasons"] = c.Reasons
			}
			if len(c.Actions) > 0 && c.Kind != remote.Delete {
				ch["triggers"] = c.Actions
			}
			d.emit("planned_change", hp.Node+": "+action+" "+c.Path, map[string]any{"change": ch})
		}
		for _, a := range hp.Pending {
			d.emit("planned_change", hp.Node+": action "+a.Name+" (pending from a failed apply)", map[string]any{
				"change": map[string]any{"node": hp.Node, "resource_type": "action", "name": a.Name, "action": "update",
					"reason": "pending"}})
		}
	}
	d.emit("change_summary", fmt.Sprintf("Plan: %d to add, %d to change, %d to destroy.", add, change, destroy),
		map[string]any{"changes": map[string]any{"add": add, "change": change, "remove": destroy, "operation": op}})
}

func anyChanges(plans []*remote.HostPlan) bool {
	for _, p := range plans {
		if p.HasChanges() {
			return true
		}
	}
	return false
}

func runPlan(e *env, args []string) int {
	fs := newFlags(e, "plan", "[flags] PATH")
	d := &deploy{e: e, cmd: "plan"}
	d.f.register(fs)
	detailed := fs.Bool("detailed-exitcode", false, "exit 0: no changes, 1: error, 2: changes")
	out := fs.String("out", "", "save the plan to `FILE` (mode 0600: it holds secrets) for apply FILE")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	defer d.close()
	p, ok := d.makePlan(path)
	if !ok {
		return 1
	}
	d.show(p.plans, "plan")
	if len(p.failed) > 0 {
		if *out != "" {
			d.errorf("plan not saved: %d host(s) could not be planned", len(p.failed))
		}
		return 1
	}
	if *out != "" {
		sp, err := remote.NewSavedPlan(version, p.plans)
		if err == nil {
			err = sp.WriteFile(*out)
		}
		if err != nil {
			d.errorf("saving the plan: %v", err)
			return 1
		}
		if !d.f.json {
			fmt.Fprintf(e.stdout, "\nSaved the plan to: %s\n\nTo perform exactly these actions, run:\n    mailfleet apply %s\n", *out, *out)
		}
	}
	if *detailed && anyChanges(p.plans) {
		return 2
	}
	return 0
}

func runApply(e *env, args []string) int {
	fs := newFlags(e, "apply", "[flags] PATH|PLANFILE")
	d := &deploy{e: e, cmd: "apply"}
	d.f.register(fs)
	auto := fs.Bool("auto-approve", false, "apply without asking")
	fs.BoolVar(&d.noActions, "no-actions", false, "write the files only; the actions they trigger stay pending for the next apply")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	defer d.close()
	var plans []*remote.HostPlan
	var failed []*remote.Result
	saved, isPlan, err := readPlanFile(path)
	if err != nil {
		d.errorf("%s: %v", path, err)
		return 1
	}
	status := 0
	if isPlan {
		if saved.Version != version {
			d.errorf("%s was made by mailfleet %s; this is %s: make the plan again", path, saved.Version, version)
			return 1
		}
		if len(d.f.targets) > 0 {
			d.errorf("-target cannot be used with a saved plan (the plan was made for its own hosts)")
			return 1
		}
		if !d.connect() {
			return 1
		}
		plans = saved.Plans()
	} else {
		if d.f.json && !*auto {
			d.errorf("-json requires -auto-approve (there is no way to ask)")
			return 1
		}
		p, ok := d.makePlan(path)
		if !ok {
			return 1
		}
		d.show(p.plans, "apply")
		if len(p.failed) > 0 {
			status = 1
		}
		plans, failed = p.plans, p.failed
		if !anyChanges(plans) {
			return status
		}
		if !*auto && !d.approve() {
			fmt.Fprintln(e.stderr, "\nApply cancelled.")
			return 1
		}
	}
	// Ctrl-C stops between steps: every file stays old or new, the lock
	// goes with the connection, and what was left pending runs next time.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d.applying = true
	results := append(d.eng.Apply(ctx, plans), failed...)
	sort.SliceStable(results, func(i, j int) bool { return results[i].Node < results[j].Node })
	for _, r := range results {
		if r.Err != nil {
			status = 1
		}
	}
	d.summary(results, isPlan)
	return status
}

func readPlanFile(path string) (*remote.SavedPlan, bool, error) {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || strings.HasSuffix(path, ".hcl") {
		return nil, false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return remote.ReadSavedPlan(f)
}

// approve asks as Terraform does; only "yes" approves.
func (d *deploy) approve() bool {
	fmt.Fprint(d.e.stdout, `
Do you want to perform these actions?
  mailfleet will perform the actions described above.
  Only 'yes' will be accepted to approve.

  Enter a value: `)
	line, err := bufio.NewReader(d.e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	fmt.Fprintln(d.e.stdout)
	return strings.TrimSpace(line) == "yes"
}

func (d *deploy) summary(results []*remote.Result, fromPlan bool) {
	var changed, failed int
	for _, r := range results {
		if r.Err != nil {
			failed++
			var se *remote.StaleError
			if fromPlan && errors.As(r.Err, &se) {
				d.errorf("Saved plan is stale: %v", se)
			}
		} else if r.Changed {
			changed++
		}
		if d.f.json {
			f := map[string]any{"node": r.Node, "changed": r.Changed, "written": r.Written, "deleted": r.Deleted,
				"actions": r.Actions, "installed": r.Installed}
			if r.Err != nil {
				f["error"] = r.Err.Error()
				d.emit("diagnostic", r.Summary(), map[string]any{"node": r.Node,
					"diagnostic": map[string]string{"severity": "error", "summary": r.Summary()}})
			}
			d.emit("apply_complete", r.Summary(), f)
		}
	}
	if d.f.json {
		return
	}
	fmt.Fprintln(d.e.stdout)
	for _, r := range results {
		fmt.Fprintln(d.e.stdout, r.Summary())
	}
	if failed > 0 {
		fmt.Fprintf(d.e.stdout, "\nApply failed on %d of %d host(s); %d changed. Run apply again once the cause is fixed: it goes on from where it stopped.\n",
			failed, len(results), changed)
		return
	}
	fmt.Fprintf(d.e.stdout, "\nApply complete! %d host(s) changed.\n", changed)
}
