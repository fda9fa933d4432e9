package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/cluster"
)

type bench struct {
	mf, self, lab  string
	faultAt        time.Time // when the last fault took effect, as its command reported it
	clientNice     int
	instance       string   // the instance under test
	mailbox        string   // the sender's recipient
	group          string   // the directory's resource group
	backends       []string // cluster nodes
	balancers      []string
	frontends      []string
	account, pass  string
	imap, smtp, ca string
	settle         time.Duration
	send           bool
	busy           int
	load           string // a command run again and again beside each run
	vip, mount     string
	log            io.Writer
}

type result struct {
	outage          time.Duration // fault to first good login
	extra           string        // case-specific note
	phases          string        // Pacemaker's timeline, from its logs
	samples, fired  int           // the two-writer check: samples taken, and with two writers
	fencedFirst     bool          // the fence came before any start of the moved resources
	acked, lost     int
	dup, perm       int
	spurious, fence int
	err             error
}

// commonFlags registers the flags of run and soak; the function it returns,
// called after parsing, completes b and sets the lab up.
func (b *bench) commonFlags(fs *flag.FlagSet) func() {
	fs.StringVar(&b.lab, "lab", "examples/lab", "the lab's topology")
	fs.IntVar(&b.clientNice, "client-nice", 0, "niceness of the prober and the sender, which stand for the users' own machines (0: they compete with the cluster for the CPU, as in the issue's measurements)")
	fs.StringVar(&b.mf, "mailfleet", "bin/mailfleet", "the mailfleet binary")
	fs.StringVar(&b.instance, "instance", "AXIGEN1", "the instance under test (made the test account's home)")
	fs.StringVar(&b.group, "directory", "ldap", "the directory's resource group")
	fs.StringVar(&b.account, "account", "failover-probe@example.com", "the prober's account (made on -instance if missing; nothing is delivered to it, so the mailbox it opens stays small)")
	fs.StringVar(&b.mailbox, "mailbox", "failover-mail@example.com", "the sender's recipient, on -instance too (made if missing): apart from the prober's, so that the mailbox the prober opens stays the same size run after run")
	backends := fs.String("backends", "ldapnode,axigenode1,axigenode2,standby", "the cluster's nodes")
	balancers := fs.String("balancers", "lb1,lb2", "the balancer pair")
	return func() {
		b.backends, b.balancers = strings.Split(*backends, ","), strings.Split(*balancers, ",")
		var err error
		if b.mf, err = filepath.Abs(b.mf); err != nil {
			fatal(err)
		}
		if b.self, err = os.Executable(); err != nil {
			fatal(err)
		}
		if b.lab, err = filepath.Abs(b.lab); err != nil {
			fatal(err)
		}
		if err := b.setup(); err != nil {
			fatal(err)
		}
	}
}

