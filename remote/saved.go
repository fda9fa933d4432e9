package remote

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
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

// ReadSavedPlan reads a plan file; ok is false (with a nil error) when r
// is not one (a topology, say).
func ReadSavedPlan(r io.Reader) (sp *SavedPlan, ok bool, err error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, false, err
	}
	var probe struct {
		FormatVersion *string     `json:"format_version"`
		Hosts         []SavedHost `json:"hosts"`
	}
	if json.Unmarshal(b, &probe) != nil || probe.FormatVersion == nil {
		return nil, false, nil
	}
	if *probe.FormatVersion != SavedPlanVersion {
		return nil, true, fmt.Errorf("saved plan format_version %q; this mailfleet reads %q", *probe.FormatVersion, SavedPlanVersion)
	}
	sp = &SavedPlan{}
	if err := json.Unmarshal(b, sp); err != nil {
		return nil, true, err
	}
	return sp, true, nil
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
