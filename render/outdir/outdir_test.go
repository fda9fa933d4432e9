package outdir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/render"
)

// The manifest names every action of a file, in the order they run, and
// leaves the field out for a file without any.
func TestManifestActions(t *testing.T) {
	out := &render.Output{Hosts: []*render.Host{{Node: "n1", Files: []*render.File{
		{Path: "/etc/corosync/corosync.conf", Mode: 0o644, Owner: "root", Group: "root", Content: []byte("x\n"),
			Actions: []*render.Action{{Name: "restart corosync", Command: "true", Order: 64}, {Name: "start pacemaker", Command: "true", Order: 66}}},
		{Path: "/etc/plain", Mode: 0o644, Owner: "root", Group: "root", Content: []byte("y\n")},
	}}}}
	dir := t.TempDir()
	if _, err := Write(dir, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		FormatVersion int `json:"format_version"`
		Files         []map[string]any
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.FormatVersion != 1 || len(m.Files) != 2 {
		t.Fatalf("manifest:\n%s", b)
	}
	var got []string
	for _, a := range m.Files[0]["actions"].([]any) {
		got = append(got, a.(string))
	}
	if !slices.Equal(got, []string{"restart corosync", "start pacemaker"}) {
		t.Errorf("actions %q", got)
	}
	if _, ok := m.Files[1]["actions"]; ok {
		t.Errorf("a file without actions lists some:\n%s", b)
	}
	if _, ok := m.Files[0]["action"]; ok {
		t.Errorf("the old action field is still there:\n%s", b)
	}
}

// TestManifestKeepsSecretsOut: the manifest (readable by all) carries the
// digest of plain files only; a file with a secret is written 0600 and its
// digest, which would let anyone test password guesses offline, is left
// out.
func TestManifestKeepsSecretsOut(t *testing.T) {
	secret := []byte("hunter2\n")
	out := &render.Output{Hosts: []*render.Host{{Node: "n1", Files: []*render.File{
		{Path: "/etc/mailfleet/secrets/admin", Mode: 0o600, Owner: "root", Group: "root", Content: secret, Sensitive: true},
		{Path: "/etc/plain", Mode: 0o644, Owner: "root", Group: "root", Content: []byte("y\n")},
	}}}}
	dir := t.TempDir()
	if _, err := Write(dir, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(secret)
	if strings.Contains(string(b), hex.EncodeToString(sum[:])) {
		t.Errorf("the manifest holds the secret file's SHA-256:\n%s", b)
	}
	plain := sha256.Sum256([]byte("y\n"))
	if !strings.Contains(string(b), hex.EncodeToString(plain[:])) {
		t.Errorf("the manifest lacks the plain file's SHA-256:\n%s", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "n1", "etc/mailfleet/secrets/admin")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the secret file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
}
