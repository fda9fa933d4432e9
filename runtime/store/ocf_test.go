package store

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mailfleet/mailfleet/internal/programs"
	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/ocf"
	"github.com/mailfleet/mailfleet/runtime/ocf/shim"
	"github.com/mailfleet/mailfleet/runtime/store/auth"
)

// writeTestConfig writes a store config on 127.0.0.1 with free ports.
func writeTestConfig(t *testing.T, dir string) string {
	t.Helper()
	return writeConfig(t, dir, func(*config.Store) {})
}

func writeConfig(t *testing.T, dir string, edit func(*config.Store)) string {
	t.Helper()
	passwd := filepath.Join(dir, "passwd")
	if err := auth.AppendPasswdEntry(passwd, "user@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600)
	cfg := config.Store{FormatVersion: 1, Instance: "ocf", Hostname: "store.test",
		Listeners:   map[string]string{"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0", "pop3": "127.0.0.1:0", "admin": "127.0.0.1:0"},
		StoragePath: filepath.Join(dir, "storage"), QueuePath: filepath.Join(dir, "queue"), RunPath: filepath.Join(dir, "run"),
		LogDir: filepath.Join(dir, "log"), LogName: "ocf", AdminSecretFile: secret, PasswdFile: passwd, Domains: []string{"example.org"}}
	edit(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "store.json")
	os.WriteFile(path, b, 0o600)
	return path
}

// storeShim writes the shim render installs as ocf:mailfleet:store, for the
// mailfleetd built for the tests.
func storeShim(t *testing.T) string {
	t.Helper()
	bin := mailfleetd(t)
	// ocf-tester runs meta-data as nobody: the shim and the binary must
	// be in directories anyone may enter.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(bin)} {
		os.Chmod(d, 0o755)
	}
	agent := filepath.Join(dir, "store")
	if err := os.WriteFile(agent, shim.Script("store", bin), 0o755); err != nil {
		t.Fatal(err)
	}
	return agent
}

// TestOCFAgent runs Debian's ocf-tester against the store's resource agent
// (the shim render installs, and mailfleetd's agent behind it) with a real
// store.
func TestOCFAgent(t *testing.T) {
	testutil.Long(t)
	// ocf-tester checks the agent's meta-data with xmllint.
	tester := programs.Require(t, "ocf-tester", "xmllint")
	dir := t.TempDir()
	cfg := writeTestConfig(t, dir)
	agent := storeShim(t)
	out, err := exec.Command(tester, "-n", "store1", "-o", "config="+cfg,
		"-o", "pidfile="+filepath.Join(dir, "store.pid"), "-o", "stop_timeout=10", agent).CombinedOutput()
	if err != nil {
		t.Fatalf("ocf-tester: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "passed all tests") {
		t.Fatalf("ocf-tester output:\n%s", out)
	}
	// A bad config is a configuration error, not a crash.
	os.WriteFile(cfg, []byte(`{"format_version":1}`), 0o600)
	if rc := runAgent(t, agent, "validate-all", "OCF_RESKEY_config="+cfg); rc != ocf.ErrConfigured {
		t.Fatalf("validate-all with a bad config: %d, want OCF_ERR_CONFIGURED (6)", rc)
	}
	if rc := runAgent(t, agent, "validate-all", "OCF_RESKEY_config="+cfg, "OCF_RESKEY_binary=/nonexistent"); rc != ocf.ErrInstalled {
		t.Fatalf("validate-all without the binary: %d, want OCF_ERR_INSTALLED (5)", rc)
	}
}

// runAgent runs agent's action with the environment env (on top of this
// process's) and returns its exit code.
func runAgent(t *testing.T, agent, action string, env ...string) int {
	t.Helper()
	return runAgentOut(t, []string{agent, action}, env...).rc
}

type agentRun struct {
	rc  int
	out string
}

// runAgentOut runs argv (an agent and its action) with the environment env.
func runAgentOut(t *testing.T, argv []string, env ...string) agentRun {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"OCF_ROOT=/usr/lib/ocf"}, env...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return agentRun{ee.ExitCode(), string(out)}
	} else if err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	return agentRun{0, string(out)}
}

