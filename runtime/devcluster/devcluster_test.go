package devcluster_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/programs"
	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/devcluster"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
)

// testAddrBase keeps the test's cluster off the default addresses, where a
// developer's own `mailfleetd dev` may run.
const testAddrBase = "127.0.9.10"

// buildMailfleetd builds the command into a temporary directory.
func buildMailfleetd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailfleetd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mailfleet/mailfleet/cmd/mailfleetd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// devProcess is a running `mailfleetd dev`.
type devProcess struct {
	cmd     *exec.Cmd
	info    devcluster.Info
	raw     string // the JSON line as printed
	stderr  *syncBuffer
	rest    chan []byte // stdout after the first line, once it closes
	exited  chan struct{}
	waitErr error
	ready   time.Duration
}

// startDev runs `mailfleetd dev -data dir` and reads its one line.
func startDev(t *testing.T, bin, dir string) *devProcess {
	t.Helper()
	p := &devProcess{stderr: &syncBuffer{}, rest: make(chan []byte, 1), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "dev", "-data", dir, "-addr-base", testAddrBase)
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		lines <- line
		rest, _ := io.ReadAll(br)
		p.rest <- rest
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case line := <-lines:
		p.ready = time.Since(start)
		p.raw = line
		if err := json.Unmarshal([]byte(line), &p.info); err != nil || !strings.HasSuffix(line, "\n") {
			t.Fatalf("first stdout line %q: %v\nstderr:\n%s", line, err, p.stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("no JSON line within 90s; stderr:\n%s", p.stderr.String())
	}
	if p.info.StartupMS > 1000 {
		b, _ := os.ReadFile(filepath.Join(p.info.Logs, "dev.log"))
		t.Logf("slow start (%d ms); dev.log:\n%s", p.info.StartupMS, b)
	}
	return p
}

// children lists the processes whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// stop sends sig and checks that the process exits 0 having printed
// nothing more, and that slapd and every other child are gone.
func (p *devProcess) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	kids := children(t, p.cmd.Process.Pid)
	pidFile, err := os.ReadFile(p.info.SlapdPIDFile)
	if err != nil {
		t.Fatalf("slapd pid file: %v", err)
	}
	if got := strings.TrimSpace(string(pidFile)); got != strconv.Itoa(p.info.SlapdPID) {
		t.Errorf("slapd pid file says %s, the JSON line %d", got, p.info.SlapdPID)
	}
	if !reflect.DeepEqual(kids, []int{p.info.SlapdPID}) {
		t.Errorf("children before stopping: %v, want slapd %d alone", kids, p.info.SlapdPID)
	}
	start := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after %v; stderr:\n%s", sig, p.stderr.String())
	}
	t.Logf("stopped %s after %v", time.Since(start).Round(time.Millisecond), sig)
	if p.waitErr != nil {
		t.Errorf("exit after %v: %v; stderr:\n%s", sig, p.waitErr, p.stderr.String())
	}
	if rest := <-p.rest; len(rest) > 0 {
		t.Errorf("stdout has more than the one line: %q", rest)
	}
	for _, pid := range append(kids, p.info.SlapdPID) {
		if alive(pid) {
			t.Errorf("process %d is left behind", pid)
		}
	}
	if _, err := os.Stat(p.info.SlapdPIDFile); err == nil {
		t.Errorf("slapd's pid file %s is left behind", p.info.SlapdPIDFile)
	}
}

