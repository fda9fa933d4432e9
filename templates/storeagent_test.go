package templates

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestStoreAgentUser runs the store's OCF agent with the user and dirs
// parameters the CIB gives it, against a stand-in for mailfleetd: the store
// runs as that user, and the directories it writes are that user's, what was
// in them before too. (runtime/store's TestOCFAgent runs Debian's ocf-tester
// on the agent with the real mailfleetd.)
func TestStoreAgentUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent changes users: root only")
	}
	if _, err := os.Stat("/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs"); err != nil {
		t.Fatalf("resource-agents is required: %v", err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes both 0700
	agent := filepath.Join(dir, "store")
	os.WriteFile(agent, StoreAgent, 0o755)
	// The stand-in notes its uid where only the store's user may write.
	storage, logs := filepath.Join(dir, "mnt", "storage"), filepath.Join(dir, "log")
	bin := filepath.Join(dir, "mailfleetd")
	os.WriteFile(bin, []byte("#!/bin/sh\n[ \"$4\" = -check ] && exit 0\nid -u >"+logs+"/uid\nnice >"+logs+"/nice\n[ \"$4\" = -ready-file ] && echo $$ >\"$5\"\nexec sleep 300\n"), 0o755)
	cfg := filepath.Join(dir, "store.json")
	os.WriteFile(cfg, []byte("{}\n"), 0o644)
	os.MkdirAll(storage, 0o755)
	os.WriteFile(filepath.Join(storage, "old"), nil, 0o600) // root's, from before

	run := func(action string) int {
		t.Helper()
		// As Pacemaker runs it in a mailfleet site: at niceness -10.
		cmd := exec.Command("nice", "-n", "-10", agent, action)
		cmd.Env = append(os.Environ(), "OCF_ROOT=/usr/lib/ocf", "OCF_RESOURCE_INSTANCE=s1",
			"OCF_RESKEY_config="+cfg, "OCF_RESKEY_binary="+bin, "OCF_RESKEY_pidfile="+filepath.Join(dir, "pid"),
			"OCF_RESKEY_user=nobody", "OCF_RESKEY_dirs="+storage+" "+logs, "OCF_RESKEY_stop_timeout=5")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v\n%s", action, err, out)
		}
		return 0
	}
	if rc := run("start"); rc != 0 {
		t.Fatalf("start: %d", rc)
	}
	defer run("stop")
	var uid []byte
	for i := 0; i < 50 && len(uid) == 0; i++ {
		uid, _ = os.ReadFile(filepath.Join(logs, "uid"))
		time.Sleep(20 * time.Millisecond)
	}
	if got := string(bytes.TrimSpace(uid)); got != nobody.Uid {
		t.Errorf("the store runs as uid %q, want %s", got, nobody.Uid)
	}
	if nice, _ := os.ReadFile(filepath.Join(logs, "nice")); string(nice) != "0\n" {
		t.Errorf("the store runs at niceness %q, want 0 (the agent's -10 is Pacemaker's, not the mail's)", nice)
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
	if rc := run("monitor"); rc != 0 {
		t.Errorf("monitor: %d, want 0", rc)
	}
	if rc := run("stop"); rc != 0 {
		t.Errorf("stop: %d", rc)
	}
	if rc := run("monitor"); rc != 7 {
		t.Errorf("monitor after stop: %d, want 7 (not running)", rc)
	}
	// An unknown user is a configuration the node lacks.
	cmd := exec.Command(agent, "validate-all")
	cmd.Env = append(os.Environ(), "OCF_ROOT=/usr/lib/ocf", "OCF_RESKEY_config="+cfg, "OCF_RESKEY_binary="+bin,
		"OCF_RESKEY_user=no-such-user-here")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 {
		t.Errorf("validate-all with an unknown user: %v (want OCF_ERR_INSTALLED, 5)\n%s", err, out)
	}
}

// TestStoreAgentStartFailure: a store that exits before it is ready (a TLS
// key it may not read, say) fails the start, and what it said is kept in
// the stderr file beside its log, not thrown away.
func TestStoreAgentStartFailure(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent writes under /var/log and /run: root only")
	}
	dir := t.TempDir()
	agent := filepath.Join(dir, "store")
	os.WriteFile(agent, StoreAgent, 0o755)
	bin := filepath.Join(dir, "mailfleetd")
	os.WriteFile(bin, []byte("#!/bin/sh\n[ \"$4\" = -check ] && exit 0\nsleep 0.3\necho 'tls: open node.key: permission denied' >&2\nexit 1\n"), 0o755)
	cfg := filepath.Join(dir, "store.json")
	os.WriteFile(cfg, []byte("{}\n"), 0o644)
	inst := "agenttest-" + strconv.Itoa(os.Getpid())
	errlog := "/var/log/mailfleet/" + inst + ".stderr"
	defer os.Remove(errlog)
	defer os.Remove("/run/mailfleet-store/" + inst + ".ready")
	cmd := exec.Command(agent, "start")
	cmd.Env = append(os.Environ(), "OCF_ROOT=/usr/lib/ocf", "OCF_RESOURCE_INSTANCE="+inst,
		"OCF_RESKEY_config="+cfg, "OCF_RESKEY_binary="+bin, "OCF_RESKEY_pidfile="+filepath.Join(dir, "pid"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("start succeeded for a store that exited:\n%s", out)
	}
	if !bytes.Contains(out, []byte("permission denied")) {
		t.Errorf("the start's reason does not say why:\n%s", out)
	}
	if b, _ := os.ReadFile(errlog); !bytes.Contains(b, []byte("permission denied")) {
		t.Errorf("%s: %q", errlog, b)
	}
}