func runBench(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	b := &bench{log: os.Stderr}
	n := fs.Int("n", 1, "runs of each case")
	cases := fs.String("cases", "power,storekill,storehang,freeze,linkcut,directory,balancer,frontend,relocate", "cases to run, comma separated")
	start := b.commonFlags(fs)
	frontends := fs.String("frontends", "proxy1,proxy2", "the front-end nodes")
	fs.DurationVar(&b.settle, "settle", 5*time.Second, "quiet time before each run")
	fs.BoolVar(&b.send, "sender", true, "run the SMTP sender during each run (the no-loss check); without it only the IMAP prober loads the lab")
	fs.IntVar(&b.busy, "busy", 0, "busy loops to run beside the lab during each run (a loaded machine)")
	fs.StringVar(&b.load, "load", "", "a command run again and again beside the lab during each run, such as \"go test -count=1 ./...\" (a machine loaded by real work)")
	fs.StringVar(&b.vip, "vip", "10.0.0.201", "the instance's VIP (the two-writer check)")
	fs.StringVar(&b.mount, "mount", "/var/opt/AXIGEN1/domains", "the instance's storage mount point (the two-writer check)")
	fs.Parse(args)
	b.frontends = strings.Split(*frontends, ",")
	start()
	if b.load != "" {
		defer b.repeat(b.load)()
	}
	type row struct {
		name string
		rs   []result
	}
	var rows []row
	for _, c := range strings.Split(*cases, ",") {
		f := b.cases()[c]
		if f == nil {
			fatal(fmt.Errorf("no case %q", c))
		}
		r := row{name: c}
		for i := 0; i < *n; i++ {
			b.logf("== %s, run %d of %d", c, i+1, *n)
			res := b.measure(c, f)
			b.logf("   %s: outage %v, acked %d lost %d dup %d 5xx %d, fencing %d (spurious %d) %s %v", c,
				res.outage.Round(time.Millisecond), res.acked, res.lost, res.dup, res.perm, res.fence, res.spurious, res.extra, res.err)
			r.rs = append(r.rs, res)
		}
		rows = append(rows, r)
	}
	fmt.Printf("\n| case | runs | median | worst | acked | lost | duplicated | 5xx | spurious fencing | fenced before start | two writers (samples) | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		var ds []time.Duration
		var acked, lost, dup, perm, spurious, fenced, fencedFirst, samples, fired int
		var notes []string
		for _, x := range r.rs {
			if x.err != nil {
				notes = append(notes, "error: "+x.err.Error())
				continue
			}
			ds = append(ds, x.outage)
			acked += x.acked
			lost += x.lost
			dup += x.dup
			perm += x.perm
			spurious += x.spurious
			samples += x.samples
			fired += x.fired
			if x.fence > 0 {
				fenced++
				if x.fencedFirst {
					fencedFirst++
				}
			}
			if x.extra != "" {
				notes = append(notes, x.extra)
			}
		}
		slices.Sort(ds)
		med, worst := "-", "-"
		if len(ds) > 0 {
			med = fmt.Sprintf("%.2f s", median(ds).Seconds())
			worst = fmt.Sprintf("%.2f s", ds[len(ds)-1].Seconds())
		}
		ff := "-"
		if fenced > 0 {
			ff = fmt.Sprintf("%d/%d", fencedFirst, fenced)
		}
		fmt.Printf("| %s | %d | %s | %s | %d | %d | %d | %d | %d | %s | %d (%d) | %s |\n", r.name, len(ds), med, worst, acked, lost, dup, perm, spurious, ff, fired, samples, strings.Join(notes, "; "))
	}
}

func median(ds []time.Duration) time.Duration {
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
}

// mfRun runs mailfleet with args and returns its standard output.
// reFaultAt finds the moment a lab fault took effect in what the lab
// says ("power cut at T", "1 link(s) down at T", "frozen (n processes) at
// T") or a shell's date (the store's signal).
var reFaultAt = regexp.MustCompile(`(?:at |^fault=)(\d{4}-\d\d-\d\dT[^\s)]+)`)

