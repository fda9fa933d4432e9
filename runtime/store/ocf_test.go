package store

import (
	"encoding/json"
	"github.com/mailfleet/mailfleet/internal/programs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store/auth"
)

// writeTestConfig writes a store config on 127.0.0.1 with free ports.
func writeTestConfig(t *testing.T, dir string) string {
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
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "store.json")
	os.WriteFile(path, b, 0o600)
	return path
}

// TestOCFAgent runs Debian's ocf-tester against the resource agent.
func TestOCFAgent(t *testing.T) {
	// ocf-tester checks the agent's meta-data with xmllint.
	tester := programs.Require(t, "ocf-tester", "xmllint")
	dir := t.TempDir()
	cfg := writeTestConfig(t, dir)
	agent, _ := filepath.Abs("../../templates/mailfleet-store")
	out, err := exec.Command(tester, "-n", "store1", "-o", "config="+cfg, "-o", "binary="+mailfleetd(t),
		"-o", "pidfile="+filepath.Join(dir, "store.pid"), "-o", "stop_timeout=10", agent).CombinedOutput()
	if err != nil {
		t.Fatalf("ocf-tester: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "passed all tests") {
		t.Fatalf("ocf-tester output:\n%s", out)
	}
	// A bad config is a configuration error, not a crash.
	os.WriteFile(cfg, []byte(`{"format_version":1}`), 0o600)
	cmd := exec.Command(agent, "validate-all")
	cmd.Env = append(os.Environ(), "OCF_ROOT=/usr/lib/ocf", "OCF_RESKEY_config="+cfg, "OCF_RESKEY_binary="+mailfleetd(t))
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 6 {
		t.Fatalf("validate-all with a bad config: %v (want OCF_ERR_CONFIGURED, 6)", err)
	}
}
