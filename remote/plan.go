package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/mailfleet/mailfleet/remote/sftp"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

// Input types. remote defines its own small types rather than importing
// render (which would bring render's renderers along); the command that
// wires render to remote converts render.Output into these, field for
// field.

// Action is a command to run on the host when one of its files changes.
type Action struct {
	Name    string // stable, short; plans and the manifest show it
	Command string // run with the login shell
	Order   int    // lower first
}

// File is one file the host should have.
type File struct {
	Path    string // absolute, clean
	Mode    fs.FileMode
	Owner   string // user name or number; empty: the login user
	Group   string
	Content []byte
	// Sum, when set, is the hex SHA-256 of Content, computed once by the
	// caller for contents shared by many hosts (a binary); empty: computed
	// when needed.
	Sum       string
	Sensitive bool      // never shown
	Actions   []*Action // run (by Order, across hosts) when it changes
}

// Host is everything one host should get: its files, the Debian packages
// they need, and setup commands (idempotent: create a system user, a
// directory) run before the files are written.
type Host struct {
	Node     string
	Target   sshconn.Target
	Packages []string
	Setup    []string
	Files    []File
}

// ManifestPath is where each host records the files mailfleet manages on it.
const ManifestPath = "/var/lib/mailfleet/manifest.json"

// ManifestVersion is the format_version of the host manifest.
const ManifestVersion = 1

// Manifest lists the files mailfleet wrote on one host, so that files no
// longer rendered are deleted. It is the per-host counterpart of
// render/outdir's manifest (same fields minus the node).
type Manifest struct {
	FormatVersion int            `json:"format_version"`
	Files         []ManifestFile `json:"files"`
}

// ManifestFile is one managed file.
type ManifestFile struct {
	Path      string   `json:"path"`
	Mode      string   `json:"mode"`
	Owner     string   `json:"owner"`
	Group     string   `json:"group"`
	Actions   []string `json:"actions,omitempty"`
	SHA256    string   `json:"sha256"`
	Sensitive bool     `json:"sensitive"`
	// Size and MTime are recorded for large files (over LargeFile) as
	// written: a later plan that finds the file with this size and time
	// and the same desired SHA-256 takes it as unchanged without hashing
	// it on the host (rsync's quick check).
	Size  int64 `json:"size,omitempty"`
	MTime int64 `json:"mtime,omitempty"`
}

// sum is the hex SHA-256 of f's content.
func (f *File) sum() string {
	if f.Sum != "" {
		return f.Sum
	}
	s := sha256.Sum256(f.Content)
	return hex.EncodeToString(s[:])
}