func (b *bench) mfRun(args ...string) (string, error) {
	cmd := exec.Command(b.mf, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if m := reFaultAt.FindStringSubmatch(errb.String() + out.String()); m != nil {
		if at, perr := time.Parse(time.RFC3339Nano, m[1]); perr == nil {
			b.faultAt = at
		}
	}
	if err != nil {
		return out.String(), fmt.Errorf("mailfleet %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (b *bench) on(node string, argv ...string) (string, error) {
	return b.mfRun(append([]string{"lab", "exec", b.lab, node, "--"}, argv...)...)
}

func (b *bench) setup() error {
	out, err := b.mfRun("lab", "status", "-json", b.lab)
	if err != nil {
		return err
	}
	var st struct {
		Services map[string]string `json:"services"`
		CA       string            `json:"ca"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return err
	}
	b.imap, b.smtp, b.ca = st.Services["imap"], st.Services["smtp"], st.CA
	if b.imap == "" || b.smtp == "" {
		return fmt.Errorf("the lab has no imap/smtp service: %s", out)
	}
	dir, err := os.MkdirTemp("", "failover-bench")
	if err != nil {
		return err
	}
	if err := b.waitAllOnline(3 * time.Minute); err != nil {
		return err
	}
	b.pass = filepath.Join(dir, "password")
	if err := os.WriteFile(b.pass, []byte("failover-bench-pw-1\n"), 0o600); err != nil {
		return err
	}
	for _, acct := range []string{b.account, b.mailbox} {
		if err := b.ensureAccount(acct); err != nil {
			return err
		}
	}
	return nil
}

// ensureAccount makes acct on the instance under test with the bench's
// password, or sets that password.
func (b *bench) ensureAccount(acct string) error {
	topo := b.lab
	// The directory may still be starting (slapd up after the cluster
	// says so): try for a minute.
	var err2 error
	for try := 0; try < 30; try++ {
		if _, err2 = b.on("workstation", b.mf, "account", "add", acct, "-password-file", b.pass, "-instance", b.instance, "-topology", topo); err2 == nil {
			return nil
		}
		if strings.Contains(err2.Error(), "already exists") {
			_, err2 = b.on("workstation", b.mf, "account", "passwd", acct, "-password-file", b.pass, "-topology", topo)
			if err2 == nil {
				return nil
			}
		}
		time.Sleep(2 * time.Second)
	}
	return err2
}

// client is a probe or sender running in the workstation.
type client struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func (b *bench) start(kind string, args ...string) (*client, error) {
	// The clients stand for the users' machines, which are not the
	// cluster's: -client-nice runs them at a lower priority (their own
	// CPU, a TLS handshake every 25 ms, then weighs less on the cluster,
	// but their measurements lag on a busy machine); by default they
	// compete as equals.
	argv := append([]string{"lab", "exec", b.lab, "workstation", "--", "nice", "-n", strconv.Itoa(b.clientNice), b.self, kind, "-ca", b.ca}, args...)
	c := &client{cmd: exec.Command(b.mf, argv...), done: make(chan struct{})}
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = b.log
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
	}()
	return c, nil
}

func (c *client) stop() []string {
	if c.cmd == nil {
		return nil
	}
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// event is one line of a client: kind, start, end, rest.
type event struct {
	kind       string
	start, end time.Time
	rest       string
}

func parseEvents(lines []string) []event {
	var es []event
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 3 {
			continue
		}
		s, _ := strconv.ParseInt(f[1], 10, 64)
		e, _ := strconv.ParseInt(f[2], 10, 64)
		ev := event{kind: f[0], start: time.Unix(0, s), end: time.Unix(0, e)}
		if len(f) == 4 {
			ev.rest = f[3]
		}
		es = append(es, ev)
	}
	return es
}

// snapshot returns the events so far.
func (c *client) snapshot() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return parseEvents(c.lines)
}

// waitGood waits until the probe has had a good login that started after t.
func (c *client) waitGood(after time.Time, within time.Duration) (event, bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, e := range c.snapshot() {
			if e.kind == "ok" && !e.start.Before(after) {
				return e, true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return event{}, false
}

// locate returns the node where resource runs, asking every cluster node
// until one answers.
func (b *bench) locate(resource string) (string, error) {
	var last error
	for _, n := range b.backends {
		out, err := b.on(n, "crm_resource", "--quiet", "--locate", "--resource", resource)
		if err != nil {
			last = err
			continue
		}
		if f := strings.Fields(out); len(f) == 1 {
			return f[0], nil
		}
		last = fmt.Errorf("%s is not running: %q", resource, out)
	}
	return "", last
}

// otherNode is the next node of svc's failover list after the one it runs
// on, as mailfleet cluster status says.
func (b *bench) otherNode(svc string) (string, error) {
	out, err := b.mfRun("lab", "cluster", b.lab, "status", "-json")
	if err != nil {
		return "", err
	}
	var st struct {
		Services []struct {
			Name, Node string
			Failover   []string
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return "", err
	}
	for _, s := range st.Services {
		if s.Name != svc {
			continue
		}
		for i, n := range s.Failover {
			if n == s.Node {
				return s.Failover[(i+1)%len(s.Failover)], nil
			}
		}
	}
	return "", fmt.Errorf("%s runs on no node of its failover list", svc)
}

// ops is package cluster on the lab, through lab exec.
func (b *bench) ops() *cluster.Ops {
	return &cluster.Ops{Run: labRunner{b}, Site: cluster.Site{Members: b.backends, Services: []cluster.Service{
		{Name: b.instance, Daemon: b.instance + "-store"}, {Name: b.group, Daemon: b.group + "-slapd"}}}}
}

// waitAllOnline waits until every cluster node is online and the instance
// and the directory run.
func (b *bench) waitAllOnline(within time.Duration) error {
	deadline := time.Now().Add(within)
	var why string
	for time.Now().Before(deadline) {
		st, err := b.ops().Status(context.Background())
		if err == nil {
			var off []string
			for _, n := range st.Nodes {
				if n.State != "online" {
					off = append(off, n.Name+"="+n.State)
				}
			}
			for _, sv := range st.Services {
				if sv.State != "started" {
					off = append(off, sv.Name+"="+sv.State)
				}
			}
			if len(off) == 0 {
				return nil
			}
			why = strings.Join(off, " ")
		} else {
			why = err.Error()
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the cluster did not recover within %v: %s", within, why)
}

// fencesSince counts the successful fencing operations completed after t,
// from the cluster's fencing history (package cluster reads it as
// mailfleet cluster status does).
func (b *bench) fencesSince(t time.Time) int {
	st, err := b.ops().Status(context.Background())
	if err != nil {
		return -1
	}
	n := 0
	for _, f := range st.Fencing {
		if f.Status == "success" && f.Completed.After(t.Add(-time.Second)) {
			n++
		}
	}
	return n
}

// labRunner runs a command on a lab node through mailfleet lab exec.
type labRunner struct{ b *bench }

func (r labRunner) Run(ctx context.Context, node string, argv ...string) ([]byte, error) {
	out, err := r.b.on(node, argv...)
	return []byte(out), err
}

// timeline reads Pacemaker's logs on every cluster node for what happened
// after t0 to node (the one that held the instance): lost, fencing asked
// and done, the instance's first start asked, its store started; each as
// seconds after t0. It reports whether the fence came before every start.
func (b *bench) timeline(t0 time.Time, node, service, daemon string) (string, bool) {
	pat := `state is now lost|Requesting fencing|Operation '[a-z]*' targeting|Initiating start operation|Result of start operation for ` + daemon
	type ev struct {
		at   time.Time
		what string
	}
	var evs []ev
	for _, n := range b.backends {
		out, err := b.on(n, "grep", "-hE", pat, "/var/log/pacemaker/pacemaker.log")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(out, "\n") {
			if len(l) < 22 {
				continue
			}
			at, err := time.ParseInLocation("Jan 02 15:04:05.000", l[:19], time.UTC)
			if err != nil {
				continue
			}
			at = at.AddDate(t0.UTC().Year(), 0, 0)
			if at.Before(t0) || at.After(t0.Add(2*time.Minute)) {
				continue
			}
			evs = append(evs, ev{at, l})
		}
	}
	slices.SortFunc(evs, func(a, b ev) int { return a.at.Compare(b.at) })
	first := map[string]time.Time{}
	note := func(key string, at time.Time) {
		if _, ok := first[key]; !ok {
			first[key] = at
		}
	}
	for _, e := range evs {
		switch {
		case strings.Contains(e.what, "Node "+node+" state is now lost"):
			note("lost", e.at)
		case strings.Contains(e.what, "Requesting fencing") && strings.Contains(e.what, "of node "+node):
			note("fence asked", e.at)
		case strings.Contains(e.what, "targeting "+node) && strings.Contains(e.what, ": OK"):
			note("fenced", e.at)
		case strings.Contains(e.what, "Initiating start operation "+service+"-"):
			note("starts", e.at)
		case strings.Contains(e.what, "Result of start operation for "+daemon) && strings.Contains(e.what, ": ok"):
			note("daemon started", e.at)
		}
	}
	var parts []string
	for _, k := range []string{"lost", "fence asked", "fenced", "starts", "daemon started"} {
		if at, ok := first[k]; ok {
			parts = append(parts, fmt.Sprintf("%s +%.2f", k, at.Sub(t0).Seconds()))
		}
	}
	fenced, fok := first["fenced"]
	starts, sok := first["starts"]
	// The DC logs the fence's result and the starts it allows in one
	// millisecond: a start at the fence's time is after it.
	return strings.Join(parts, ", "), fok && sok && !starts.Before(fenced)
}

// fault injects one failure and returns what to undo afterwards, and the
// number of fencing operations it should cause.
type fault func(b *bench) (restore func() error, fences int, err error)

func (b *bench) cases() map[string]fault {
	return map[string]fault{
		"power":     func(b *bench) (func() error, int, error) { return b.powerOff(b.instance) },
		"directory": func(b *bench) (func() error, int, error) { return b.powerOff(b.group) },
		"storekill": func(b *bench) (func() error, int, error) { return b.signalStore("KILL") },
		"storehang": func(b *bench) (func() error, int, error) { return b.signalStore("STOP") },
		"freeze": func(b *bench) (func() error, int, error) {
			node, err := b.locate(b.instance)
			if err != nil {
				return nil, 0, err
			}
			_, err = b.mfRun("lab", "freeze", b.lab, node)
			return func() error { b.mfRun("lab", "thaw", b.lab, node); return nil }, 1, err
		},
		"linkcut": func(b *bench) (func() error, int, error) {
			node, err := b.locate(b.instance)
			if err != nil {
				return nil, 0, err
			}
			_, err = b.mfRun("lab", "link", "down", b.lab, node)
			return func() error { _, err := b.mfRun("lab", "link", "up", b.lab, node); return err }, 1, err
		},
		"balancer": func(b *bench) (func() error, int, error) {
			node, err := b.vipHolder()
			if err != nil {
				return nil, 0, err
			}
			_, err = b.mfRun("lab", "power", "off", b.lab, node)
			return func() error { _, err := b.mfRun("lab", "power", "on", b.lab, node); return err }, 0, err
		},
		"relocate": func(b *bench) (func() error, int, error) {
			to, err := b.otherNode(b.instance)
			if err != nil {
				return nil, 0, err
			}
			_, err = b.mfRun("lab", "cluster", b.lab, "relocate", b.instance, "-to", to)
			return nil, 0, err
		},
		"frontend": func(b *bench) (func() error, int, error) {
			node := b.frontends[0]
			_, err := b.mfRun("lab", "power", "off", b.lab, node)
			return func() error { _, err := b.mfRun("lab", "power", "on", b.lab, node); return err }, 0, err
		},
	}
}

func (b *bench) powerOff(resource string) (func() error, int, error) {
	node, err := b.locate(resource)
	if err != nil {
		return nil, 0, err
	}
	_, err = b.mfRun("lab", "power", "off", b.lab, node)
	// The cluster fences the node (a reboot through the switch): it comes
	// back after the lab's boot time.
	return func() error { return nil }, 1, err
}

func (b *bench) signalStore(sig string) (func() error, int, error) {
	node, err := b.locate(b.instance)
	if err != nil {
		return nil, 0, err
	}
	pidfile := "/run/mailfleet-store-" + b.instance + "-store.pid"
	_, err = b.on(node, "sh", "-c", "pid=$(cat "+pidfile+"); echo fault=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ); kill -"+sig+" $pid")
	return func() error { return nil }, 0, err
}

// vipHolder is the balancer holding the IMAP VIP.
func (b *bench) vipHolder() (string, error) {
	vip := b.imap[:strings.LastIndex(b.imap, ":")]
	for _, n := range b.balancers {
		out, err := b.on(n, "ip", "-o", "-4", "addr", "show")
		if err == nil && strings.Contains(out, " "+vip+"/") {
			return n, nil
		}
	}
	return "", fmt.Errorf("no balancer holds %s", vip)
}

// measure runs one case: steady service, the fault, the wait for service,
// the restore, the mailbox count.
func (b *bench) measure(name string, f fault) (res result) {
	if err := b.waitAllOnline(3 * time.Minute); err != nil {
		res.err = err
		return
	}
	prefix := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	probe, err := b.start("probe", "-addr", b.imap, "-user", b.account, "-passfile", b.pass)
	if err != nil {
		res.err = err
		return
	}
	sender := &client{done: make(chan struct{})}
	close(sender.done)
	if b.send {
		if sender, err = b.start("sender", "-addr", b.smtp, "-to", b.mailbox, "-prefix", prefix); err != nil {
			probe.stop()
			res.err = err
			return
		}
	}
	for i := 0; i < b.busy; i++ {
		loop := exec.Command("sh", "-c", "while :; do :; done")
		if err := loop.Start(); err == nil {
			defer func() { loop.Process.Kill(); loop.Wait() }()
		}
	}
	if _, ok := probe.waitGood(time.Now(), 30*time.Second); !ok {
		probe.stop()
		sender.stop()
		res.err = fmt.Errorf("no good login before the fault")
		return
	}
	time.Sleep(b.settle)
	service, daemon := b.instance, b.instance+"-store"
	if name == "directory" {
		service, daemon = b.group, b.group+"-slapd"
	}
	before, _ := b.locate(service)
	writers, err := b.newTwoWriters(b.backends, b.vip, b.mount)
	if err != nil {
		probe.stop()
		sender.stop()
		res.err = err
		return
	}
	writers.start()
	// The outage counts from the moment the fault took effect, as the
	// lab reports it (the links cut, the first process stopped, the
	// signal sent), not from the start of the command that injects it.
	start := time.Now()
	b.faultAt = time.Time{}
	restore, wantFences, err := f(b)
	injected := time.Now()
	t0 := start
	if b.faultAt.After(start) && !b.faultAt.After(injected) {
		t0 = b.faultAt
	}
	b.logf("   fault at %s (%v after the command began, which took %v), %s ran on %s", t0.Format("15:04:05.000"),
		t0.Sub(start).Round(time.Millisecond), injected.Sub(start).Round(time.Millisecond), service, before)
	if err != nil {
		writers.end()
		probe.stop()
		sender.stop()
		res.err = err
		return
	}
	good, ok := probe.waitGood(injected, 2*time.Minute)
	if !ok {
		res.err = fmt.Errorf("no good login within 2 minutes of the fault")
	}
	res.outage = good.end.Sub(t0)
	// Keep the load on a little, then restore and let the cluster settle.
	time.Sleep(3 * time.Second)
	if restore != nil {
		if err := restore(); err != nil && res.err == nil {
			res.err = err
		}
	}
	if name == "frontend" || name == "balancer" {
		// the return of the node: no interruption wanted
		time.Sleep(5 * time.Second)
	}
	var first string
	res.samples, res.fired, first = writers.end()
	if res.fired > 0 {
		b.logf("   TWO WRITERS: %d of %d samples; first %s", res.fired, res.samples, first)
	}
	probeEvents := parseEvents(probe.stop())
	sendEvents := parseEvents(sender.stop())
	if name == "frontend" {
		// the last failure after the fault, as late as it came
		var last time.Time
		for _, e := range probeEvents {
			if e.kind == "fail" && e.start.After(t0) && e.start.After(last) {
				last = e.start
			}
		}
		if !last.IsZero() {
			res.outage = last.Sub(t0)
		} else {
			res.outage = 0
		}
	}
	if name == "relocate" {
		// The window in which logins failed: from the first failure
		// after the command began to the first success after the last
		// failure (0 when none failed).
		var first, last time.Time
		for _, e := range probeEvents {
			if e.kind == "fail" && e.start.After(t0) {
				if first.IsZero() || e.start.Before(first) {
					first = e.start
				}
				if e.start.After(last) {
					last = e.start
				}
			}
		}
		res.outage = 0
		if !first.IsZero() {
			for _, e := range probeEvents {
				if e.kind == "ok" && e.start.After(last) && (res.outage == 0 || e.end.Sub(first) < res.outage) {
					res.outage = e.end.Sub(first)
				}
			}
		}
	}
	if name == "balancer" {
		fails := 0
		for _, e := range probeEvents {
			if e.kind == "fail" && e.start.After(good.end) {
				fails++
			}
		}
		res.extra = fmt.Sprintf("failed logins after recovery (the return included): %d", fails)
	}
	if err := b.waitAllOnline(3 * time.Minute); err != nil && res.err == nil {
		res.err = err
	}
	acked := map[string]bool{}
	for _, e := range sendEvents {
		switch e.kind {
		case "ack":
			acked[strings.Fields(e.rest)[0]] = true
		case "perm":
			res.perm++
		}
	}
	res.acked = len(acked)
	res.phases, res.fencedFirst = b.timeline(t0, before, service, daemon)
	if res.phases != "" {
		b.logf("   timeline: %s", res.phases)
	}
	res.fence = b.fencesSince(t0)
	if res.fence > wantFences {
		res.spurious = res.fence - wantFences
	}
	if !b.send {
		return res
	}
	out, err := b.on("workstation", b.self, "count", "-ca", b.ca, "-addr", b.imap, "-user", b.mailbox, "-passfile", b.pass, "-prefix", prefix)
	if err != nil && res.err == nil {
		res.err = err
	}
	counts := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			counts[f[0]], _ = strconv.Atoi(f[1])
		}
	}
	for id := range acked {
		switch n := counts[id]; {
		case n == 0:
			res.lost++
		case n > 1:
			res.dup += n - 1
		}
	}
	// A message delivered but not acknowledged (the answer lost with the
	// node) is no loss; a duplicate is.
	for id, n := range counts {
		if !acked[id] && n > 1 {
			res.dup += n - 1
		}
	}
	return res
}

// repeat runs cmd through sh again and again until the function it
// returns is called, which waits for the round in progress to end: a
// test suite killed halfway would leave its namespaces and mounts.
func (b *bench) repeat(cmd string) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := 1; ; round++ {
			select {
			case <-quit:
				return
			default:
			}
			out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
			if err != nil {
				b.logf("   load round %d failed: %v\n%s", round, err, failures(string(out)))
			} else {
				b.logf("   load round %d done", round)
			}
		}
	}()
	return func() {
		close(quit)
		b.logf("   waiting for the load's round in progress to end")
		<-done
	}
}

// failures is what names a failure in go test's output (the failed tests,
// the packages, panics and timeouts), else its last lines.
func failures(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "--- FAIL") || strings.HasPrefix(t, "FAIL") || strings.HasPrefix(t, "panic:") ||
			strings.Contains(t, "test timed out") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return tail(out, 15)
	}
	return strings.Join(keep, "\n")
}