// checkTopology decodes and validates DIR/topology as `mailfleet validate`
// does, and checks that it states exactly the running cluster.
func checkTopology(t *testing.T, info devcluster.Info) {
	t.Helper()
	topo, _, diags := decode.Load(info.Topology, decode.Options{RequireSecrets: true})
	if topo != nil {
		diags = append(diags, spec.Validate(topo)...)
	}
	expected := map[string]bool{"Single balancer": true, "Single directory node": true, "No failover node": true,
		"Node without fencing": true}
	for _, d := range diags {
		if d.Severity == spec.Error || !expected[d.Summary] {
			t.Errorf("topology: %s: %s: %s", d.Severity, d.Summary, d.Detail)
		}
	}
	if diags.HasErrors() || topo == nil {
		t.FailNow()
	}
	at := func(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

	want := map[string]string{"smtp": info.SMTP, "imap": info.IMAP, "pop3": info.POP3}
	if len(topo.Balancers) != 1 || len(topo.Balancers[0].Services) != 3 {
		t.Fatalf("balancers: %+v", topo.Balancers)
	}
	lb := topo.Balancers[0]
	if got := at(lb.Nodes[0].Address, config.BalancerAdminPort); got != info.BalancerAdmin {
		t.Logf("balancer admin %s is not at the rendered port (%s): it was taken", info.BalancerAdmin, got)
	}
	for _, s := range lb.Services {
		if got := at(s.VIP, s.Port); got != want[s.Name] {
			t.Errorf("balancer service %s: topology %s, running %s", s.Name, got, want[s.Name])
		}
		for _, rs := range s.Backends {
			fe := info.Frontends[rs.Node.Name]
			running := map[string]string{"smtp": fe.SMTP, "imap": fe.IMAP, "pop3": fe.POP3}[s.Protocol]
			if got := at(rs.Node.Address, rs.Port); got != running {
				t.Errorf("balancer %s backend %s: topology %s, running %s", s.Name, rs.Node.Name, got, running)
			}
		}
	}
	if len(topo.Frontends) != 1 || len(topo.Frontends[0].Nodes) != 2 {
		t.Fatalf("frontends: %+v", topo.Frontends)
	}
	if d := topo.Directory; d == nil || d.URL() != info.LDAP {
		t.Errorf("directory: topology %v, running %s", d, info.LDAP)
	}
	if len(topo.Instances) != len(info.Instances) {
		t.Fatalf("instances: topology %d, running %d", len(topo.Instances), len(info.Instances))
	}
	for _, in := range topo.Instances {
		ii, ok := info.Instances[in.Name]
		if !ok {
			t.Fatalf("instance %s is not running", in.Name)
		}
		for kind, running := range map[string]string{"smtp": ii.SMTP, "lmtp": ii.LMTP, "imap": ii.IMAP, "pop3": ii.POP3, "admin": ii.Admin} {
			if got := at(in.VIP, in.Listeners[kind]); got != running {
				t.Errorf("instance %s %s: topology %s, running %s", in.Name, kind, got, running)
			}
		}
		if in.FQDN() != ii.FQDN || in.Storage.Mountpoint != filepath.Join(ii.Data, "storage") {
			t.Errorf("instance %s: fqdn %s storage %s, running %s %s", in.Name, in.FQDN(), in.Storage.Mountpoint, ii.FQDN, ii.Data)
		}
		if !in.AdminSecret.Known || in.AdminSecret.Value != ii.AdminSecret {
			t.Errorf("instance %s: the topology's admin secret is not the running one", in.Name)
		}
	}
	// Every secret is a 0600 file under DIR.
	secrets, _ := filepath.Glob(filepath.Join(info.Data, "topology", "secrets", "*"))
	if len(secrets) < 6 {
		t.Errorf("secret files: %v", secrets)
	}
	for _, f := range secrets {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, st.Mode(), err)
		}
	}
}

// clientScript sends (phase "send") and reads back with Python's smtplib,
// imaplib and poplib: through the balancer, and on each instance directly.
const clientScript = `
import concurrent.futures, imaplib, json, poplib, smtplib, sys
info = json.load(open(sys.argv[1]))
phase = sys.argv[2]
def hp(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)
out = {}
if phase == "send":
    s = smtplib.SMTP(*hp(info["smtp"]), timeout=20)
    for a in info["accounts"]:
        s.sendmail("sender@outside.test", [a["user"]],
            "Subject: smtplib for %s\r\nFrom: sender@outside.test\r\n\r\nhello %s\r\n" % (a["user"], a["user"]))
    s.quit()
for a in info["accounts"]:
    r = {}
    m = imaplib.IMAP4(*hp(info["imap"]), timeout=20)
    m.login(a["user"], a["password"])
    typ, data = m.select("INBOX", readonly=True)
    r["imap_exists"] = int(data[0])
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    r["imap_subjects"] = sorted(d[1].decode().strip() for d in data if isinstance(d, tuple))
    m.logout()
    p = poplib.POP3(*hp(info["pop3"]), timeout=20)
    p.user(a["user"])
    p.pass_(a["password"])
    n = p.stat()[0]
    r["pop3_count"] = n
    r["pop3_bodies"] = [b"\n".join(p.retr(i)[1]).decode() for i in range(1, n + 1)]
    p.quit()
    out[a["user"]] = r
# Directly on each instance: an account's mail is on its home only. The
# instances trust all of 127.0.0.0/8 to send a PROXY header and greet a
# client that sends none after a second, so these sessions run together.
def direct(a, name, inst):
    try:
        m = imaplib.IMAP4(*hp(inst["imap"]), timeout=20)
        m.login(a["user"], a["password"])
        typ, data = m.select("INBOX", readonly=True)
        m.logout()
        return a["user"], name, int(data[0])
    except imaplib.IMAP4.error as e:
        return a["user"], name, "refused: " + str(e)
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    jobs = [ex.submit(direct, a, name, inst) for a in info["accounts"] for name, inst in info["instances"].items()]
    for j in jobs:
        user, name, n = j.result()
        out[user].setdefault("direct", {})[name] = n
print(json.dumps(out))
`

