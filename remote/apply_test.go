package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/remote"
	"github.com/mailfleet/mailfleet/remote/internal/sshdtest"
	"github.com/mailfleet/mailfleet/remote/sftp"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

// fleet is several real sshd, one per node on its own 127.0.0.x, each
// node's files under its own root directory.
type fleet struct {
	t     *testing.T
	key   sshdtest.ClientKey
	srv   map[string]*sshdtest.Server
	nodes []string
	base  string // roots are base/NODE
	kh    string
	pool  *sshconn.Pool
	eng   *remote.Engine
}

// newFleet starts one sshd per node (127.0.0.first, .first+1, …) and a
// known_hosts file that knows them all.
func newFleet(t *testing.T, first int, nodes ...string) *fleet {
	t.Helper()
	f := &fleet{t: t, key: sshdtest.NewClientKey(t), srv: map[string]*sshdtest.Server{}, nodes: nodes,
		base: t.TempDir(), kh: filepath.Join(t.TempDir(), "known_hosts")}
	var kh bytes.Buffer
	for i, n := range nodes {
		s := sshdtest.Start(t, []string{f.key.Public}, sshdtest.Options{Host: fmt.Sprintf("127.0.0.%d", first+i)})
		f.srv[n] = s
		fmt.Fprintf(&kh, "[%s]:%d %s\n", s.Host, s.Port, s.HostPub)
		if err := os.MkdirAll(f.root(n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f.kh, kh.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f.engine(remote.Options{})
	return f
}

// engine replaces the engine (and pool) with one made with o.
func (f *fleet) engine(o remote.Options) {
	if f.eng != nil {
		f.eng.Close()
		f.pool.Close()
	}
	p, err := sshconn.New(sshconn.Config{KnownHosts: f.kh, NoAgent: true, Timeout: 10 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	o.Pool, o.Root = p, f.root
	f.pool, f.eng = p, remote.New(o)
	eng, pool := f.eng, f.pool
	f.t.Cleanup(func() { eng.Close(); pool.Close() })
}

func (f *fleet) root(node string) string { return filepath.Join(f.base, node) }

func (f *fleet) target(node string) sshconn.Target {
	s := f.srv[node]
	return sshconn.Target{Name: node, Host: s.Host, Port: s.Port, KeyFile: f.key.Private}
}

// path is where node's host path p is on this machine.
func (f *fleet) path(node, p string) string { return f.root(node) + p }

// plan reads and plans every host; a host error fails the test.
func (f *fleet) plan(hosts []remote.Host) []*remote.HostPlan {
	f.t.Helper()
	plans, errs := f.tryPlan(hosts)
	for _, err := range errs {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	return plans
}

func (f *fleet) tryPlan(hosts []remote.Host) ([]*remote.HostPlan, []error) {
	var ts []sshconn.Target
	for _, h := range hosts {
		ts = append(ts, h.Target)
	}
	ctx := context.Background()
	states := f.eng.Read(ctx, ts)
	plans := make([]*remote.HostPlan, len(hosts))
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		plans[i], errs[i] = f.eng.Plan(ctx, states[i], h)
	}
	return plans, errs
}

func (f *fleet) apply(hosts []remote.Host) []*remote.Result {
	f.t.Helper()
	res := f.eng.Apply(context.Background(), f.plan(hosts))
	for _, r := range res {
		f.t.Log(r.Summary())
	}
	return res
}

func format(plans []*remote.HostPlan) string {
	var b bytes.Buffer
	remote.Format(&b, plans)
	return b.String()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyConverges(t *testing.T) {
	testutil.Long(t)
	f := newFleet(t, 40, "a", "b", "c")
	marks := t.TempDir()
	hosts := func(version string, withOld bool) []remote.Host {
		var hs []remote.Host
		for _, n := range f.nodes {
			restart := &remote.Action{Name: "restart app", Order: 50,
				Command: "echo x >> " + filepath.Join(marks, n+"-restart")}
			files := []remote.File{
				{Path: "/etc/app/app.conf", Mode: 0o644, Owner: "root", Group: "root",
					Content: []byte("node " + n + "\nversion " + version + "\n"), Actions: []*remote.Action{restart}},
				{Path: "/etc/app/secret", Mode: 0o600, Content: []byte("hunter2-" + n + "\n"), Sensitive: true},
			}
			if withOld {
				files = append(files, remote.File{Path: "/etc/app/old", Mode: 0o644, Content: []byte("old\n")})
			}
			hs = append(hs, remote.Host{Node: n, Target: f.target(n), Setup: []string{"touch " + filepath.Join(marks, n+"-setup")},
				Files: files})
		}
		return hs
	}

	plans := f.plan(hosts("1", true))
	s := format(plans)
	if !strings.Contains(s, "Plan: 9 to add, 0 to change, 0 to destroy.") || strings.Contains(s, "hunter2") {
		t.Fatalf("first plan:\n%s", s)
	}
	res := f.eng.Apply(context.Background(), plans)
	for _, r := range res {
		if r.Err != nil || r.Written != 3 || len(r.Actions) != 1 {
			t.Errorf("first apply: %s", r.Summary())
		}
	}
	for _, n := range f.nodes {
		if got := readFile(t, f.path(n, "/etc/app/app.conf")); got != "node "+n+"\nversion 1\n" {
			t.Errorf("%s: app.conf %q", n, got)
		}
		if st, err := os.Stat(f.path(n, "/etc/app/secret")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: secret %v %v", n, st, err)
		}
		if _, err := os.Stat(filepath.Join(marks, n+"-setup")); err != nil {
			t.Errorf("%s: setup did not run: %v", n, err)
		}
		if _, err := os.Stat(f.path(n, remote.ManifestPath)); err != nil {
			t.Errorf("%s: no manifest: %v", n, err)
		}
		if _, err := os.Stat(f.path(n, remote.PendingPath)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: pending left: %v", n, err)
		}
	}

	// Right after: nothing to do, and apply does nothing.
	plans = f.plan(hosts("1", true))
	if s := format(plans); s != "No changes.\n" {
		t.Fatalf("second plan:\n%s", s)
	}
	os.Remove(filepath.Join(marks, "a-setup"))
	for _, r := range f.eng.Apply(context.Background(), plans) {
		if r.Changed || r.Err != nil || r.Summary() != r.Node+": no changes" {
			t.Errorf("second apply: %s", r.Summary())
		}
	}
	if _, err := os.Stat(filepath.Join(marks, "a-setup")); err == nil {
		t.Error("an apply with no changes ran setup")
	}

	// A new version, and a file no longer rendered: deleted, action once.
	plans = f.plan(hosts("2", false))
	s = format(plans)
	for _, want := range []string{"~ /etc/app/app.conf (content) then \"restart app\"", "-version 1", "+version 2",
		"- /etc/app/old", "Plan: 0 to add, 3 to change, 3 to destroy."} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q:\n%s", want, s)
		}
	}
	for _, r := range f.eng.Apply(context.Background(), plans) {
		if r.Err != nil || r.Written != 1 || r.Deleted != 1 || r.Summary() != r.Node+": 1 file written, 1 deleted, actions: restart app" {
			t.Errorf("third apply: %s", r.Summary())
		}
	}
	for _, n := range f.nodes {
		if _, err := os.Stat(f.path(n, "/etc/app/old")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: old not deleted: %v", n, err)
		}
		if got := readFile(t, filepath.Join(marks, n+"-restart")); got != "x\nx\n" {
			t.Errorf("%s: restarts %q", n, got)
		}
	}
	if s := format(f.plan(hosts("2", false))); s != "No changes.\n" {
		t.Fatalf("last plan:\n%s", s)
	}
}

// Actions run in phases by Order across hosts: every order-10 action has
// ended on every host before any order-20 action starts.
func TestApplyPhases(t *testing.T) {
	testutil.Long(t)
	f := newFleet(t, 50, "n1", "n2", "n3")
	log := filepath.Join(t.TempDir(), "log")
	var hosts []remote.Host
	for i, n := range f.nodes {
		step := func(order int, sleep string) *remote.Action {
			return &remote.Action{Name: fmt.Sprintf("step%d", order), Order: order, Command: fmt.Sprintf(
				"echo %d start %s $(date +%%s%%N) >> %s; sleep %s; echo %d end %s $(date +%%s%%N) >> %s",
				order, n, log, sleep, order, n, log)}
		}
		// n1 is slow in phase 10, n3 fast: without the barrier n3's phase
		// 20 would start long before n1's phase 10 ends.
		a10 := step(10, fmt.Sprintf("0.%d", 6-2*i))
		a20 := step(20, "0.1")
		a30 := step(30, "0")
		hosts = append(hosts, remote.Host{Node: n, Target: f.target(n), Files: []remote.File{
			{Path: "/etc/x", Mode: 0o644, Content: []byte("x\n"), Actions: []*remote.Action{a20, a10}},
			{Path: "/etc/y", Mode: 0o644, Content: []byte("y\n"), Actions: []*remote.Action{a10, a30}},
		}})
	}
	for _, r := range f.apply(hosts) {
		if r.Err != nil || strings.Join(r.Actions, ",") != "step10,step20,step30" {
			t.Errorf("%s", r.Summary())
		}
	}
	type span struct{ start, end int64 }
	phases := map[string]map[string]*span{}
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, log)), "\n") {
		var order, what, node string
		var ts int64
		fl := strings.Fields(l)
		if len(fl) != 4 {
			t.Fatalf("log line %q", l)
		}
		order, what, node = fl[0], fl[1], fl[2]
		ts, _ = strconv.ParseInt(fl[3], 10, 64)
		if phases[order] == nil {
			phases[order] = map[string]*span{}
		}
		sp := phases[order][node]
		if sp == nil {
			sp = &span{}
			phases[order][node] = sp
		}
		if what == "start" {
			sp.start = ts
		} else {
			sp.end = ts
		}
	}
	bounds := func(order string) (minStart, maxEnd int64) {
		minStart = 1 << 62
		if len(phases[order]) != 3 {
			t.Fatalf("phase %s ran on %d hosts", order, len(phases[order]))
		}
		for _, sp := range phases[order] {
			minStart = min(minStart, sp.start)
			maxEnd = max(maxEnd, sp.end)
		}
		return
	}
	_, end10 := bounds("10")
	start20, end20 := bounds("20")
	start30, _ := bounds("30")
	if end10 >= start20 || end20 >= start30 {
		t.Errorf("phases overlap: 10 ends %d, 20 runs %d..%d, 30 starts %d", end10, start20, end20, start30)
	}
}

// A host that fails half-way leaves each file old or new, the other hosts
// are applied, and the next apply converges.
func TestApplyHostFails(t *testing.T) {
	testutil.Long(t)
	f := newFleet(t, 60, "good", "bad")
	hosts := func(v string) []remote.Host {
		var hs []remote.Host
		for _, n := range f.nodes {
			hs = append(hs, remote.Host{Node: n, Target: f.target(n), Files: []remote.File{
				{Path: "/etc/a", Mode: 0o644, Content: []byte("a" + v + "\n")},
				{Path: "/etc/b", Mode: 0o644, Content: []byte("b" + v + "\n")},
				{Path: "/etc/sub/c", Mode: 0o644, Content: []byte("c" + v + "\n")},
				{Path: "/etc/z", Mode: 0o644, Content: []byte("z" + v + "\n"),
					Actions: []*remote.Action{{Name: "reload", Command: "true", Order: 50}}},
			}})
		}
		return hs
	}
	if res := f.apply(hosts("1")); res[0].Err != nil || res[1].Err != nil {
		t.Fatal("first apply failed")
	}
	// On "bad", /etc/sub becomes a file once the plan is made: writing
	// /etc/sub/c fails after /etc/a and /etc/b were written.
	plans := f.plan(hosts("2"))
	if err := os.RemoveAll(f.path("bad", "/etc/sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path("bad", "/etc/sub"), []byte("in the way\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The plan saw /etc/sub/c: the stale check refuses everything first.
	res := f.eng.Apply(context.Background(), plans)
	var se *remote.StaleError
	if !errors.As(res[1].Err, &se) || se.Node != "bad" || res[0].Err == nil || res[0].Written != 0 {
		t.Fatalf("stale: %v / %v", res[0].Summary(), res[1].Summary())
	}
	// A fresh plan (with /etc/sub/c now absent) fails half-way on bad.
	res = f.apply(hosts("2"))
	if res[0].Err != nil || res[0].Written != 4 {
		t.Errorf("good: %s", res[0].Summary())
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "/etc/sub/c") || res[1].Written != 2 {
		t.Errorf("bad: %s", res[1].Summary())
	}
	for _, p := range []string{"/etc/a", "/etc/b"} {
		if got := readFile(t, f.path("bad", p)); got != p[5:]+"2\n" {
			t.Errorf("bad %s = %q", p, got)
		}
	}
	if got := readFile(t, f.path("bad", "/etc/z")); got != "z1\n" {
		t.Errorf("bad /etc/z = %q, want the old file", got)
	}
	ents, _ := os.ReadDir(f.path("bad", "/etc"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".mailfleet-tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	// Repaired: the next apply converges, and runs the action that was
	// recorded pending.
	os.Remove(f.path("bad", "/etc/sub"))
	plans = f.plan(hosts("2"))
	if s := format(plans); !strings.Contains(s, "~ action reload (pending from a failed apply)") {
		t.Errorf("plan after failure:\n%s", s)
	}
	res = f.eng.Apply(context.Background(), plans)
	if res[1].Err != nil || res[1].Written != 2 || strings.Join(res[1].Actions, ",") != "reload" || res[0].Changed {
		t.Errorf("converge: %s / %s", res[0].Summary(), res[1].Summary())
	}
	if s := format(f.plan(hosts("2"))); s != "No changes.\n" {
		t.Errorf("after converge:\n%s", s)
	}
}

// A failed action stays pending; the next apply runs it although no file
// changed, and plan shows it.
func TestPendingAction(t *testing.T) {
	f := newFleet(t, 70, "p")
	dir := t.TempDir()
	ok, ran := filepath.Join(dir, "ok"), filepath.Join(dir, "ran")
	act := &remote.Action{Name: "start svc", Order: 50,
		Command: fmt.Sprintf("test -e %s || { echo svc refused to start; exit 3; }; echo ran >> %s", ok, ran)}
	first := &remote.Action{Name: "first", Order: 10, Command: "echo first >> " + ran}
	hosts := []remote.Host{{Node: "p", Target: f.target("p"), Files: []remote.File{
		{Path: "/etc/svc.conf", Mode: 0o644, Content: []byte("hunter2\n"), Sensitive: true, Actions: []*remote.Action{first, act}},
	}}}
	res := f.apply(hosts)
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "svc refused to start") ||
		!strings.Contains(res[0].Err.Error(), "exit status 3") || strings.Contains(res[0].Err.Error(), "hunter2") {
		t.Fatalf("failing action: %v", res[0].Err)
	}
	if strings.Join(res[0].Actions, ",") != "first" {
		t.Errorf("actions run: %v", res[0].Actions)
	}
	pend := readFile(t, f.path("p", remote.PendingPath))
	if !strings.Contains(pend, "start svc") || strings.Contains(pend, `"first"`) {
		t.Errorf("pending: %s", pend)
	}
	plans := f.plan(hosts)
	s := format(plans)
	if !strings.Contains(s, "~ action start svc (pending from a failed apply)") || !strings.Contains(s, "Plan: 0 to add, 1 to change, 0 to destroy.") {
		t.Errorf("plan:\n%s", s)
	}
	if err := os.WriteFile(ok, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res = f.eng.Apply(context.Background(), plans)
	if res[0].Err != nil || strings.Join(res[0].Actions, ",") != "start svc" || res[0].Written != 0 {
		t.Fatalf("rerun: %s", res[0].Summary())
	}
	if got := readFile(t, ran); got != "first\nran\n" {
		t.Errorf("ran: %q", got)
	}
	if _, err := os.Stat(f.path("p", remote.PendingPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending left: %v", err)
	}
	if s := format(f.plan(hosts)); s != "No changes.\n" {
		t.Errorf("after:\n%s", s)
	}
}

// An action that outlives its timeout fails, with timeout(1)'s status.
func TestActionTimeout(t *testing.T) {
	f := newFleet(t, 75, "slow")
	f.engine(remote.Options{ActionTimeout: time.Second})
	hosts := []remote.Host{{Node: "slow", Target: f.target("slow"), Files: []remote.File{
		{Path: "/etc/s", Mode: 0o644, Content: []byte("s\n"), Actions: []*remote.Action{{Name: "hang", Command: "echo going; sleep 30", Order: 1}}},
	}}}
	start := time.Now()
	res := f.apply(hosts)
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "timed out") || !strings.Contains(res[0].Err.Error(), "going") {
		t.Errorf("err: %v", res[0].Err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
}

// Two applies never interleave: a held lock fails the host, naming it.
func TestLockContention(t *testing.T) {
	f := newFleet(t, 80, "l1", "l2")
	hosts := []remote.Host{
		{Node: "l1", Target: f.target("l1"), Files: []remote.File{{Path: "/etc/l", Mode: 0o644, Content: []byte("l\n")}}},
		{Node: "l2", Target: f.target("l2"), Files: []remote.File{{Path: "/etc/l", Mode: 0o644, Content: []byte("l\n")}}},
	}
	// Another apply's lock on l1, from its own connection.
	p, err := sshconn.New(sshconn.Config{KnownHosts: f.kh, NoAgent: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := p.Client(context.Background(), f.target("l1"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sftp.Open("l1", c)
	if err != nil {
		t.Fatal(err)
	}
	release, err := other.Lock(context.Background(), f.path("l1", remote.LockPath))
	if err != nil {
		t.Fatal(err)
	}
	res := f.apply(hosts)
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), remote.LockPath) || res[0].Written != 0 {
		t.Errorf("l1: %s", res[0].Summary())
	}
	if res[1].Err != nil || res[1].Written != 1 {
		t.Errorf("l2: %s", res[1].Summary())
	}
	// A second lock from the same connection is refused just the same.
	if _, err := other.Lock(context.Background(), f.path("l1", remote.LockPath)); !errors.Is(err, sftp.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	release()
	res = f.apply(hosts)
	if res[0].Err != nil || res[0].Written != 1 {
		t.Errorf("after release: %s", res[0].Summary())
	}
}

// A saved plan applies only to the state it saw.
func TestSavedPlan(t *testing.T) {
	f := newFleet(t, 90, "s1", "s2")
	hosts := func(v string) []remote.Host {
		var hs []remote.Host
		for _, n := range f.nodes {
			hs = append(hs, remote.Host{Node: n, Target: f.target(n), Files: []remote.File{
				{Path: "/etc/s", Mode: 0o640, Content: []byte("secret " + v + "\n"), Sensitive: true,
					Actions: []*remote.Action{{Name: "reload", Command: "true", Order: 5}}},
			}})
		}
		return hs
	}
	save := func(plans []*remote.HostPlan) *remote.SavedPlan {
		sp, err := remote.NewSavedPlan("test", plans)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "plan")
		if err := sp.WriteFile(p); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("plan file mode %v", st.Mode())
		}
		r, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		back, ok, err := remote.ReadSavedPlan(r)
		if !ok || err != nil {
			t.Fatalf("read back: %v %v", ok, err)
		}
		return back
	}
	sp := save(f.plan(hosts("1")))
	// s2's file changes behind the plan's back.
	if err := os.MkdirAll(f.path("s2", "/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path("s2", "/etc/s"), []byte("by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := f.eng.Apply(context.Background(), sp.Plans())
	var se *remote.StaleError
	if !errors.As(res[1].Err, &se) || !strings.Contains(se.Error(), "host s2 changed since the plan was made") {
		t.Errorf("s2: %v", res[1].Err)
	}
	if res[0].Err == nil || res[0].Written != 0 {
		t.Errorf("s1 applied from a stale plan: %s", res[0].Summary())
	}
	if _, err := os.Stat(f.path("s1", "/etc/s")); err == nil {
		t.Error("s1 written")
	}
	// A fresh saved plan applies.
	sp = save(f.plan(hosts("1")))
	for _, r := range f.eng.Apply(context.Background(), sp.Plans()) {
		if r.Err != nil || r.Written != 1 || len(r.Actions) != 1 {
			t.Errorf("fresh saved plan: %s", r.Summary())
		}
	}
	if got := readFile(t, f.path("s2", "/etc/s")); got != "secret 1\n" {
		t.Errorf("s2 = %q", got)
	}
}

// Large files are compared by a remote sha256sum, not downloaded.
func TestLargeFile(t *testing.T) {
	f := newFleet(t, 100, "big")
	content := bytes.Repeat([]byte{0x7f, 'E', 'L', 'F', 0, 1, 2, 3}, (remote.LargeFile+1024)/8)
	hosts := func() []remote.Host {
		return []remote.Host{{Node: "big", Target: f.target("big"), Files: []remote.File{
			{Path: "/usr/local/bin/mailfleetd", Mode: 0o755, Content: content}}}}
	}
	plans := f.plan(hosts())
	if s := format(plans); !strings.Contains(s, "+ /usr/local/bin/mailfleetd\n      (binary)\n") {
		t.Errorf("create:\n%s", s)
	}
	f.eng.Apply(context.Background(), plans)
	plans = f.plan(hosts())
	if format(plans) != "No changes.\n" {
		t.Errorf("after apply:\n%s", format(plans))
	}
	var keys []string
	for k := range plans[0].Read {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// As written by apply (size and time in the manifest): neither read
	// nor hashed on the host.
	if slicesContains(keys, "sum /usr/local/bin/mailfleetd") || slicesContains(keys, "read /usr/local/bin/mailfleetd") ||
		!slicesContains(keys, "stat /usr/local/bin/mailfleetd") {
		t.Errorf("read: %v", keys)
	}
	// Changed on the host behind mailfleet's back (same size, another
	// time): hashed there, and the difference found.
	onHost := f.path("big", "/usr/local/bin/mailfleetd")
	changed := append([]byte(nil), content...)
	changed[7] ^= 1
	if err := os.WriteFile(onHost, changed, 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(5 * time.Second)
	if err := os.Chtimes(onHost, later, later); err != nil {
		t.Fatal(err)
	}
	plans = f.plan(hosts())
	if s := format(plans); !strings.Contains(s, "~ /usr/local/bin/mailfleetd (content)\n      (binary)\n") {
		t.Errorf("changed on the host:\n%s", s)
	}
	if _, ok := plans[0].Read["sum /usr/local/bin/mailfleetd"]; !ok {
		t.Errorf("a file changed on the host was not hashed: %v", plans[0].Read)
	}
	f.eng.Apply(context.Background(), plans)
	if s := format(f.plan(hosts())); s != "No changes.\n" {
		t.Errorf("after the second apply:\n%s", s)
	}
	content = append([]byte(nil), content...)
	content[100] ^= 1
	if s := format(f.plan(hosts())); !strings.Contains(s, "~ /usr/local/bin/mailfleetd (content)\n      (binary)\n") {
		t.Errorf("update:\n%s", s)
	}
}

func slicesContains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// Host keys: unknown refused unless accept-new, changed always refused.
func TestHostKeys(t *testing.T) {
	f := newFleet(t, 110, "k")
	hosts := []remote.Host{{Node: "k", Target: f.target("k"), Files: []remote.File{{Path: "/etc/k", Mode: 0o644, Content: []byte("k\n")}}}}
	try := func(kh string, acceptNew bool) error {
		p, err := sshconn.New(sshconn.Config{KnownHosts: kh, AcceptNew: acceptNew, NoAgent: true})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		e := remote.New(remote.Options{Pool: p, Root: f.root})
		defer e.Close()
		st := e.Read(context.Background(), []sshconn.Target{hosts[0].Target})
		return st[0].Err
	}
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o644)
	var hk *sshconn.HostKeyError
	if err := try(empty, false); !errors.As(err, &hk) || hk.Changed {
		t.Errorf("unknown key: %v", err)
	}
	if err := try(empty, true); err != nil {
		t.Errorf("accept-new: %v", err)
	}
	other := sshdtest.NewClientKey(t) // any other ed25519 key
	s := f.srv["k"]
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(wrong, []byte(fmt.Sprintf("[%s]:%d %s\n", s.Host, s.Port, other.Public)), 0o644)
	for _, an := range []bool{false, true} {
		if err := try(wrong, an); !errors.As(err, &hk) || !hk.Changed {
			t.Errorf("changed key (accept-new %v): %v", an, err)
		}
	}
}

// Packages are checked with dpkg-query; missing ones are planned.
func TestPackagesPlanned(t *testing.T) {
	f := newFleet(t, 120, "deb")
	hosts := []remote.Host{{Node: "deb", Target: f.target("deb"), Packages: []string{"coreutils", "mailfleet-no-such-package"}}}
	plans := f.plan(hosts)
	if got := strings.Join(plans[0].Install, ","); got != "mailfleet-no-such-package" {
		t.Errorf("install %q", got)
	}
	if s := format(plans); !strings.Contains(s, "+ package mailfleet-no-such-package") || strings.Contains(s, "package coreutils") {
		t.Errorf("plan:\n%s", s)
	}
}

// A host without dpkg-query is not a Debian system: a clear error.
func TestNotDebian(t *testing.T) {
	key := sshdtest.NewClientKey(t)
	s := sshdtest.Start(t, []string{key.Public}, sshdtest.Options{Host: "127.0.0.125", Env: []string{"PATH=/nonexistent"}})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(fmt.Sprintf("[%s]:%d %s\n", s.Host, s.Port, s.HostPub)), 0o644)
	p, err := sshconn.New(sshconn.Config{KnownHosts: kh, NoAgent: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	root := t.TempDir()
	e := remote.New(remote.Options{Pool: p, Root: func(string) string { return root }})
	defer e.Close()
	tg := sshconn.Target{Name: "alpine", Host: s.Host, Port: s.Port, KeyFile: key.Private}
	st := e.Read(context.Background(), []sshconn.Target{tg})
	_, err = e.Plan(context.Background(), st[0], remote.Host{Node: "alpine", Target: tg, Packages: []string{"slapd"}})
	if err == nil || !strings.Contains(err.Error(), "alpine: not a Debian system (no dpkg-query)") || !strings.Contains(err.Error(), "slapd") {
		t.Errorf("err: %v", err)
	}
}

// A host whose action fails leaves the later phases; the others go on,
// and its later actions stay pending.
func TestApplyFailedHostDropsOut(t *testing.T) {
	testutil.Long(t)
	f := newFleet(t, 130, "ok", "broken")
	log := filepath.Join(t.TempDir(), "log")
	var hosts []remote.Host
	for _, n := range f.nodes {
		first := &remote.Action{Name: "first", Order: 10, Command: "echo first " + n + " >> " + log}
		if n == "broken" {
			first.Command = "echo no >&2; exit 1"
		}
		second := &remote.Action{Name: "second", Order: 20, Command: "echo second " + n + " >> " + log}
		hosts = append(hosts, remote.Host{Node: n, Target: f.target(n), Files: []remote.File{
			{Path: "/etc/f", Mode: 0o644, Content: []byte("f\n"), Actions: []*remote.Action{first, second}}}})
	}
	res := f.apply(hosts)
	if res[0].Err != nil || strings.Join(res[0].Actions, ",") != "first,second" {
		t.Errorf("ok: %s", res[0].Summary())
	}
	if res[1].Err == nil || len(res[1].Actions) != 0 || !strings.Contains(res[1].Summary(), "broken: 1 file written; FAILED: ") {
		t.Errorf("broken: %s", res[1].Summary())
	}
	if got := readFile(t, log); got != "first ok\nsecond ok\n" {
		t.Errorf("log %q", got)
	}
	plans := f.plan(hosts)
	if len(plans[1].Pending) != 2 || plans[0].HasChanges() {
		t.Errorf("pending: %v / %v", plans[1].Pending, plans[0].HasChanges())
	}
}

// The apply lock goes with the connection that holds it.
func TestLockReleasedWithConnection(t *testing.T) {
	f := newFleet(t, 135, "l")
	hosts := []remote.Host{{Node: "l", Target: f.target("l"), Files: []remote.File{{Path: "/etc/l", Mode: 0o644, Content: []byte("l\n")}}}}
	p, err := sshconn.New(sshconn.Config{KnownHosts: f.kh, NoAgent: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Client(context.Background(), f.target("l"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sftp.Open("l", c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Lock(context.Background(), f.path("l", remote.LockPath)); err != nil {
		t.Fatal(err)
	}
	if res := f.apply(hosts); res[0].Err == nil {
		t.Fatal("applied under another's lock")
	}
	p.Close() // the other apply's connection drops
	var res []*remote.Result
	for i := 0; i < 50; i++ { // sshd ends the session's processes shortly after
		if res = f.apply(hosts); res[0].Err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res[0].Err != nil || res[0].Written != 1 {
		t.Errorf("after the connection dropped: %s", res[0].Summary())
	}
}

func TestProgress(t *testing.T) {
	var plain, tty bytes.Buffer
	pp, pt := remote.NewProgress(&plain, false), remote.NewProgress(&tty, true)
	for _, ev := range []remote.Event{{Node: "a", Status: "locking"}, {Node: "b", Status: "locking"},
		{Node: "a", Status: "FAILED: x\ny", Done: true, Failed: true}} {
		pp.Event(ev)
		pt.Event(ev)
	}
	if plain.String() != "a: locking\nb: locking\na: FAILED: x …\n" {
		t.Errorf("plain %q", plain.String())
	}
	// The last redraw moves up over the two lines and rewrites both.
	s := tty.String()
	last := s[strings.LastIndex(s, "\x1b[2A"):]
	if !strings.Contains(last, "a                FAILED: x …\n") || !strings.Contains(last, "b                locking\n") {
		t.Errorf("tty %q", s)
	}
}

// NoActions writes the files and leaves their actions pending; a second
// NoActions run has nothing to do; the next ordinary apply runs them.
func TestNoActions(t *testing.T) {
	f := newFleet(t, 77, "n")
	f.engine(remote.Options{NoActions: true})
	ran := filepath.Join(t.TempDir(), "ran")
	hosts := []remote.Host{{Node: "n", Target: f.target("n"), Files: []remote.File{
		{Path: "/etc/n.conf", Mode: 0o644, Content: []byte("n\n"),
			Actions: []*remote.Action{{Name: "restart n", Order: 50, Command: "echo ran >> " + ran}}},
	}}}
	res := f.apply(hosts)
	if res[0].Err != nil || res[0].Written != 1 || len(res[0].Actions) != 0 || strings.Join(res[0].Deferred, ",") != "restart n" {
		t.Fatalf("first: %s", res[0].Summary())
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("NoActions ran an action")
	}
	if got := readFile(t, f.path("n", "/etc/n.conf")); got != "n\n" {
		t.Fatalf("file: %q", got)
	}
	res = f.apply(hosts)
	if res[0].Err != nil || res[0].Changed {
		t.Fatalf("second NoActions run did something: %s", res[0].Summary())
	}
	f.engine(remote.Options{})
	res = f.apply(hosts)
	if res[0].Err != nil || strings.Join(res[0].Actions, ",") != "restart n" || res[0].Written != 0 {
		t.Fatalf("ordinary apply after NoActions: %s", res[0].Summary())
	}
	if got := readFile(t, ran); got != "ran\n" {
		t.Fatalf("ran: %q", got)
	}
}

// TestSymlinksRefused: a managed path that goes through a symbolic link
// on the host fails the plan with an error naming it, rather than showing
// (or, at apply, overwriting) the file the link leads to.
func TestSymlinksRefused(t *testing.T) {
	f := newFleet(t, 60, "a")
	elsewhere := t.TempDir()
	os.WriteFile(filepath.Join(elsewhere, "app.conf"), []byte("someone else's\n"), 0o644)
	if err := os.MkdirAll(f.path("a", "/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, f.path("a", "/etc/app")); err != nil {
		t.Fatal(err)
	}
	hosts := []remote.Host{{Node: "a", Target: f.target("a"),
		Files: []remote.File{{Path: "/etc/app/app.conf", Mode: 0o644, Content: []byte("mine\n")}}}}
	_, errs := f.tryPlan(hosts)
	if errs[0] == nil || !errors.Is(errs[0], sftp.ErrSymlink) || !strings.Contains(errs[0].Error(), "/etc/app") {
		t.Fatalf("plan through a linked directory: %v, want an ErrSymlink naming /etc/app", errs[0])
	}
	if got := readFile(t, filepath.Join(elsewhere, "app.conf")); got != "someone else's\n" {
		t.Errorf("the link's target changed: %q", got)
	}
}
