// Command proxy is the load generator of bench/proxy/run.sh: it starts a
// small cluster on loopback, each role its own process (slapd with the
// reference's entry shape, one `mailfleetd store`, two `mailfleetd
// frontend` nodes, one `mailfleetd balancer` in front of them), and
// measures, in one run:
//
//   - (a) an IMAP session (connect, LOGIN, SELECT INBOX, FETCH 1:10 of 10 KB
//     messages, LOGOUT) and an SMTP transaction (connect, EHLO, MAIL, RCPT,
//     10 KB DATA, QUIT) through balancer → front-end (IMAP proxy or SMTP
//     router) → store, against the same directly on the store: p50/p99
//     latency and throughput at 1 and 200 concurrent clients, and the CPU
//     time each role spends per operation;
//   - (c) the memory per idle proxied IMAP session: fresh `mailfleetd
//     frontend` processes, 10,000 sessions logged in and selected through
//     them, their resident set (/proc/PID/status VmRSS) before and after,
//     divided. A front-end holds two sockets per session: when
//     RLIMIT_NOFILE cannot be raised above twice the sessions, they are
//     spread over as many processes as it takes (two for 10,000 under a
//     hard limit of 20,000).
//
// Figures are medians of -runs rounds (after a warm-up round); within a
// round the proxied and direct runs alternate, so whatever else the machine
// does falls on both. It raises RLIMIT_NOFILE (as root) for itself and the
// processes it starts.
//
//	go build -o /tmp/mailfleetd ./cmd/mailfleetd
//	go run ./bench/proxy -bin /tmp/mailfleetd [-runs 5] [-duration 5s] [-idle 10000]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin, dir, out, profile string
	runs, idle, idleRuns   int
	idlePar                int
	duration, warmup       time.Duration
	clients                []int
	skipLoad, skipIdle     bool
}