type accountResult struct {
	IMAPExists   int            `json:"imap_exists"`
	IMAPSubjects []string       `json:"imap_subjects"`
	POP3Count    int            `json:"pop3_count"`
	POP3Bodies   []string       `json:"pop3_bodies"`
	Direct       map[string]any `json:"direct"`
}

func runClients(t *testing.T, info devcluster.Info, raw, phase string) map[string]accountResult {
	t.Helper()
	dir := t.TempDir()
	script, infoFile := filepath.Join(dir, "clients.py"), filepath.Join(dir, "info.json")
	os.WriteFile(script, []byte(clientScript), 0o600)
	os.WriteFile(infoFile, []byte(raw), 0o600)
	out, err := exec.Command("python3", script, infoFile, phase).CombinedOutput()
	if err != nil {
		t.Fatalf("python (%s): %v\n%s", phase, err, out)
	}
	var res map[string]accountResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python (%s): %v: %s", phase, err, out)
	}
	return res
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// checkMail checks that each account has its two messages (one sent with
// smtplib, one with curl), read through the balancer's IMAP and POP3, and
// that they are on its home instance only.
func checkMail(t *testing.T, info devcluster.Info, res map[string]accountResult) {
	t.Helper()
	for _, a := range info.Accounts {
		r, ok := res[a.User]
		if !ok {
			t.Fatalf("no result for %s: %+v", a.User, res)
		}
		wantSubjects := []string{"Subject: curl for " + a.User, "Subject: smtplib for " + a.User}
		if r.IMAPExists != 2 || !reflect.DeepEqual(r.IMAPSubjects, wantSubjects) {
			t.Errorf("%s through the balancer's IMAP: %d messages %q, want %q", a.User, r.IMAPExists, r.IMAPSubjects, wantSubjects)
		}
		if r.POP3Count != 2 || !strings.Contains(strings.Join(r.POP3Bodies, "\n"), "hello "+a.User) ||
			!strings.Contains(strings.Join(r.POP3Bodies, "\n"), "via curl to "+a.User) {
			t.Errorf("%s through the balancer's POP3: %d messages %q", a.User, r.POP3Count, r.POP3Bodies)
		}
		for name, got := range r.Direct {
			switch {
			case name == a.Instance && got != float64(2):
				t.Errorf("%s on its home %s directly: %v messages, want 2", a.User, name, got)
			case name != a.Instance && got != float64(0) && !strings.HasPrefix(fmt.Sprint(got), "refused"):
				t.Errorf("%s on %s, not its home, directly: %v, want nothing", a.User, name, got)
			}
		}
		if len(r.Direct) != len(info.Instances) {
			t.Errorf("%s: direct checks %v", a.User, r.Direct)
		}
	}
}

