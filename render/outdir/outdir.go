// Package outdir writes a rendered site to a directory: DIR/<node>/<absolute
// path on that node> and DIR/manifest.json. It is the only place under
// render that touches the file system, and it never writes outside DIR.
// Like all of render it imports no network or SSH package, runs no
// program and imports nothing of remote, runtime, provision or lab.
package outdir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mailfleet/mailfleet/render"
)

// FormatVersion of manifest.json. Version 1 first had "action" (one name);
// it now has "actions" (every name, in the order they run), and no reader
// of the field existed, so the version stayed.
const FormatVersion = 1

// ManifestFile is one file of the manifest.
type ManifestFile struct {
	Node    string   `json:"node"`
	Path    string   `json:"path"`
	Mode    string   `json:"mode"`
	Owner   string   `json:"owner"`
	Group   string   `json:"group"`
	Actions []string `json:"actions,omitempty"` // the names of the file's actions, by Order
	// SHA256 is the content's digest, for the files without a secret
	// only: the manifest is readable by all, and the unsalted digest of a
	// password file would let anyone check guesses offline.
	SHA256    string `json:"sha256,omitempty"`
	Sensitive bool   `json:"sensitive"`
}

// Manifest lists every file of a build.
type Manifest struct {
	FormatVersion int            `json:"format_version"`
	Files         []ManifestFile `json:"files"`
}

// NewManifest describes out.
func NewManifest(out *render.Output) Manifest {
	m := Manifest{FormatVersion: FormatVersion, Files: []ManifestFile{}}
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			mf := ManifestFile{Node: h.Node, Path: f.Path, Mode: fmt.Sprintf("%04o", f.Mode.Perm()), Owner: f.Owner,
				Group: f.Group, Sensitive: f.Sensitive}
			if !f.Sensitive {
				sum := sha256.Sum256(f.Content)
				mf.SHA256 = hex.EncodeToString(sum[:])
			}
			for _, a := range f.Actions {
				mf.Actions = append(mf.Actions, a.Name)
			}
			m.Files = append(m.Files, mf)
		}
	}
	return m
}

// local maps a host file to its place under dir, refusing anything that
// would land outside it.
func local(dir, node, path string) (string, error) {
	if node == "" || strings.ContainsAny(node, "/\\") || node == "." || node == ".." {
		return "", fmt.Errorf("outdir: node name %q cannot be a directory name", node)
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("outdir: %s: path %q is not absolute", node, path)
	}
	clean := filepath.Clean(path)
	if clean != path {
		return "", fmt.Errorf("outdir: %s: path %q is not clean", node, path)
	}
	return filepath.Join(dir, node, clean), nil
}

// Current returns a reader of the previous build in dir, for render's
// Options.Current (zone serials only grow).
func Current(dir string) func(node, path string) ([]byte, bool) {
	return func(node, path string) ([]byte, bool) {
		p, err := local(dir, node, path)
		if err != nil {
			return nil, false
		}
		b, err := os.ReadFile(p)
		return b, err == nil
	}
}

// Write puts out under dir and removes the files of an earlier build that
// are no longer rendered. Files holding secrets get mode 0600 here, whatever
// their mode on the host.
func Write(dir string, out *render.Output) (Manifest, error) {
	m := NewManifest(out)
	old, _ := readManifest(filepath.Join(dir, "manifest.json"))
	keep := map[string]bool{}
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			p, err := local(dir, h.Node, f.Path)
			if err != nil {
				return m, err
			}
			keep[p] = true
			mode := os.FileMode(0o644)
			if f.Sensitive {
				mode = 0o600
			}
			if err := writeFile(p, f.Content, mode); err != nil {
				return m, err
			}
		}
	}
	for _, f := range old.Files {
		p, err := local(dir, f.Node, f.Path)
		if err != nil || keep[p] {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return m, fmt.Errorf("outdir: %w", err)
		}
		removeEmptyParents(filepath.Dir(p), dir)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	return m, writeFile(filepath.Join(dir, "manifest.json"), append(b, '\n'), 0o644)
}

func readManifest(path string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

// writeFile writes atomically: temp file in the same directory, fsync, rename.
func writeFile(path string, content []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("outdir: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mailfleet-*")
	if err != nil {
		return fmt.Errorf("outdir: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("outdir: %w", err)
	}
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("outdir: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("outdir: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("outdir: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

func removeEmptyParents(d, stop string) {
	for d != stop && strings.HasPrefix(d, stop) {
		if err := os.Remove(d); err != nil {
			return
		}
		d = filepath.Dir(d)
	}
}

// Nodes returns the node names of a manifest, sorted.
func (m Manifest) Nodes() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range m.Files {
		if !seen[f.Node] {
			seen[f.Node] = true
			out = append(out, f.Node)
		}
	}
	sort.Strings(out)
	return out
}
