package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/remote"
	"github.com/mailfleet/mailfleet/remote/remotetest"
)

// The plan and apply tests run the command in this process (run, as main
// does) against real sshd on 127.0.0.140 and .141, with two seams a real
// run never has: every host path is prefixed with the node's directory
// under a temporary root (both "hosts" are this machine), and the rendered
// commands (sysctl --system, …) are replaced by ones that only log their
// name, since they would run on this machine too.

type deployRig struct {
	t        *testing.T
	dir      string // topology, known_hosts, plan files
	root     string // the hosts' files: root/NODE/…
	log      string // what the actions ran
	key      remotetest.ClientKey
	srv      map[string]*remotetest.Server
	topology string
}

func newDeployRig(t *testing.T) *deployRig {
	r := &deployRig{t: t, dir: t.TempDir(), root: t.TempDir(), key: remotetest.NewClientKey(t),
		srv: map[string]*remotetest.Server{}}
	r.log = filepath.Join(r.dir, "actions.log")
	for i, n := range []string{"a", "b"} {
		r.srv[n] = remotetest.Start(t, []string{r.key.Public}, remotetest.Options{Host: fmt.Sprintf("127.0.0.%d", 140+i)})
		if err := os.MkdirAll(filepath.Join(r.root, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.topology = filepath.Join(r.dir, "site.hcl")
	r.writeTopology(600)
	deployRoot = func(node string) string { return filepath.Join(r.root, node) }
	deployHook = func(hs []remote.Host) {
		for i := range hs {
			hs[i].Setup = []string{"echo setup " + hs[i].Node + " >> " + r.log}
			hs[i].Packages = []string{"coreutils"}
			for _, f := range hs[i].Files {
				for _, a := range f.Actions {
					a.Command = fmt.Sprintf("echo %s %q >> %s", hs[i].Node, a.Name, r.log)
				}
			}
		}
	}
	t.Cleanup(func() { deployRoot, deployHook = nil, nil })
	return r
}

// writeTopology states the two nodes (b reached through a) with a kernel
// profile, so that hosts get sysctl files with an action.
func (r *deployRig) writeTopology(keepalive int) {
	src := fmt.Sprintf(`site "s" {
  secret = env("DEPLOY_SECRET")
}
network "n" {
  cidr   = "127.0.0.0/24"
  zone   = "n.test"
  public = true
}
kernel "k" {
  tcp_keepalive_time = %d
}
node "a" {
  network = network.n
  address = "127.0.0.140"
  kernel  = kernel.k
  ssh {
    port = %d
  }
}
node "b" {
  network = network.n
  address = "127.0.0.141"
  kernel  = kernel.k
  ssh {
    port = %d
    jump = node.a
  }
}
`, keepalive, r.srv["a"].Port, r.srv["b"].Port)
	if err := os.WriteFile(r.topology, []byte(src), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// run runs mailfleet with args (plus the rig's SSH flags unless raw) and
// stdin; it returns the exit status, stdout and stderr.
func (r *deployRig) run(stdin string, args ...string) (int, string, string) {
	r.t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) (string, bool) {
		if k == "DEPLOY_SECRET" {
			return "s3cret-for-the-deploy-tests", true
		}
		return "", false // no SSH_AUTH_SOCK: key files only
	}}
	code := run(e, args)
	r.t.Logf("mailfleet %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

func (r *deployRig) ssh() []string {
	return []string{"-known-hosts", filepath.Join(r.dir, "known_hosts"), "-identity", r.key.Private}
}

func (r *deployRig) file(node, p string) string {
	b, err := os.ReadFile(filepath.Join(r.root, node, p))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func TestDeployCommands(t *testing.T) {
	testutil.Long(t)
	r := newDeployRig(t)
	ssh := r.ssh()
	args := func(a ...string) []string { return append(append([]string{}, a...), ssh...) }

	// Unknown host keys are refused without -accept-new.
	code, _, stderr := r.run("", args("plan", r.topology)...)
	if code != 1 || !strings.Contains(stderr, "a: ") || !strings.Contains(stderr, "known_hosts") {
		t.Fatalf("unknown keys: %d %s", code, stderr)
	}
	// -accept-new pins them; flags after the path work too.
	code, stdout, _ := r.run("", append([]string{"plan", r.topology, "-accept-new", "-detailed-exitcode"}, ssh...)...)
	if code != 2 || !strings.Contains(stdout, "+ /etc/resolv.conf") || !strings.Contains(stdout, "Plan: ") ||
		strings.Contains(stdout, "_workstation") || strings.Contains(stdout, "Vagrantfile") {
		t.Fatalf("plan: %d\n%s", code, stdout)
	}
	// -json: one object per line, each with format_version and type.
	code, stdout, _ = r.run("", args("plan", "-json", r.topology)...)
	types := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["format_version"] != "1" {
			t.Fatalf("json line %q: %v", l, err)
		}
		types[m["type"].(string)]++
	}
	if code != 0 || types["planned_change"] == 0 || types["change_summary"] != 1 {
		t.Errorf("json plan: %d %v", code, types)
	}

	// A saved plan, then the state changes: it is refused.
	planFile := filepath.Join(r.dir, "tfplan")
	if code, _, _ := r.run("", args("plan", "-out", planFile, r.topology)...); code != 0 {
		t.Fatal("plan -out failed")
	}
	if st, err := os.Stat(planFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("plan file: %v %v", st, err)
	}
	if err := os.MkdirAll(filepath.Join(r.root, "b", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "b", "etc/resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = r.run("", args("apply", planFile)...)
	if code != 1 || !strings.Contains(stderr, "Saved plan is stale: host b changed since the plan was made") {
		t.Fatalf("stale plan: %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(r.root, "a", "etc/resolv.conf")); err == nil {
		t.Fatal("a written from a stale plan")
	}

	// A fresh saved plan applies, without asking.
	if code, _, _ := r.run("", args("plan", "-out", planFile, r.topology)...); code != 0 {
		t.Fatal("plan -out failed")
	}
	code, stdout, _ = r.run("", args("apply", planFile)...)
	if code != 0 || !strings.Contains(stdout, "Apply complete!") || !strings.Contains(stdout, "a: ") {
		t.Fatalf("apply plan: %d\n%s", code, stdout)
	}
	if !strings.Contains(r.file("b", "/etc/resolv.conf"), "search n.test") || !strings.Contains(r.file("a", remote.ManifestPath), "resolv.conf") {
		t.Error("files not written")
	}
	log, _ := os.ReadFile(r.log)
	if !strings.Contains(string(log), "setup a") || !strings.Contains(string(log), "setup b") {
		t.Errorf("setup log: %s", log)
	}

	// Nothing left to do: apply only reads.
	code, stdout, _ = r.run("", args("apply", r.topology)...)
	if code != 0 || !strings.Contains(stdout, "No changes.") || strings.Contains(stdout, "Enter a value") {
		t.Fatalf("second apply: %d\n%s", code, stdout)
	}
	if code, _, _ := r.run("", args("plan", "-detailed-exitcode", r.topology)...); code != 0 {
		t.Errorf("plan after apply: %d", code)
	}

	// A change: asked, "no" cancels, "yes" applies, actions run.
	r.writeTopology(300)
	os.Remove(r.log)
	code, stdout, stderr = r.run("no\n", args("apply", r.topology)...)
	if code != 1 || !strings.Contains(stdout, "Enter a value:") || !strings.Contains(stderr, "Apply cancelled") {
		t.Fatalf("cancel: %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(r.log); err == nil {
		t.Fatal("cancelled apply ran something")
	}
	code, stdout, _ = r.run("yes\n", args("apply", r.topology)...)
	if code != 0 || !strings.Contains(stdout, "actions: ") {
		t.Fatalf("yes: %d\n%s", code, stdout)
	}

	// -target: only that node, with a warning.
	r.writeTopology(200)
	code, stdout, stderr = r.run("", args("plan", "-target", "b", "-detailed-exitcode", r.topology)...)
	if code != 2 || !strings.Contains(stderr, "Resource targeting is in effect") || strings.Contains(stdout, "a:\n") ||
		!strings.Contains(stdout, "b:\n") {
		t.Errorf("target: %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := r.run("", args("plan", "-target", "zz", r.topology)...); code != 1 || !strings.Contains(stderr, "zz: no such node") {
		t.Errorf("unknown target: %d %s", code, stderr)
	}

	// A host that fails does not stop the other; exit 1; the next apply
	// converges.
	blocked := filepath.Join(r.root, "a", "etc/sysctl.d")
	os.RemoveAll(blocked)
	if err := os.WriteFile(blocked, []byte("in the way\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = r.run("", args("apply", "-auto-approve", "-json", r.topology)...)
	if code != 1 || !strings.Contains(stdout, `"type":"apply_complete"`) || !strings.Contains(stdout, `"type":"apply_progress"`) {
		t.Fatalf("failing host: %d\n%s", code, stdout)
	}
	if !strings.Contains(stdout, "a: FAILED") && !strings.Contains(stdout, "a: 0 files") {
		var failed bool
		for _, l := range strings.Split(stdout, "\n") {
			failed = failed || (strings.Contains(l, `"apply_complete"`) && strings.Contains(l, `"node":"a"`) && strings.Contains(l, "FAILED"))
		}
		if !failed {
			t.Errorf("a not reported failed:\n%s", stdout)
		}
	}
	if !strings.Contains(r.file("b", "/etc/sysctl.d/"+sysctlName(t, r, "b")), "200") {
		t.Error("b not applied")
	}
	os.Remove(blocked)
	code, stdout, _ = r.run("", args("apply", "-auto-approve", r.topology)...)
	if code != 0 || strings.Contains(stdout, "b: 1 file") || !strings.Contains(stdout, "b: no changes") {
		t.Fatalf("converge: %d\n%s", code, stdout)
	}
	if code, stdout, _ := r.run("", args("apply", "-auto-approve", r.topology)...); code != 0 || !strings.Contains(stdout, "No changes.") {
		t.Fatalf("after converge: %d\n%s", code, stdout)
	}
}

func sysctlName(t *testing.T, r *deployRig, node string) string {
	ents, err := os.ReadDir(filepath.Join(r.root, node, "etc/sysctl.d"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("sysctl.d: %v", err)
	}
	return ents[0].Name()
}

// The mailfleetd binary apply installs must be of mailfleet's own build.
func TestLocalBinary(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, out string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d := &deploy{e: &env{}, cmd: "apply"}
	d.f.mailfleetd = fake("old", "mailfleetd 0.0.1")
	if _, err := d.localBinary("mailfleetd"); err == nil || !strings.Contains(err.Error(), "this mailfleet is version "+version) {
		t.Errorf("other version: %v", err)
	}
	d.f.mailfleetd = fake("same", "mailfleetd "+version)
	if b, err := d.localBinary("mailfleetd"); err != nil || !strings.Contains(string(b), "echo") {
		t.Errorf("same version: %v", err)
	}
	if _, err := d.localBinary("other"); err == nil {
		t.Error("unknown binary accepted")
	}
}

// Usage errors need no host.
func TestDeployUsage(t *testing.T) {
	dir := t.TempDir()
	topo := filepath.Join(dir, "site.hcl")
	os.WriteFile(topo, []byte("site \"s\" {\n  secret = env(\"S\")\n}\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan"}, "expected one topology PATH"},
		{[]string{"apply"}, "expected one topology PATH"},
		{[]string{"plan", "-bogus", topo}, "flag provided but not defined"},
		{[]string{"apply", "-json", topo}, "-json requires -auto-approve"},
		{[]string{"apply", "-out", "x", topo}, "flag provided but not defined"},
		{[]string{"plan", filepath.Join(dir, "nothing.hcl")}, "nothing.hcl"},
	} {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) (string, bool) { return "", false }}
		if code := run(e, c.args); code != 1 || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%v: exit %d, want 1 and %q:\n%s%s", c.args, code, c.want, out.String(), errb.String())
		}
	}
	// A saved plan of another format is refused.
	bad := filepath.Join(dir, "plan")
	os.WriteFile(bad, []byte(`{"format_version": "9", "hosts": []}`), 0o600)
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) (string, bool) { return "", false }}
	if code := run(e, []string{"apply", bad}); code != 1 || !strings.Contains(errb.String(), `format_version "9"`) {
		t.Errorf("bad plan: %d %s", code, errb.String())
	}
}
