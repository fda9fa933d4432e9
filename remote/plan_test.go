package remote_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/remote"
	"github.com/mailfleet/mailfleet/remote/internal/sshdtest"
	"github.com/mailfleet/mailfleet/remote/sftp"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

func host(t *testing.T) *sftp.Host {
	t.Helper()
	ck := sshdtest.NewClientKey(t)
	srv := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.20"})
	p, err := sshconn.New(sshconn.Config{KnownHosts: filepath.Join(t.TempDir(), "known_hosts"), AcceptNew: true,
		NoAgent: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := p.Client(context.Background(), sshconn.Target{Name: "mx1", Host: srv.Host, Port: srv.Port, KeyFile: ck.Private})
	if err != nil {
		t.Fatal(err)
	}
	h, err := sftp.Open("mx1", c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestPlanHost(t *testing.T) {
	h := host(t)
	root := t.TempDir()
	mp := filepath.Join(root, "var/lib/mailfleet/manifest.json")
	p := func(s string) string { return filepath.Join(root, s) }
	restart := &remote.Action{Name: "restart app", Command: "true", Order: 50}

	// Nothing on the host yet: everything is created.
	files := []remote.File{
		{Path: p("etc/app.conf"), Mode: 0o644, Owner: "root", Group: "root", Content: []byte("a\nb\nc\n"), Actions: []*remote.Action{restart}},
		{Path: p("etc/secret"), Mode: 0o600, Owner: "root", Group: "root", Content: []byte("hunter2\n"), Sensitive: true},
		{Path: p("etc/same"), Mode: 0o644, Content: []byte("same\n")},
		{Path: p("etc/gone"), Mode: 0o644, Content: []byte("old\n")},
	}
	hp, err := remote.PlanHost("mx1", h, files, mp)
	if err != nil {
		t.Fatal(err)
	}
	if a, c, d := hp.Counts(); a != 4 || c != 0 || d != 0 || !hp.ManifestChanged {
		t.Fatalf("first plan: %d %d %d manifest=%v", a, c, d, hp.ManifestChanged)
	}
	var out bytes.Buffer
	remote.Format(&out, []*remote.HostPlan{hp})
	if s := out.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "(sensitive value)") ||
		!strings.Contains(s, "Plan: 4 to add, 0 to change, 0 to destroy.") || !strings.Contains(s, "+a") {
		t.Errorf("plan output:\n%s", s)
	}

	// "Apply" by hand (apply is not built yet), manifest last.
	for _, f := range files {
		if err := h.WriteFile(f.Path, f.Content, f.Mode, f.Owner, f.Group); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := json.Marshal(remote.NewManifest(files))
	if err := h.WriteFile(mp, m, 0o644, "", ""); err != nil {
		t.Fatal(err)
	}
	hp, err = remote.PlanHost("mx1", h, files, mp)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	remote.Format(&out, []*remote.HostPlan{hp})
	if out.String() != "No changes.\n" || hp.ManifestChanged {
		t.Errorf("after apply: %q manifest=%v", out.String(), hp.ManifestChanged)
	}

	// Change content, a secret, a mode by hand; drop a file from the set.
	files[0].Content = []byte("a\nB\nc\n")
	files[1].Content = []byte("hunter3\n")
	if err := os.Chmod(p("etc/same"), 0o600); err != nil {
		t.Fatal(err)
	}
	hp, err = remote.PlanHost("mx1", h, files[:3], mp)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	remote.Format(&out, []*remote.HostPlan{hp})
	s := out.String()
	for _, want := range []string{
		"~ " + p("etc/app.conf") + " (content) then \"restart app\"",
		"-b", "+B",
		"~ " + p("etc/secret") + " (content)",
		"(sensitive value)",
		"~ " + p("etc/same") + " (mode 0600 -> 0644)",
		"- " + p("etc/gone"),
		"Plan: 0 to add, 3 to change, 1 to destroy.",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q:\n%s", want, s)
		}
	}
	t.Logf("plan:\n%s", s)
	if strings.Contains(s, "hunter") {
		t.Errorf("secret shown:\n%s", s)
	}
}

// A fake host, for what a real one cannot easily show.
type fakeFS struct{ files map[string][]byte }

func (f fakeFS) ReadFile(p string) ([]byte, bool, error) { b, ok := f.files[p]; return b, ok, nil }
func (f fakeFS) Stat(p string) (sftp.Info, bool, error) {
	b, ok := f.files[p]
	return sftp.Info{Mode: 0o644, Size: int64(len(b))}, ok, nil
}
func (f fakeFS) UserID(string) (int, error)  { return 0, nil }
func (f fakeFS) GroupID(string) (int, error) { return 0, nil }

func TestPlanHostErrors(t *testing.T) {
	fs := fakeFS{files: map[string][]byte{remote.ManifestPath: []byte(`{"format_version": 9, "files": []}`)}}
	if _, err := remote.PlanHost("n", fs, nil, ""); err == nil || !strings.Contains(err.Error(), "format_version 9") {
		t.Errorf("future manifest: %v", err)
	}
	fs.files[remote.ManifestPath] = []byte(`{`)
	if _, err := remote.PlanHost("n", fs, nil, ""); err == nil {
		t.Error("broken manifest accepted")
	}
	delete(fs.files, remote.ManifestPath)
	if _, err := remote.PlanHost("n", fs, []remote.File{{Path: "rel"}}, ""); err == nil {
		t.Error("relative path accepted")
	}
	if _, err := remote.PlanHost("n", fs, []remote.File{{Path: "/a"}, {Path: "/a"}}, ""); err == nil {
		t.Error("duplicate path accepted")
	}
	fs.files["/bin"] = []byte{0, 1, 2}
	hp, err := remote.PlanHost("n", fs, []remote.File{{Path: "/bin", Mode: 0o644, Content: []byte{0, 1, 3}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if hp.Changes[0].Diff != "(binary)\n" {
		t.Errorf("binary diff %q", hp.Changes[0].Diff)
	}
}
