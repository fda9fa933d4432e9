package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/lab"
)

// TestLabCLI drives mailfleet lab as a user would, with the real binary: up,
// status, exec, power, plan from the workstation, down. The topology is lab's
// small test topology under another site name, so that it is a lab of its
// own beside the lab package's tests.
func TestLabCLI(t *testing.T) {
	testutil.Long(t)
	bin := filepath.Join(t.TempDir(), "mailfleet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	topo := filepath.Join(t.TempDir(), "topology")
	copyTopology(t, "../../lab/testdata/small", topo, `site "labtest"`, `site "labcli"`)

	mf := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	_, _, _ = mf("lab", "down", topo)
	t.Cleanup(func() { mf("lab", "down", topo) })

	if _, stderr, code := mf("lab", "status", topo); code != 1 || !strings.Contains(stderr, "lab up first") {
		t.Errorf("status without a lab: %d %s", code, stderr)
	}
	if out, stderr, code := mf("lab", "up", topo); code != 0 {
		t.Fatalf("lab up: %d\n%s%s", code, out, stderr)
	}
	out, stderr, code := mf("lab", "status", "-json", topo)
	if code != 0 {
		t.Fatalf("status: %d %s", code, stderr)
	}
	var st lab.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 4 || st.Workstation.Addresses[0] != "100.64.0.2/30" || st.KnownHosts == "" || st.Identity == "" {
		t.Errorf("status: %s", out)
	}
	for _, n := range st.Nodes {
		if n.State != "on" || len(n.Addresses) == 0 {
			t.Errorf("node %+v", n)
		}
	}
	if out, _, code := mf("lab", "exec", topo, "db1", "--", "hostname"); code != 0 || out != "db1\n" {
		t.Errorf("exec hostname: %d %q", code, out)
	}
	if _, _, code := mf("lab", "exec", topo, "db1", "--", "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("exec exit status: %d, want 3", code)
	}
	if out, _, code := mf("lab", "exec", topo, "workstation", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); code != 0 || !strings.Contains(out, "100.64.0.2/30") {
		t.Errorf("exec on the workstation: %d %q", code, out)
	}
	if _, stderr, code := mf("lab", "power", "off", topo, "db2"); code != 0 {
		t.Fatalf("power off: %s", stderr)
	}
	if _, stderr, code := mf("lab", "exec", topo, "db2", "--", "true"); code != 1 || !strings.Contains(stderr, "powered off") {
		t.Errorf("exec on a node that is off: %d %s", code, stderr)
	}
	if _, stderr, code := mf("lab", "power", "on", topo, "db2"); code != 0 {
		t.Fatalf("power on: %s", stderr)
	}
	// plan runs in the workstation over SSH with the lab's known_hosts and
	// key: every host is reached, and everything is to add.
	out, stderr, code = mf("lab", "plan", topo, "-detailed-exitcode")
	if code != 2 || !strings.Contains(out, "Plan:") {
		t.Errorf("lab plan: %d\n%s\n%s", code, out, stderr)
	}
	if _, _, code := mf("lab", "exec", topo); code != 1 {
		t.Errorf("exec without node: %d", code)
	}
	if _, stderr, code := mf("lab", "down", topo); code != 0 {
		t.Fatalf("down: %s", stderr)
	}
	if _, stderr, code := mf("lab", "down", topo); code != 0 {
		t.Errorf("second down: %s", stderr)
	}
	if _, err := os.Stat(lab.DirFor("labcli")); err == nil {
		t.Error("the lab's directory is still there")
	}
}

func copyTopology(t *testing.T, from, to, old, repl string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(strings.ReplaceAll(string(b), old, repl)), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLabDeployPath(t *testing.T) {
	for _, c := range []struct {
		args       []string
		path, rest string
		ok         bool
	}{
		{[]string{"examples/lab"}, "examples/lab", "", true},
		{[]string{"-auto-approve", "examples/lab"}, "examples/lab", "-auto-approve", true},
		{[]string{"examples/lab", "-detailed-exitcode"}, "examples/lab", "-detailed-exitcode", true},
		{[]string{"-target", "proxy1", "examples/lab", "-parallelism=3"}, "examples/lab", "-target proxy1 -parallelism=3", true},
		{[]string{"--out", "p.plan", "x"}, "x", "--out p.plan", true},
		{[]string{"-auto-approve"}, "", "-auto-approve", false},
		{[]string{"a", "b"}, "", "", false},
	} {
		path, rest, ok := labDeployPath(c.args)
		if path != c.path || strings.Join(rest, " ") != c.rest || ok != c.ok {
			t.Errorf("%q: %q %q %v, want %q %q %v", c.args, path, rest, ok, c.path, c.rest, c.ok)
		}
	}
}