func main() {
	var o options
	var clients string
	flag.StringVar(&o.bin, "bin", "", "the mailfleetd `binary` to run (required)")
	flag.StringVar(&o.dir, "dir", "", "work `directory` (default: a new one under /var/tmp, removed at the end)")
	flag.StringVar(&o.out, "out", "", "write every run as JSON to this `file`")
	flag.StringVar(&o.profile, "profile", "", "after the timed rounds, record the front-end processes with perf(1) during one more proxied run of each test at the most clients, into this `directory`, and print the top symbols")
	flag.IntVar(&o.runs, "runs", 5, "timed rounds")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one timed run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "length of each run of the untimed warm-up round")
	flag.StringVar(&clients, "clients", "1,200", "concurrent clients, comma-separated")
	flag.IntVar(&o.idle, "idle", 10000, "idle proxied IMAP sessions to hold")
	flag.IntVar(&o.idleRuns, "idle-runs", 3, "idle-session measurements (each with a fresh front-end process)")
	flag.IntVar(&o.idlePar, "idle-par", 32, "logins at a time while opening the idle sessions")
	flag.BoolVar(&o.skipLoad, "skip-load", false, "skip (a)")
	flag.BoolVar(&o.skipIdle, "skip-idle", false, "skip (c)")
	flag.Parse()
	for _, s := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench/proxy: bad -clients %q\n", clients)
			os.Exit(2)
		}
		o.clients = append(o.clients, n)
	}
	if o.bin == "" {
		fmt.Fprintln(os.Stderr, "bench/proxy: -bin is required")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench/proxy: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// runKey names one measurement.
type runKey struct {
	Test    string `json:"test"` // imap, smtp
	Clients int    `json:"clients"`
	Path    string `json:"path"` // proxied, direct
}

type record struct {
	runKey
	Round int `json:"round"`
	loadResult
}

type idleRecord struct {
	Sessions            int     `json:"sessions"`
	Nodes               int     `json:"frontend_processes"`
	RSSBeforeKB         int     `json:"rss_before_kb"`
	RSSAfterKB          int     `json:"rss_after_kb"`
	BytesPerSession     float64 `json:"bytes_per_session"`
	HeapPerSession      float64 `json:"heap_inuse_bytes_per_session"`
	StackPerSession     float64 `json:"stack_inuse_bytes_per_session"`
	GoroutinesPerSess   float64 `json:"goroutines_per_session"`
	FDs                 int     `json:"fds"`
	OpenSeconds         float64 `json:"open_seconds"`
	LoginsPerSecond     float64 `json:"logins_per_second"`
	GoSysBytesPerSess   float64 `json:"go_sys_bytes_per_session"`
	HeapObjectsPerSess  float64 `json:"heap_objects_per_session"`
	NoFileLimitFrontend string  `json:"nofile_limit_frontend"`
}

func run(o options) error {
	// A front-end process holds a client and a store socket per session,
	// and this process one per session: RLIMIT_NOFILE decides how many
	// front-end processes hold the idle sessions.
	limit, err := raiseNoFile(uint64(2*o.idle + 4096))
	if err != nil {
		logf("RLIMIT_NOFILE: %v", err)
	}
	idleNodes := 1
	for idleNodes < maxIdleNodes && uint64(2*o.idle/idleNodes+2048) > limit {
		idleNodes++
	}
	if !o.skipIdle && (uint64(2*o.idle/idleNodes+2048) > limit || uint64(o.idle+2048) > limit) {
		return fmt.Errorf("RLIMIT_NOFILE is %d: too low for %d idle sessions", limit, o.idle)
	}
	if idleNodes > 1 {
		logf("RLIMIT_NOFILE is %d and cannot be raised here: the %d idle sessions go to %d front-end processes", limit, o.idle, idleNodes)
	}
	removeDir := false
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("/var/tmp", "mailfleet-bench-proxy."); err != nil {
			return err
		}
		removeDir = true
	}
	header := fmt.Sprintf("bench/proxy: %d CPU, %s, %s, RLIMIT_NOFILE %d, runs %d × %v (warm-up %v), clients %v, %d idle sessions × %d, load average at start %s",
		runtime.NumCPU(), memTotal(), runtime.Version(), limit, o.runs, o.duration, o.warmup, o.clients, o.idle, o.idleRuns, loadavg())
	logf("%s", header)
	logf("starting slapd, store, 2 front-ends and the balancer in %s", o.dir)
	c, err := startCluster(o.dir, o.bin)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		c.close()
		if removeDir {
			os.RemoveAll(o.dir)
		}
		os.Exit(1)
	}()
	defer func() {
		c.close()
		if removeDir {
			os.RemoveAll(o.dir)
		}
	}()

	ioTimeout := 2 * time.Minute
	proxied := target{name: "proxied", imap: c.lbIMAP, smtp: c.lbSMTP, ioTimeout: ioTimeout}
	direct := target{name: "direct", imap: c.directAddrs["imap"], smtp: c.directAddrs["smtp"], ioTimeout: ioTimeout}
	for _, t := range []target{direct, proxied} {
		if err := fill(t, 10); err != nil {
			return fmt.Errorf("filling the mailboxes (%s): %w", t.name, err)
		}
	}

	var records []record
	var profile string
	if !o.skipLoad {
		msg := message10K(0)
		tests := map[string]func(t target) func(int) error{
			"imap": func(t target) func(int) error { return t.imapSession },
			"smtp": func(t target) func(int) error { return func(i int) error { return t.smtpTransaction(i, msg) } },
		}
		for round := 0; round <= o.runs; round++ {
			d := o.duration
			if round == 0 {
				d = o.warmup
				logf("warm-up round")
			} else {
				logf("round %d of %d (load average %s)", round, o.runs, loadavg())
			}
			for _, n := range o.clients {
				for _, test := range []string{"imap", "smtp"} {
					order := []target{direct, proxied}
					if round%2 == 0 {
						order = []target{proxied, direct}
					}
					for _, t := range order {
						before := c.cpu()
						res := runLoad(n, d, tests[test](t))
						res.CPU = sub(c.cpu(), before)
						r := record{runKey: runKey{test, n, t.name}, Round: round, loadResult: res}
						logf("  %s %3d clients %-8s %7.1f/s p50 %6.1f ms p99 %7.1f ms (%d ops, %d errors%s)", test, n, t.name,
							res.Rate, res.P50, res.P99, res.Ops, res.Errors, firstErr(res.FirstErr))
						if round > 0 {
							records = append(records, r)
						}
						time.Sleep(500 * time.Millisecond) // let the last sockets close
					}
				}
			}
		}
		if o.profile != "" {
			if profile, err = profileRuns(o, c, proxied, tests); err != nil {
				logf("profile: %v", err)
			}
		}
	}

	var idles []idleRecord
	if !o.skipIdle {
		for r := 1; r <= o.idleRuns; r++ {
			logf("idle sessions, run %d of %d", r, o.idleRuns)
			ir, err := measureIdle(c, o.idle, idleNodes, o.idlePar, r)
			if err != nil {
				return err
			}
			logf("  %d sessions on %d front-end processes: RSS %d → %d KB, %.0f bytes/session (heap %.0f, stacks %.0f, %.1f goroutines/session), %d fds, %.0f logins/s",
				ir.Sessions, ir.Nodes, ir.RSSBeforeKB, ir.RSSAfterKB, ir.BytesPerSession, ir.HeapPerSession, ir.StackPerSession,
				ir.GoroutinesPerSess, ir.FDs, ir.LoginsPerSecond)
			idles = append(idles, ir)
		}
	}

	if o.out != "" {
		b, _ := json.MarshalIndent(map[string]any{"header": header, "load": records, "idle": idles}, "", "  ")
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Println(header)
	fmt.Printf("load average at the end %s\n\n", loadavg())
	report(records, o.clients)
	reportIdle(idles)
	fmt.Print(profile)
	return nil
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return "; first: " + s
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.Atoi(f[1])
			return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return "? GiB"
}

