package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
)

// SavedPlanVersion is the format_version of a saved plan.
const SavedPlanVersion = "1"

// SavedPlan is what `plan -out FILE` writes and `apply FILE` reads: the
// desired state of every host with changes, and what the plan saw on it.
// It holds file contents, secrets included: it is written mode 0600.
type SavedPlan struct {
	FormatVersion string      `json:"format_version"`
	Version       string      `json:"mailfleet_version"` // the mailfleet that made it
	Hosts         []SavedHost `json:"hosts"`
}

// SavedHost is one host of a saved plan.
type SavedHost struct {
	Host    Host              `json:"host"`
	Read    map[string]string `json:"read"`
	Changes bool              `json:"changes"`
}

// NewSavedPlan keeps plans (those made by Engine.Plan).
func NewSavedPlan(version string, plans []*HostPlan) (*SavedPlan, error) {
	sp := &SavedPlan{FormatVersion: SavedPlanVersion, Version: version, Hosts: []SavedHost{}}
	for _, p := range plans {
		if p.Host == nil {
			return nil, fmt.Errorf("%s: plan without desired state", p.Node)
		}
		sp.Hosts = append(sp.Hosts, SavedHost{Host: *p.Host, Read: p.Read, Changes: p.HasChanges()})
	}
	return sp, nil
}

// WriteFile writes the plan to path, mode 0600, atomically.
func (sp *SavedPlan) WriteFile(path string) error {
	b, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mailfleet-plan-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// MaxSavedPlanSize is the largest saved plan ReadSavedPlan reads. A plan
// holds every changed host's files, binaries included (base64), so it is
// large; a file over this is refused, unread, with an error.
const MaxSavedPlanSize = 4 << 30

// ReadSavedPlan reads a plan file; ok is false (with a nil error) when r
// is not one (a topology, say). A file that is one but cannot be used
// (corrupted, truncated, another format_version, over MaxSavedPlanSize)
// is an error, with ok true.
func ReadSavedPlan(r io.Reader) (sp *SavedPlan, ok bool, err error) {
	return readSavedPlan(r, MaxSavedPlanSize)
}

func readSavedPlan(r io.Reader, max int64) (sp *SavedPlan, ok bool, err error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > max {
		if looksLikePlan(b) {
			return nil, true, fmt.Errorf("saved plan: over %d bytes, the most this mailfleet reads", max)
		}
		return nil, false, fmt.Errorf("over %d bytes: neither a saved plan this mailfleet reads nor a topology", max)
	}
	return decodeSavedPlan(b)
}

// looksLikePlan: b is JSON that opens with a format_version, as a plan
// file does, even if it is cut short.
func looksLikePlan(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 4096 {
		b = b[:4096]
	}
	return bytes.HasPrefix(b, []byte("{")) && bytes.Contains(b, []byte(`"format_version"`))
}

// decodeSavedPlan decodes and checks a saved plan's content.
func decodeSavedPlan(b []byte) (sp *SavedPlan, ok bool, err error) {
	var probe struct {
		FormatVersion *json.RawMessage `json:"format_version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		if looksLikePlan(b) {
			return nil, true, fmt.Errorf("saved plan: corrupted or cut short: %w", err)
		}
		return nil, false, nil
	}
	if probe.FormatVersion == nil {
		return nil, false, nil
	}
	var v string
	if err := json.Unmarshal(*probe.FormatVersion, &v); err != nil {
		return nil, true, fmt.Errorf("saved plan: format_version %s is not a string; this mailfleet reads %q", *probe.FormatVersion, SavedPlanVersion)
	}
	if v != SavedPlanVersion {
		return nil, true, fmt.Errorf("saved plan format_version %q; this mailfleet reads %q", v, SavedPlanVersion)
	}
	sp = &SavedPlan{}
	if err := json.Unmarshal(b, sp); err != nil {
		return nil, true, fmt.Errorf("saved plan: %w", err)
	}
	if err := sp.check(); err != nil {
		return nil, true, fmt.Errorf("saved plan: %w", err)
	}
	return sp, true, nil
}

// check: every host named once, every file path absolute and clean, every
// action named.
func (sp *SavedPlan) check() error {
	seen := map[string]bool{}
	for i, h := range sp.Hosts {
		n := h.Host.Node
		if n == "" {
			return fmt.Errorf("hosts[%d]: no node name", i)
		}
		if seen[n] {
			return fmt.Errorf("hosts[%d]: %s is there twice", i, n)
		}
		seen[n] = true
		for j, f := range h.Host.Files {
			if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
				return fmt.Errorf("%s: files[%d]: path %q is not an absolute and clean file path", n, j, f.Path)
			}
			for k, a := range f.Actions {
				if a == nil || a.Name == "" {
					return fmt.Errorf("%s: %s: actions[%d]: an action without a name", n, f.Path, k)
				}
			}
		}
	}
	return nil
}

// Plans returns the saved plans in the form Engine.Apply takes: each with
// its desired state and what the plan saw; the changes themselves are
// worked out again under each host's lock, once its state is found
// unchanged.
func (sp *SavedPlan) Plans() []*HostPlan {
	var out []*HostPlan
	for i := range sp.Hosts {
		h := sp.Hosts[i].Host
		// ManifestChanged stands for "the plan had changes" until the
		// host is planned again.
		out = append(out, &HostPlan{Node: h.Node, Host: &h, Read: sp.Hosts[i].Read, ManifestChanged: sp.Hosts[i].Changes})
	}
	return out
}