// procField reads the line of /proc/pid/status that starts with key.
func procField(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// TestStoreAgentUser runs the store's agent as Pacemaker does in a mailfleet
// site (at niceness -10, as root) with the user, dirs and nofile parameters
// the CIB gives it: the store runs as that user with CAP_NET_BIND_SERVICE
// only, at niceness 0, with the open files limit; the directories it writes
// are the user's, what was in them before too; monitor asks its /healthz;
// stop ends it.
func TestStoreAgentUser(t *testing.T) {
	testutil.Long(t)
	if os.Geteuid() != 0 {
		t.Skip("the agent changes users: root only")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes both 0700
	storage, logs := filepath.Join(dir, "mnt", "storage"), filepath.Join(dir, "log")
	os.MkdirAll(storage, 0o755)
	os.WriteFile(filepath.Join(storage, "old"), nil, 0o600) // root's, from before
	adminPort := testutil.FreePort(t, "127.0.0.1")
	cfg := writeConfig(t, dir, func(c *config.Store) {
		c.StoragePath = storage
		c.QueuePath, c.RunPath = filepath.Join(storage, "queue"), filepath.Join(storage, "run")
		c.Listeners["admin"] = "127.0.0.1:" + strconv.Itoa(adminPort)
	})
	uid, _ := strconv.Atoi(nobody.Uid)
	for _, f := range []string{cfg, filepath.Join(dir, "passwd"), filepath.Join(dir, "secret")} {
		os.Chown(f, uid, -1)
	}
	agent := storeShim(t)
	pidfile := filepath.Join(dir, "pid")
	env := []string{"OCF_RESOURCE_INSTANCE=agenttest-" + strconv.Itoa(os.Getpid()),
		"OCF_RESKEY_config=" + cfg, "OCF_RESKEY_pidfile=" + pidfile, "OCF_RESKEY_user=nobody",
		"OCF_RESKEY_dirs=" + storage + " " + logs, "OCF_RESKEY_nofile=4321", "OCF_RESKEY_stop_timeout=5",
		"OCF_RESKEY_health_url=http://127.0.0.1:" + strconv.Itoa(adminPort) + "/healthz"}
	start := niceAgent(t, agent, "start", env)
	if start.rc != 0 {
		t.Fatalf("start: %d\n%s", start.rc, start.out)
	}
	defer niceAgent(t, agent, "stop", env)
	b, _ := os.ReadFile(pidfile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if got := strings.Fields(procField(t, pid, "Uid"))[0]; got != nobody.Uid {
		t.Errorf("the store runs as uid %s, want %s", got, nobody.Uid)
	}
	if amb := procField(t, pid, "CapAmb"); amb != "0000000000000400" {
		t.Errorf("the store's ambient capabilities are %s, want CAP_NET_BIND_SERVICE only (0x400)", amb)
	}
	// Every thread: niceness is a thread's, and the agent runs at -10.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err != nil || 20-prio != 0 {
			t.Errorf("store thread %d runs at niceness %d (%v), want 0 (the agents' -10 is not the mail's)", tid, 20-prio, err)
		}
	}
	if len(tasks) == 0 {
		t.Errorf("no threads of the store %d", pid)
	}
	limits, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if !strings.Contains(string(limits), "Max open files            4321                 4321") {
		t.Errorf("the store's limits:\n%s", limits)
	}
	for _, p := range []string{storage, filepath.Join(storage, "old"), logs} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if owner := strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Uid)); owner != nobody.Uid {
			t.Errorf("%s is uid %s's, want %s's", p, owner, nobody.Uid)
		}
	}
	if r := niceAgent(t, agent, "monitor", env); r.rc != 0 {
		t.Errorf("monitor: %d, want 0\n%s", r.rc, r.out)
	}
	// A hung store is alive to kill -0 but fails the monitor, which asks
	// its /healthz; the stop still ends it (SIGCONT with SIGTERM).
	syscall.Kill(pid, syscall.SIGSTOP)
	if r := niceAgent(t, agent, "monitor", append(env, "OCF_RESKEY_CRM_meta_timeout=5000")); r.rc != ocf.ErrGeneric || !strings.Contains(r.out, "ocf-exit-reason:health check") {
		t.Errorf("monitor of a stopped store: %d, want 1 with the reason\n%s", r.rc, r.out)
	}
	if r := niceAgent(t, agent, "stop", env); r.rc != 0 {
		t.Errorf("stop: %d\n%s", r.rc, r.out)
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(stat), ") Z ") {
		t.Errorf("the store %d still runs after stop: %s", pid, stat)
	}
	if r := niceAgent(t, agent, "monitor", env); r.rc != ocf.NotRunning {
		t.Errorf("monitor after stop: %d, want 7 (not running)", r.rc)
	}
	// An unknown user is a configuration the node lacks.
	if rc := runAgent(t, agent, "validate-all", "OCF_RESKEY_config="+cfg, "OCF_RESKEY_user=no-such-user-here"); rc != ocf.ErrInstalled {
		t.Errorf("validate-all with an unknown user: %d, want OCF_ERR_INSTALLED (5)", rc)
	}
}

// niceAgent runs the agent's action at niceness -10, as Pacemaker's execd
// runs agents in a mailfleet site.
func niceAgent(t *testing.T, agent, action string, env []string) agentRun {
	t.Helper()
	return runAgentOut(t, []string{"nice", "-n", "-10", agent, action}, env...)
}

// TestStoreAgentStartFailure: a store that exits before it is ready (a TLS
// key it cannot read, say) fails the start with the store's own words, and
// they are kept in the stderr file beside its log.
func TestStoreAgentStartFailure(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent writes under /var/log and /run: root only")
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, func(c *config.Store) {
		c.TLS = &config.TLS{Cert: filepath.Join(dir, "missing.crt"), Key: filepath.Join(dir, "missing.key")}
	})
	inst := "agenttest-" + strconv.Itoa(os.Getpid())
	errlog := "/var/log/mailfleet/" + inst + ".stderr"
	defer os.Remove(errlog)
	defer os.Remove("/run/mailfleet-store/" + inst + ".ready")
	r := runAgentOut(t, []string{storeShim(t), "start"}, "OCF_RESOURCE_INSTANCE="+inst,
		"OCF_RESKEY_config="+cfg, "OCF_RESKEY_pidfile="+filepath.Join(dir, "pid"))
	if r.rc != ocf.ErrGeneric {
		t.Fatalf("start of a store that cannot start: %d, want 1\n%s", r.rc, r.out)
	}
	if !strings.Contains(r.out, "ocf-exit-reason:mailfleetd store exited during start") || !strings.Contains(r.out, "missing.crt") {
		t.Errorf("the start's reason does not say why:\n%s", r.out)
	}
	if b, _ := os.ReadFile(errlog); !strings.Contains(string(b), "missing.crt") {
		t.Errorf("%s: %q", errlog, b)
	}
}
