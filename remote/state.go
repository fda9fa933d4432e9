package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	iofs "io/fs"
	"path"
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
	if err := v.h.NoLinks(v.root, p); err != nil {
		return nil, false, err
	}
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
	if err := v.h.NoLinks(v.root, p); err != nil {
		return "", false, err
	}
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

// Limits on the files apply writes on a host and reads back: a file over
// them is not one apply wrote (corrupted, or put there by someone else) and
// is refused with an error naming the host and the file, unread.
const (
	// MaxManifestSize is the largest ManifestPath read: some 200 bytes a
	// managed file, so room for hundreds of thousands of files.
	MaxManifestSize = 64 << 20
	// MaxPendingSize is the largest PendingPath read.
	MaxPendingSize = 16 << 20
)

// readLimited reads p on fs, refusing a file over max bytes before reading
// it when its size can be known, and after otherwise.
func readLimited(fs HostFS, node, p string, max int64) ([]byte, bool, error) {
	var (
		i   sftp.Info
		ok  bool
		err error
	)
	if v, isView := fs.(*view); isView {
		v.mu.Lock()
		known := v.known[p]
		v.mu.Unlock()
		if !known {
			// Not recorded: the read below is, and a size of its own
			// would only make plans stale for a touch.
			i, ok, err = v.h.Stat(v.root + p)
		}
	} else {
		i, ok, err = fs.Stat(p)
	}
	if err != nil {
		return nil, false, err
	}
	if ok && i.Mode.IsRegular() && i.Size > max {
		return nil, false, fmt.Errorf("%s: %s: %d bytes, over the %d this mailfleet reads (not a file it wrote?); check the file, move it away to start afresh",
			node, p, i.Size, max)
	}
	if ok && !i.Mode.IsRegular() && i.Mode&iofs.ModeSymlink == 0 {
		return nil, false, fmt.Errorf("%s: %s: not a regular file (%v)", node, p, i.Mode)
	}
	b, ok, err := fs.ReadFile(p)
	if err != nil || !ok {
		return nil, ok, err
	}
	if int64(len(b)) > max {
		return nil, false, fmt.Errorf("%s: %s: %d bytes, over the %d this mailfleet reads (not a file it wrote?); check the file, move it away to start afresh",
			node, p, len(b), max)
	}
	return b, true, nil
}

// readManifest reads and checks the host's manifest.
func readManifest(fs HostFS, node string) (Manifest, bool, error) {
	b, ok, err := readLimited(fs, node, ManifestPath, MaxManifestSize)
	if err != nil || !ok {
		return Manifest{FormatVersion: ManifestVersion, Files: []ManifestFile{}}, false, err
	}
	m, err := decodeManifest(b)
	if err != nil {
		return Manifest{FormatVersion: ManifestVersion, Files: []ManifestFile{}}, false, fmt.Errorf("%s: %s: %w", node, ManifestPath, err)
	}
	return m, true, nil
}

// decodeManifest decodes and checks the content of a manifest: its
// format_version, and every path absolute, clean, not the root and listed
// once (a plan deletes the files it lists and no longer wants).
func decodeManifest(b []byte) (Manifest, error) {
	m := Manifest{FormatVersion: ManifestVersion, Files: []ManifestFile{}}
	if len(b) > MaxManifestSize {
		return m, fmt.Errorf("%d bytes, over the %d this mailfleet reads", len(b), MaxManifestSize)
	}
	var d Manifest
	if err := json.Unmarshal(b, &d); err != nil {
		return m, fmt.Errorf("not a manifest (corrupted?): %w", err)
	}
	if d.FormatVersion != ManifestVersion {
		return m, fmt.Errorf("format_version %d, this mailfleet reads %d", d.FormatVersion, ManifestVersion)
	}
	seen := make(map[string]bool, len(d.Files))
	for i, f := range d.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return m, fmt.Errorf("files[%d]: path %q is not an absolute and clean file path", i, f.Path)
		}
		if seen[f.Path] {
			return m, fmt.Errorf("files[%d]: %s is listed twice", i, f.Path)
		}
		seen[f.Path] = true
	}
	if d.Files == nil {
		d.Files = []ManifestFile{}
	}
	return d, nil
}

// PendingVersion is the format_version of PendingPath.
const PendingVersion = 1

// readPending reads PendingPath (no file: nothing pending).
func readPending(fs HostFS, node string) ([]*Action, error) {
	b, ok, err := readLimited(fs, node, PendingPath, MaxPendingSize)
	if err != nil || !ok {
		return nil, err
	}
	p, err := decodePending(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", node, PendingPath, err)
	}
	return p.Actions, nil
}

// decodePending decodes and checks the content of PendingPath: its
// format_version, and every action named.
func decodePending(b []byte) (*Pending, error) {
	if len(b) > MaxPendingSize {
		return nil, fmt.Errorf("%d bytes, over the %d this mailfleet reads", len(b), MaxPendingSize)
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("not a list of pending actions (corrupted?): %w", err)
	}
	if p.FormatVersion != PendingVersion {
		return nil, fmt.Errorf("format_version %d, this mailfleet reads %d", p.FormatVersion, PendingVersion)
	}
	for i, a := range p.Actions {
		if a == nil || a.Name == "" {
			return nil, fmt.Errorf("actions[%d]: an action without a name", i)
		}
	}
	return &p, nil
}