// TestDevCluster runs `mailfleetd dev` as a user would: the JSON line, the
// topology, mail for both accounts through the balancer with Python's
// clients and curl, a restart on the same directory, and the stops.
func TestDevCluster(t *testing.T) {
	testutil.Long(t)
	programs.Require(t, "python3", "curl", "/usr/sbin/slapd")
	bin := buildMailfleetd(t)
	dir := filepath.Join(t.TempDir(), "dev")

	p := startDev(t, bin, dir)
	info := p.info
	t.Logf("first start: ready after %v (startup_ms %d)", p.ready.Round(time.Millisecond), info.StartupMS)
	if len(info.Accounts) != 2 || len(info.Instances) != 2 || info.Accounts[0].Instance == info.Accounts[1].Instance {
		t.Fatalf("accounts %+v, instances %+v", info.Accounts, info.Instances)
	}
	if info.Topology != filepath.Join(dir, "topology") || !strings.HasPrefix(info.LDAP, "ldap://127.0.9.") {
		t.Errorf("topology %s, ldap %s", info.Topology, info.LDAP)
	}
	seen := map[string]string{}
	for name, addr := range map[string]string{"smtp": info.SMTP, "ldap": strings.TrimPrefix(info.LDAP, "ldap://"),
		"inst1": info.Instances["inst1"].IMAP, "inst2": info.Instances["inst2"].IMAP, "fe1": info.Frontends["fe1"].IMAP,
		"fe2": info.Frontends["fe2"].IMAP} {
		ap := netip.MustParseAddrPort(addr)
		if other, ok := seen[ap.Addr().String()]; ok {
			t.Errorf("%s and %s share the address %s", name, other, ap.Addr())
		}
		seen[ap.Addr().String()] = name
	}
	for _, a := range info.Accounts {
		ii := info.Instances[a.Instance]
		if !strings.HasPrefix(ii.Data, dir) || ii.AdminSecret == "" {
			t.Errorf("instance %s: %+v", a.Instance, ii)
		}
	}
	checkTopology(t, info)

	// The balancer sees both front-end nodes up, in every service.
	resp, err := http.Get("http://" + info.BalancerAdmin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), `"state":"up"`) != 6 {
		t.Errorf("balancer /healthz: %d %s", resp.StatusCode, body)
	}

	// curl sends one message to each account, smtplib another; both are
	// read back through the balancer.
	msgDir := t.TempDir()
	for _, a := range info.Accounts {
		msg := filepath.Join(msgDir, a.User)
		os.WriteFile(msg, []byte("Subject: curl for "+a.User+"\r\nFrom: x@outside.test\r\n\r\nvia curl to "+a.User+"\r\n"), 0o600)
		curl(t, "smtp://"+info.SMTP, "--mail-from", "x@outside.test", "--mail-rcpt", a.User, "-T", msg)
	}
	checkMail(t, info, runClients(t, info, p.raw, "send"))
	for _, a := range info.Accounts {
		cred := a.User + ":" + a.Password
		if got := curl(t, "imap://"+info.IMAP+"/INBOX;UID=1", "-u", cred); !strings.Contains(got, "via curl to "+a.User) {
			t.Errorf("curl imap for %s: %q", a.User, got)
		}
		if got := curl(t, "imap://"+info.IMAP+"/INBOX;UID=2", "-u", cred); !strings.Contains(got, "hello "+a.User) {
			t.Errorf("curl imap for %s: %q", a.User, got)
		}
		if got := curl(t, "pop3://"+info.POP3+"/1", "-u", cred) + curl(t, "pop3://"+info.POP3+"/2", "-u", cred); !strings.Contains(got, "hello "+a.User) || !strings.Contains(got, "via curl to "+a.User) {
			t.Errorf("curl pop3 for %s: %q", a.User, got)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(info.Logs, "*.log"))
	if len(logs) < 6 {
		t.Errorf("log files: %v", logs)
	}
	p.stop(t, syscall.SIGINT)

	// A restart on the same directory: the same credentials, the mail kept,
	// and (the ports being free) the same addresses.
	p2 := startDev(t, bin, dir)
	t.Logf("restart: ready after %v (startup_ms %d)", p2.ready.Round(time.Millisecond), p2.info.StartupMS)
	if !reflect.DeepEqual(p2.info.Accounts, info.Accounts) {
		t.Errorf("accounts changed across the restart: %+v, then %+v", info.Accounts, p2.info.Accounts)
	}
	for name, ii := range info.Instances {
		if p2.info.Instances[name].AdminSecret != ii.AdminSecret {
			t.Errorf("instance %s: admin secret changed across the restart", name)
		}
	}
	if p2.info.SMTP != info.SMTP || p2.info.IMAP != info.IMAP || p2.info.LDAP != info.LDAP ||
		!reflect.DeepEqual(p2.info.Instances, info.Instances) {
		t.Errorf("addresses changed across the restart: %s, then %s", p.raw, p2.raw)
	}
	checkTopology(t, p2.info)
	checkMail(t, p2.info, runClients(t, p2.info, p2.raw, "read"))
	p2.stop(t, syscall.SIGTERM)
}