// cpu is the CPU seconds used so far by each role and by this process.
func (c *cluster) cpu() map[string]float64 {
	out := map[string]float64{"load generator": cpuSeconds(os.Getpid())}
	for role, ps := range c.procs() {
		for _, p := range ps {
			if p != nil {
				out[role] += cpuSeconds(p.pid())
			}
		}
	}
	return out
}

func sub(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

var roles = []string{"load generator", "balancer", "front-ends", "store", "slapd"}

// report prints (a) as Markdown tables: medians of the runs, the ratios
// proxied/direct, and the CPU time per operation of each role.
func report(records []record, clients []int) {
	if len(records) == 0 {
		return
	}
	by := map[runKey][]record{}
	for _, r := range records {
		by[r.runKey] = append(by[r.runKey], r)
	}
	col := func(rs []record, f func(loadResult) float64) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r.loadResult))
		}
		return median(xs)
	}
	names := map[string]string{"imap": "IMAP session (login, select, fetch 10 × 10 KB, logout)", "smtp": "SMTP transaction (10 KB, one per connection)"}
	fmt.Println("(a) through balancer + front-end (proxied) vs directly on the store (direct); medians of the runs")
	fmt.Println()
	fmt.Println("| test | clients | direct /s | proxied /s | proxied/direct | p50 direct ms | p50 proxied ms | p50 ratio | p99 direct ms | p99 proxied ms | p99 ratio | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, test := range []string{"imap", "smtp"} {
		for _, n := range clients {
			d, p := by[runKey{test, n, "direct"}], by[runKey{test, n, "proxied"}]
			if len(d) == 0 || len(p) == 0 {
				continue
			}
			rate := func(l loadResult) float64 { return l.Rate }
			p50 := func(l loadResult) float64 { return l.P50 }
			p99 := func(l loadResult) float64 { return l.P99 }
			errs := 0
			for _, r := range append(append([]record(nil), d...), p...) {
				errs += r.Errors
			}
			fmt.Printf("| %s | %d | %.0f | %.0f | **%.2f** | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d |\n", names[test], n,
				col(d, rate), col(p, rate), col(p, rate)/col(d, rate), col(d, p50), col(p, p50), col(p, p50)/col(d, p50),
				col(d, p99), col(p, p99), col(p, p99)/col(d, p99), errs)
		}
	}
	fmt.Println()
	fmt.Println("CPU time per operation (ms; all runs' CPU time over all runs' operations; from /proc/PID/stat)")
	fmt.Println()
	fmt.Println("| test | clients | path | " + strings.Join(roles, " | ") + " | total |")
	fmt.Println("|---|---|---|" + strings.Repeat("---|", len(roles)+1))
	for _, test := range []string{"imap", "smtp"} {
		for _, n := range clients {
			for _, path := range []string{"direct", "proxied"} {
				rs := by[runKey{test, n, path}]
				if len(rs) == 0 {
					continue
				}
				ops, cpu := 0, map[string]float64{}
				for _, r := range rs {
					ops += r.Ops
					for k, v := range r.CPU {
						cpu[k] += v
					}
				}
				row := []string{test, strconv.Itoa(n), path}
				total := 0.0
				for _, role := range roles {
					v := cpu[role] * 1000 / float64(max(ops, 1))
					total += v
					row = append(row, fmt.Sprintf("%.2f", v))
				}
				row = append(row, fmt.Sprintf("%.2f", total))
				fmt.Println("| " + strings.Join(row, " | ") + " |")
			}
		}
	}
	fmt.Println()
	fmt.Println("every run (ops/s), and proxied/direct of the two runs of each round (they ran back to back):")
	for _, test := range []string{"imap", "smtp"} {
		for _, n := range clients {
			for _, path := range []string{"direct", "proxied"} {
				var s []string
				for _, r := range by[runKey{test, n, path}] {
					s = append(s, fmt.Sprintf("%.0f", r.Rate))
				}
				fmt.Printf("  %s %d clients %s: %s\n", test, n, path, strings.Join(s, " "))
			}
			d, p := by[runKey{test, n, "direct"}], by[runKey{test, n, "proxied"}]
			var ratios []float64
			var s []string
			for i := range min(len(d), len(p)) {
				ratios = append(ratios, p[i].Rate/d[i].Rate)
				s = append(s, fmt.Sprintf("%.2f", ratios[i]))
			}
			fmt.Printf("  %s %d clients proxied/direct by round: %s (median %.2f)\n", test, n, strings.Join(s, " "), median(ratios))
		}
	}
	fmt.Println()
}

