package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/mailfleet/mailfleet/remote/sftp"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

// PendingPath is where a host records the actions an apply still has to
// run: written before the files change, each action removed once it
// succeeded, so that a failed or interrupted apply's actions run next time.
const PendingPath = "/var/lib/mailfleet/pending.json"

// LockPath is the file every apply locks (flock) on the host while it runs.
const LockPath = "/var/lib/mailfleet/apply.lock"

// Pending is the content of PendingPath.
type Pending struct {
	FormatVersion int       `json:"format_version"`
	Actions       []*Action `json:"actions"`
}

// view is one host seen through the Root prefix, for planning: reads and
// stats are cached (so render's Current and the plan see the same bytes)
// and recorded as a fingerprint, which a later apply compares with the
// host's state under the lock.
type view struct {
	h    *sftp.Host
	root string

	mu    sync.Mutex
	read  map[string][]byte // host path -> content; nil value: absent
	known map[string]bool   // path read (absent or not)
	fp    map[string]string // "read PATH", "stat PATH", "sum PATH" -> what was seen
}

func newView(h *sftp.Host, root string) *view {
	return &view{h: h, root: root, read: map[string][]byte{}, known: map[string]bool{}, fp: map[string]string{}}
}

func (v *view) record(k, val string) {
	v.mu.Lock()
	v.fp[k] = val
	v.mu.Unlock()
}

func (v *view) ReadFile(p string) ([]byte, bool, error) {
	v.mu.Lock()
	if v.known[p] {
		b := v.read[p]
		v.mu.Unlock()
		return b, b != nil, nil
	}
	v.mu.Unlock()
	b, ok, err := v.h.ReadFile(v.root + p)
	if err != nil {
		return nil, false, err
	}
	if ok && b == nil {
		b = []byte{}
	}
	v.mu.Lock()
	v.known[p], v.read[p] = true, b
	v.fp["read "+p] = fpContent(b, ok)
	v.mu.Unlock()
	return b, ok, nil
}

func fpContent(b []byte, ok bool) string {
	if !ok {
		return "absent"
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (v *view) Stat(p string) (sftp.Info, bool, error) {
	i, ok, err := v.h.Stat(v.root + p)
	if err != nil {
		return i, ok, err
	}
	v.record("stat "+p, fpStat(i, ok))
	return i, ok, nil
}

func fpStat(i sftp.Info, ok bool) string {
	if !ok {
		return "absent"
	}
	return fmt.Sprintf("%v %d %d %d %d", i.Mode, i.UID, i.GID, i.Size, i.MTime)
}

func (v *view) SHA256(ctx context.Context, p string) (string, bool, error) {
	s, ok, err := v.h.SHA256(ctx, v.root+p)
	if err != nil {
		return s, ok, err
	}
	if !ok {
		v.record("sum "+p, "absent")
	} else {
		v.record("sum "+p, s)
	}
	return s, ok, nil
}

func (v *view) UserID(n string) (int, error)  { return v.h.UserID(n) }
func (v *view) GroupID(n string) (int, error) { return v.h.GroupID(n) }

func (v *view) fingerprint() map[string]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := make(map[string]string, len(v.fp))
	for k, x := range v.fp {
		m[k] = x
	}
	return m
}

// changedSince returns the paths whose state differs from fp, read afresh.
func (v *view) changedSince(ctx context.Context, fp map[string]string) ([]string, error) {
	var changed []string
	for k, want := range fp {
		op, p, _ := strings.Cut(k, " ")
		var got string
		switch op {
		case "read":
			b, ok, err := v.h.ReadFile(v.root + p)
			if err != nil {
				return nil, err
			}
			got = fpContent(b, ok)
		case "stat":
			i, ok, err := v.h.Stat(v.root + p)
			if err != nil {
				return nil, err
			}
			got = fpStat(i, ok)
		case "sum":
			s, ok, err := v.h.SHA256(ctx, v.root+p)
			if err != nil {
				return nil, err
			}
			got = "absent"
			if ok {
				got = s
			}
		default:
			return nil, fmt.Errorf("unknown state record %q", k)
		}
		if got != want {
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	return slicesCompact(changed), nil
}

func slicesCompact(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// HostState is one host as read before rendering and planning.
type HostState struct {
	Node   string
	Target sshconn.Target
	// Err is why the host could not be reached or read; a host with an
	// error cannot be planned.
	Err error

	v *view
}

// Current returns the host's file p as read (render.Options.Current):
// files the manifest lists were read by Read already; others are read now
// and kept for the plan. A host that could not be read has no files.
func (s *HostState) Current(p string) ([]byte, bool) {
	if s == nil || s.v == nil {
		return nil, false
	}
	b, ok, err := s.v.ReadFile(p)
	if err != nil {
		return nil, false
	}
	return b, ok
}

// readManifest reads and checks the host's manifest.
func readManifest(fs HostFS, node string) (Manifest, bool, error) {
	m := Manifest{FormatVersion: ManifestVersion, Files: []ManifestFile{}}
	b, ok, err := fs.ReadFile(ManifestPath)
	if err != nil || !ok {
		return m, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("%s: %s: %w", node, ManifestPath, err)
	}
	if m.FormatVersion != ManifestVersion {
		return m, false, fmt.Errorf("%s: %s: format_version %d, this mailfleet reads %d", node, ManifestPath,
			m.FormatVersion, ManifestVersion)
	}
	return m, true, nil
}

// readPending reads PendingPath (no file: nothing pending).
func readPending(fs HostFS, node string) ([]*Action, error) {
	b, ok, err := fs.ReadFile(PendingPath)
	if err != nil || !ok {
		return nil, err
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", node, PendingPath, err)
	}
	return p.Actions, nil
}
