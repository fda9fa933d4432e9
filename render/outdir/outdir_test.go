package outdir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
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