func reportIdle(idles []idleRecord) {
	if len(idles) == 0 {
		return
	}
	f := func(g func(idleRecord) float64) float64 {
		var xs []float64
		for _, r := range idles {
			xs = append(xs, g(r))
		}
		return median(xs)
	}
	fmt.Printf("(c) idle proxied IMAP sessions (logged in, INBOX selected), held open at once on %d fresh `mailfleetd frontend` process(es); medians of %d runs\n\n",
		idles[0].Nodes, len(idles))
	fmt.Println("| sessions | front-end RSS before → after (KB, sum) | bytes per session (RSS) | Go heap in use / session | goroutine stacks / session | goroutines / session | fds of one front-end | logins/s while opening |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %.0f → %.0f | **%.0f** (%.1f KB) | %.0f | %.0f | %.1f | %.0f | %.0f |\n", idles[0].Sessions,
		f(func(r idleRecord) float64 { return float64(r.RSSBeforeKB) }), f(func(r idleRecord) float64 { return float64(r.RSSAfterKB) }),
		f(func(r idleRecord) float64 { return r.BytesPerSession }), f(func(r idleRecord) float64 { return r.BytesPerSession })/1024,
		f(func(r idleRecord) float64 { return r.HeapPerSession }), f(func(r idleRecord) float64 { return r.StackPerSession }),
		f(func(r idleRecord) float64 { return r.GoroutinesPerSess }), f(func(r idleRecord) float64 { return float64(r.FDs) }),
		f(func(r idleRecord) float64 { return r.LoginsPerSecond }))
	var s []string
	for _, r := range idles {
		s = append(s, fmt.Sprintf("%.0f", r.BytesPerSession))
	}
	fmt.Printf("\nevery run (bytes per session): %s\n", strings.Join(s, " "))
}