// NewManifest describes files.
func NewManifest(files []File) Manifest {
	m := Manifest{FormatVersion: ManifestVersion, Files: []ManifestFile{}}
	for _, f := range files {
		mf := ManifestFile{Path: f.Path, Mode: fmt.Sprintf("%04o", f.Mode.Perm()), Owner: f.Owner, Group: f.Group,
			SHA256: f.sum(), Sensitive: f.Sensitive}
		for _, a := range f.Actions {
			mf.Actions = append(mf.Actions, a.Name)
		}
		m.Files = append(m.Files, mf)
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	return m
}

// HostFS is what planning needs of a host; *sftp.Host has it.
type HostFS interface {
	ReadFile(p string) ([]byte, bool, error)
	Stat(p string) (sftp.Info, bool, error)
	UserID(name string) (int, error)
	GroupID(name string) (int, error)
}

var _ HostFS = (*sftp.Host)(nil)

// Kind is what a plan does to a file.
type Kind string

const (
	Unchanged Kind = " "
	Create    Kind = "+"
	Update    Kind = "~"
	Delete    Kind = "-"
)

// FileChange is the plan for one file.
type FileChange struct {
	Path      string
	Kind      Kind
	Sensitive bool
	// Reasons says what differs for an update: "content", "mode 0644 ->
	// 0600", "owner", …
	Reasons []string
	// Diff is a unified diff of the content for creates and updates of
	// text files that are not sensitive; empty otherwise.
	Diff    string
	Actions []string // the actions this change triggers
	File    *File    // desired file; nil for deletes
}

// HostPlan is the plan for one host.
type HostPlan struct {
	Node    string
	Changes []FileChange // sorted by path; Unchanged included
	// Current is the manifest found on the host (empty if none).
	Current Manifest
	// ManifestChanged: the manifest must be rewritten even if no file
	// changes (a managed file vanished, or the manifest is missing).
	ManifestChanged bool
	// Pending are actions a failed apply left to run (PendingPath); the
	// next apply runs them even when no file changed.
	Pending []*Action
	// Install are the host's packages that are not installed yet (filled
	// by Engine.Plan, which checks them with dpkg-query).
	Install []string
	// Host is the desired state the plan was made for, and Read what the
	// plan saw on the host (a fingerprint of every file, stat and hash it
	// read); Engine.Plan fills both, Engine.Apply needs them.
	Host *Host
	Read map[string]string
}

// HasChanges reports whether applying the plan would do anything.
func (p *HostPlan) HasChanges() bool {
	a, c, d := p.Counts()
	return a+c+d > 0 || p.ManifestChanged
}

// onlyPending: the plan's only changes are actions left pending.
func (p *HostPlan) onlyPending() bool {
	a, c, d := p.Counts()
	return len(p.Pending) > 0 && a+c+d == len(p.Pending) && !p.ManifestChanged
}

// Counts returns the numbers of creates, updates and deletes.
func (p *HostPlan) Counts() (add, change, destroy int) {
	for _, c := range p.Changes {
		switch c.Kind {
		case Create:
			add++
		case Update:
			change++
		case Delete:
			destroy++
		}
	}
	add += len(p.Install)
	change += len(p.Pending)
	return
}

// PlanHost compares the desired files with the host's files and its
// manifest at manifestPath (ManifestPath if empty). It only reads.
func PlanHost(node string, h HostFS, desired []File, manifestPath string) (*HostPlan, error) {
	if manifestPath == "" {
		manifestPath = ManifestPath
	}
	hp := &HostPlan{Node: node, Current: Manifest{FormatVersion: ManifestVersion, Files: []ManifestFile{}}}
	b, ok, err := h.ReadFile(manifestPath)
	if err != nil {
		return nil, err
	}
	if ok {
		m, err := decodeManifest(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", node, manifestPath, err)
		}
		hp.Current = m
	}
	old := map[string]ManifestFile{}
	for _, f := range hp.Current.Files {
		old[f.Path] = f
	}
	want := map[string]bool{}
	files := append([]File(nil), desired...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for i := range files {
		f := &files[i]
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("%s: path %q is not absolute and clean", node, f.Path)
		}
		if want[f.Path] {
			return nil, fmt.Errorf("%s: %s given twice", node, f.Path)
		}
		want[f.Path] = true
		c, err := planFile(h, f, old[f.Path])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
		if _, managed := old[f.Path]; !managed {
			hp.ManifestChanged = true
		}
		hp.Changes = append(hp.Changes, c)
	}
	for _, mf := range hp.Current.Files {
		if want[mf.Path] {
			continue
		}
		hp.ManifestChanged = true
		_, exists, err := h.Stat(mf.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
		if exists {
			hp.Changes = append(hp.Changes, FileChange{Path: mf.Path, Kind: Delete, Sensitive: mf.Sensitive})
		}
	}
	if !ok {
		hp.ManifestChanged = true
	}
	if nm := NewManifest(files); !sameManifest(nm, hp.Current) {
		hp.ManifestChanged = true
	}
	sort.Slice(hp.Changes, func(i, j int) bool { return hp.Changes[i].Path < hp.Changes[j].Path })
	return hp, nil
}

func sameManifest(a, b Manifest) bool {
	if len(a.Files) != len(b.Files) {
		return false
	}
	bs := append([]ManifestFile(nil), b.Files...)
	sort.Slice(bs, func(i, j int) bool { return bs[i].Path < bs[j].Path })
	for i := range a.Files {
		x, y := a.Files[i], bs[i]
		x.Size, x.MTime, y.Size, y.MTime = 0, 0, 0, 0
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func planFile(h HostFS, f *File, rec ManifestFile) (FileChange, error) {
	c := FileChange{Path: f.Path, File: f, Sensitive: f.Sensitive || rec.Sensitive}
	for _, a := range f.Actions {
		c.Actions = append(c.Actions, a.Name)
	}
	info, exists, err := h.Stat(f.Path)
	if err != nil {
		return c, err
	}
	if !exists {
		c.Kind = Create
		if len(f.Content) > LargeFile {
			c.Diff = BinaryDiff
		} else if !c.Sensitive {
			c.Diff = diff(f.Path, nil, f.Content, false)
		}
		return c, nil
	}
	if !info.Mode.IsRegular() {
		return c, fmt.Errorf("%s is a %v, not a regular file: refusing to replace it", f.Path, info.Mode.Type())
	}
	same, cur, err := sameContent(h, f, info, rec)
	if err != nil {
		return c, err
	}
	if !same && cur == nil {
		c.Reasons = append(c.Reasons, "content")
		c.Diff = BinaryDiff
	} else if !same {
		c.Reasons = append(c.Reasons, "content")
		if !c.Sensitive {
			c.Diff = diff(f.Path, cur, f.Content, true)
			if c.Diff == "" {
				c.Diff = "(only the final newline differs)\n"
			}
		}
	}
	if info.Mode.Perm() != f.Mode.Perm() || info.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != f.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) {
		c.Reasons = append(c.Reasons, fmt.Sprintf("mode %04o -> %04o", info.Mode.Perm(), f.Mode.Perm()))
	}
	if f.Owner != "" {
		uid, err := h.UserID(f.Owner)
		if err != nil {
			// Not on the host yet: a setup command or a package makes it.
			c.Reasons = append(c.Reasons, fmt.Sprintf("owner %d -> %s (not yet a user)", info.UID, f.Owner))
		} else if uid != info.UID {
			c.Reasons = append(c.Reasons, fmt.Sprintf("owner %d -> %s", info.UID, f.Owner))
		}
	}
	if f.Group != "" {
		gid, err := h.GroupID(f.Group)
		if err != nil {
			c.Reasons = append(c.Reasons, fmt.Sprintf("group %d -> %s (not yet a group)", info.GID, f.Group))
		} else if gid != info.GID {
			c.Reasons = append(c.Reasons, fmt.Sprintf("group %d -> %s", info.GID, f.Group))
		}
	}
	c.Kind = Unchanged
	if len(c.Reasons) > 0 {
		c.Kind = Update
	}
	return c, nil
}

// LargeFile is the size above which a file is compared by its SHA-256,
// computed on the host (HostSummer), rather than downloaded.
const LargeFile = 1 << 20

// BinaryDiff stands for the diff of content that is not text.
const BinaryDiff = "(binary)\n"

// HostSummer is implemented by hosts that can hash a file themselves
// (*sftp.Host); PlanHost uses it for files over LargeFile.
type HostSummer interface {
	SHA256(ctx context.Context, p string) (sum string, exists bool, err error)
}

// sameContent compares f with the host's file; cur is the host's content
// when it was read (nil when compared by hash).
func sameContent(h HostFS, f *File, info sftp.Info, rec ManifestFile) (same bool, cur []byte, err error) {
	if hs, ok := h.(HostSummer); ok && (info.Size > LargeFile || len(f.Content) > LargeFile) {
		if info.Size != int64(len(f.Content)) {
			return false, nil, nil
		}
		want := f.sum()
		// Quick check: the file is as mailfleet wrote it (size and time)
		// and mailfleet wrote what is wanted now.
		if rec.SHA256 == want && rec.MTime != 0 && rec.Size == info.Size && rec.MTime == info.MTime {
			return true, nil, nil
		}
		sum, _, err := hs.SHA256(context.Background(), f.Path)
		if err != nil {
			return false, nil, err
		}
		return sum == want, nil, nil
	}
	cur, _, err = h.ReadFile(f.Path)
	if err != nil {
		return false, nil, err
	}
	return bytes.Equal(cur, f.Content), cur, nil
}

func isText(b []byte) bool { return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 }

func diff(p string, a, b []byte, existed bool) string {
	if !isText(a) || !isText(b) {
		return BinaryDiff
	}
	from := p
	if !existed {
		from = "/dev/null"
	}
	s, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: splitLines(a), B: splitLines(b),
		FromFile: from, ToFile: p, Context: 3,
	})
	if err != nil {
		return fmt.Sprintf("(no diff: %v)\n", err)
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// splitLines keeps line ends, with no empty line after the last one (a
// missing final newline is added, so such a last line shows as equal).
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	l := strings.SplitAfter(string(b), "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	} else {
		l[len(l)-1] += "\n"
	}
	return l
}

// SensitiveValue stands for the content of a sensitive file.
const SensitiveValue = "(sensitive value)"

// Format writes plans in the form `plan` shows: per host, + create, ~ update
// with a unified diff, - delete, then the totals.
func Format(w io.Writer, plans []*HostPlan) error {
	var add, change, destroy int
	var b strings.Builder
	for _, hp := range plans {
		a, c, d := hp.Counts()
		if a+c+d == 0 && hp.ManifestChanged {
			// Only the record changes (files taken over as they are, or
			// managed files that vanished).
			fmt.Fprintf(&b, "%s:\n  ~ %s (the list of managed files)\n\n", hp.Node, ManifestPath)
			change++
			continue
		}
		add, change, destroy = add+a, change+c, destroy+d
		if a+c+d == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", hp.Node)
		for _, p := range hp.Install {
			fmt.Fprintf(&b, "  + package %s\n", p)
		}
		for _, fc := range hp.Changes {
			if fc.Kind == Unchanged {
				continue
			}
			fmt.Fprintf(&b, "  %s %s", fc.Kind, fc.Path)
			if len(fc.Reasons) > 0 {
				fmt.Fprintf(&b, " (%s)", strings.Join(fc.Reasons, ", "))
			}
			if len(fc.Actions) > 0 && fc.Kind != Delete {
				q := make([]string, len(fc.Actions))
				for i, a := range fc.Actions {
					q[i] = strconv.Quote(a)
				}
				fmt.Fprintf(&b, " then %s", strings.Join(q, ", "))
			}
			b.WriteString("\n")
			switch {
			case fc.Kind == Delete:
			case fc.Sensitive && (fc.Kind == Create || containsContent(fc.Reasons)):
				fmt.Fprintf(&b, "      %s\n", SensitiveValue)
			case fc.Diff != "":
				for _, l := range strings.SplitAfter(strings.TrimSuffix(fc.Diff, "\n"), "\n") {
					b.WriteString("      " + strings.TrimSuffix(l, "\n") + "\n")
				}
			}
		}
		for _, a := range hp.Pending {
			fmt.Fprintf(&b, "  ~ action %s (pending from a failed apply)\n", a.Name)
		}
		b.WriteString("\n")
	}
	if add+change+destroy == 0 {
		b.WriteString("No changes.\n")
	} else {
		fmt.Fprintf(&b, "Plan: %d to add, %d to change, %d to destroy.\n", add, change, destroy)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func containsContent(r []string) bool {
	for _, x := range r {
		if x == "content" {
			return true
		}
	}
	return false
}