// measureIdle starts nodes fresh front-end processes, opens n idle
// sessions through them (n/nodes each) and compares their memory before
// and after; the figures are sums over the processes.
func measureIdle(c *cluster, n, nodes, par, round int) (idleRecord, error) {
	n = n / nodes * nodes
	ir := idleRecord{Sessions: n, Nodes: nodes}
	if err := c.startIdle(nodes); err != nil {
		return ir, err
	}
	defer c.stopIdle()
	ir.NoFileLimitFrontend = noFileOf(c.idle[0].pid())
	var all []net.Conn
	defer func() { closeAll(all) }()
	// Warm up each process (the directory pool, buffers, first
	// allocations).
	for i := range nodes {
		warm, err := openIdle(c.idleIMAP[i], 20, 4, 0)
		all = append(all, warm...)
		if err != nil {
			return ir, err
		}
	}
	time.Sleep(time.Second)
	rss := func() (int, error) {
		sum := 0
		for _, p := range c.idle {
			kb, err := rssKB(p.pid())
			if err != nil {
				return 0, err
			}
			sum += kb
		}
		return sum, nil
	}
	metrics := func() map[string]float64 {
		sum := map[string]float64{}
		for i := range nodes {
			for k, v := range goMetrics(c.idleAdm[i]) {
				sum[k] += v
			}
		}
		return sum
	}
	before, err := rss()
	if err != nil {
		return ir, err
	}
	mBefore := metrics()
	start := time.Now()
	for i := range nodes {
		conns, err := openIdle(c.idleIMAP[i], n/nodes, par, round*n+i*(n/nodes))
		all = append(all, conns...)
		if err != nil {
			return ir, err
		}
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second)
	after, err := rss()
	if err != nil {
		return ir, err
	}
	mAfter := metrics()
	per := func(k string) float64 { return (mAfter[k] - mBefore[k]) / float64(n) }
	for _, p := range c.idle {
		ir.FDs = max(ir.FDs, openFDs(p.pid()))
	}
	ir.RSSBeforeKB, ir.RSSAfterKB, ir.BytesPerSession = before, after, float64(after-before)*1024/float64(n)
	ir.HeapPerSession, ir.StackPerSession = per("go_memstats_heap_inuse_bytes"), per("go_memstats_stack_inuse_bytes")
	ir.GoroutinesPerSess, ir.GoSysBytesPerSess, ir.HeapObjectsPerSess = per("go_goroutines"), per("go_memstats_sys_bytes"), per("go_memstats_heap_objects")
	ir.OpenSeconds, ir.LoginsPerSecond = took.Seconds(), float64(n)/took.Seconds()
	return ir, nil
}

// goMetrics scrapes the Go runtime's gauges from a front-end's /metrics.
func goMetrics(admin string) map[string]float64 {
	out := map[string]float64{}
	_, body, err := httpGet("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (strings.HasPrefix(f[0], "go_memstats_") || f[0] == "go_goroutines") {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}

func noFileOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			return strings.Join(strings.Fields(line)[3:5], "/")
		}
	}
	return "?"
}

// interesting are the functions profileRuns reports: the front-end's own
// steps, the libraries it drives, the runtime's overheads and the system
// calls.
var interesting = regexp.MustCompile(`mailfleet/runtime/|emersion/go-smtp\.\(\*Conn\)\.handle|go-ldap|^log/slog\.\(\*Logger\)\.log$|^runtime\.(sysmon|schedule|gcBgMarkWorker|mallocgc)$|^syscall\.(read|write|Syscall)$|^do_syscall_64$`)

// profileRuns records the front-end processes with perf during one more
// proxied run of each test at the most clients, and prints the top
// symbols.
func profileRuns(o options, c *cluster, proxied target, tests map[string]func(target) func(int) error) (string, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.profile, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	n := o.clients[len(o.clients)-1]
	var pids []string
	for _, fe := range c.fes {
		pids = append(pids, strconv.Itoa(fe.pid()))
	}
	for _, test := range []string{"imap", "smtp"} {
		data := fmt.Sprintf("%s/perf-%s.data", o.profile, test)
		rec := exec.Command("perf", "record", "-q", "-F", "499", "-g", "-o", data, "-p", strings.Join(pids, ","))
		rec.Stderr = os.Stderr
		if err := rec.Start(); err != nil {
			return b.String(), err
		}
		time.Sleep(500 * time.Millisecond)
		res := runLoad(n, o.duration, tests[test](proxied))
		rec.Process.Signal(syscall.SIGINT)
		rec.Wait()
		logf("profiled %s %d clients proxied: %.1f/s (perf data %s)", test, n, res.Rate, data)
		out, err := exec.Command("perf", "report", "-i", data, "--stdio", "--children", "-g", "none", "--sort", "symbol").CombinedOutput()
		if err != nil {
			return b.String(), fmt.Errorf("perf report: %v\n%s", err, out)
		}
		fmt.Fprintf(&b, "\nperf, the two front-end processes, proxied %s at %d clients: share of their CPU samples in each function and what it calls\n", test, n)
		shown := 0
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || !strings.HasSuffix(f[0], "%") || !interesting.MatchString(f[3]) {
				continue
			}
			if pct, _ := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64); pct < 1 || shown == 30 {
				continue
			}
			fmt.Fprintf(&b, "  %7s  %s\n", f[0], f[3])
			shown++
		}
	}
	return b.String(), nil
}
