package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/remote/sftp"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

func seedSavedPlan(t testing.TB) []byte {
	sp := &SavedPlan{FormatVersion: SavedPlanVersion, Version: "dev", Hosts: []SavedHost{{
		Host: Host{
			Node:     "mx1",
			Target:   sshconn.Target{Name: "mx1", Host: "10.0.0.1"},
			Packages: []string{"postfix"},
			Setup:    []string{"useradd -r mailfleet || true"},
			Files: []File{{Path: "/etc/mailfleet/mailfleetd.conf", Mode: 0o640, Owner: "root", Group: "mailfleet",
				Content: []byte("listen = :25\n"), Sensitive: true,
				Actions: []*Action{{Name: "reload", Command: "systemctl reload mailfleetd", Order: 1}}}},
		},
		Read:    map[string]string{"read /var/lib/mailfleet/manifest.json": "absent"},
		Changes: true,
	}}}
	b, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzReadSavedPlan: a plan file of any content never panics; what is
// accepted is a plan of this format_version whose hosts are named once and
// whose paths are clean, and survives being written and read again.
func FuzzReadSavedPlan(f *testing.F) {
	good := seedSavedPlan(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(bytes.Replace(good, []byte(`"format_version":"1"`), []byte(`"format_version":"2"`), 1))
	f.Add(bytes.Replace(good, []byte(`"format_version":"1"`), []byte(`"format_version":1`), 1))
	f.Add(bytes.Replace(good, []byte(`"/etc/mailfleet/mailfleetd.conf"`), []byte(`"../etc/passwd"`), 1))
	f.Add([]byte(`{"format_version":"1","hosts":[null,{}]}`))
	f.Add([]byte(`{"format_version":"1","hosts":[{"host":{"Node":"a","Files":[{"Path":"/x","Actions":[null]}]}}]}`))
	f.Add([]byte(`{"format_version":"1","hosts":[{"host":{"Node":"a"}},{"host":{"Node":"a"}}]}`))
	f.Add([]byte(`{"format_version":"1","hosts":5}`))
	f.Add([]byte(`{"format_version":null}`))
	f.Add([]byte("site \"example\" {\n  domain = \"example.org\"\n}\n"))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(strings.Repeat("[", 20000)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1 << 16
		sp, ok, err := readSavedPlan(bytes.NewReader(b), max)
		if sp != nil && (!ok || err != nil) {
			t.Fatalf("a plan with ok %v, err %v", ok, err)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("an empty error")
		}
		if len(b) > max && err == nil {
			t.Fatalf("%d bytes over the limit read", len(b))
		}
		if sp == nil {
			if err == nil && ok {
				t.Fatal("ok without a plan nor an error")
			}
			return
		}
		if sp.FormatVersion != SavedPlanVersion {
			t.Fatalf("format_version %q accepted", sp.FormatVersion)
		}
		nodes := map[string]bool{}
		for _, p := range sp.Plans() {
			if p.Node == "" || nodes[p.Node] || p.Host == nil || p.Host.Node != p.Node {
				t.Fatalf("plan for %q", p.Node)
			}
			nodes[p.Node] = true
			for _, f := range p.Host.Files {
				if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
					t.Fatalf("path %q accepted", f.Path)
				}
			}
		}
		again, err := json.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		sp2, ok, err := decodeSavedPlan(again)
		if err != nil || !ok {
			t.Fatalf("a plan written again does not read: %v", err)
		}
		if len(sp2.Hosts) != len(sp.Hosts) {
			t.Fatalf("%d hosts read again, %d before", len(sp2.Hosts), len(sp.Hosts))
		}
	})
}

func seedManifest(t testing.TB) []byte {
	m := Manifest{FormatVersion: ManifestVersion, Files: []ManifestFile{
		{Path: "/etc/mailfleet/mailfleetd.conf", Mode: "0640", Owner: "root", Group: "mailfleet", Actions: []string{"reload"}, SHA256: strings.Repeat("ab", 32)},
		{Path: "/usr/local/bin/mailfleetd", Mode: "0755", Owner: "root", Group: "root", SHA256: strings.Repeat("cd", 32), Size: 30 << 20, MTime: 1700000000},
	}}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeManifest: a host's manifest of any content never panics; what
// is accepted has this format_version and only absolute, clean paths,
// each once, and decodes the same once written again.
func FuzzDecodeManifest(f *testing.F) {
	good := seedManifest(f)
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add(bytes.Replace(good, []byte(`"format_version": 1`), []byte(`"format_version": 2`), 1))
	f.Add(bytes.Replace(good, []byte(`"/usr/local/bin/mailfleetd"`), []byte(`"/etc/mailfleet/mailfleetd.conf"`), 1))
	f.Add(bytes.Replace(good, []byte(`"/usr/local/bin/mailfleetd"`), []byte(`"usr/../../etc/shadow"`), 1))
	f.Add([]byte(`{"format_version":1,"files":[{"path":"/"}]}`))
	f.Add([]byte(`{"format_version":1,"files":null}`))
	f.Add([]byte(`{"files":[{"path":"/etc/x"}]}`))
	f.Add([]byte(`{"format_version":1,"files":[null]}`))
	f.Add([]byte(`{"format_version":1e400}`))
	f.Add([]byte(`null`))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b)
		if err != nil {
			if m.FormatVersion != ManifestVersion || m.Files == nil || len(m.Files) != 0 {
				t.Fatalf("a refused manifest comes back as %+v", m)
			}
			return
		}
		if m.FormatVersion != ManifestVersion || m.Files == nil {
			t.Fatalf("accepted %+v", m)
		}
		seen := map[string]bool{}
		for _, f := range m.Files {
			if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" || seen[f.Path] {
				t.Fatalf("path %q accepted", f.Path)
			}
			seen[f.Path] = true
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeManifest(again)
		if err != nil {
			t.Fatalf("a manifest written again does not read: %v", err)
		}
		if !reflect.DeepEqual(normManifest(m), normManifest(m2)) {
			t.Fatalf("read again %+v, was %+v", m2, m)
		}
	})
}

// normManifest: nil and empty action lists are the same (omitempty).
func normManifest(m Manifest) Manifest {
	n := Manifest{FormatVersion: m.FormatVersion}
	for _, f := range m.Files {
		if len(f.Actions) == 0 {
			f.Actions = nil
		}
		n.Files = append(n.Files, f)
	}
	return n
}

// FuzzDecodePending: a host's pending actions file of any content never
// panics; what is accepted has this format_version and named actions only.
func FuzzDecodePending(f *testing.F) {
	good, err := json.MarshalIndent(Pending{FormatVersion: PendingVersion, Actions: []*Action{
		{Name: "reload", Command: "systemctl reload mailfleetd", Order: 1},
		{Name: "newaliases", Command: "newaliases", Order: 0},
	}}, "", "  ")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"format_version":1,"actions":[null]}`))
	f.Add([]byte(`{"format_version":1,"actions":[{}]}`))
	f.Add([]byte(`{"format_version":1,"actions":{}}`))
	f.Add([]byte(`{"format_version":2,"actions":[]}`))
	f.Add([]byte(`{"actions":[{"Name":"x"}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePending(b)
		if err != nil {
			if p != nil {
				t.Fatal("an error with pending actions")
			}
			return
		}
		if p == nil || p.FormatVersion != PendingVersion {
			t.Fatalf("accepted %+v", p)
		}
		for _, a := range p.Actions {
			if a == nil || a.Name == "" {
				t.Fatalf("an action without a name accepted: %+v", p.Actions)
			}
		}
	})
}

// fakeFS is a host's files for readManifest and readPending.
type fakeFS struct {
	files map[string][]byte
	size  map[string]int64 // Stat's size, if not len(files[p])
	mode  map[string]fs.FileMode
	reads []string
}

func (f *fakeFS) ReadFile(p string) ([]byte, bool, error) {
	f.reads = append(f.reads, p)
	b, ok := f.files[p]
	return b, ok, nil
}

func (f *fakeFS) Stat(p string) (sftp.Info, bool, error) {
	b, ok := f.files[p]
	if !ok {
		return sftp.Info{}, false, nil
	}
	i := sftp.Info{Size: int64(len(b)), Mode: f.mode[p]}
	if s, ok := f.size[p]; ok {
		i.Size = s
	}
	return i, true, nil
}

func (f *fakeFS) UserID(string) (int, error)  { return 0, errors.New("no users") }
func (f *fakeFS) GroupID(string) (int, error) { return 0, errors.New("no groups") }

func TestReadManifestAndPendingLimits(t *testing.T) {
	wantErr := func(err error, parts ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want one with %q", parts)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not say %q", err, p)
			}
		}
	}

	// A huge manifest is refused unread.
	h := &fakeFS{files: map[string][]byte{ManifestPath: seedManifest(t)}, size: map[string]int64{ManifestPath: 10 << 30}}
	_, ok, err := readManifest(h, "mx1")
	wantErr(err, "mx1", ManifestPath, "over")
	if ok || len(h.reads) != 0 {
		t.Errorf("ok %v, reads %v", ok, h.reads)
	}
	// One that grew between the stat and the read too.
	h = &fakeFS{files: map[string][]byte{PendingPath: bytes.Repeat([]byte(" "), MaxPendingSize+1)}, size: map[string]int64{PendingPath: 2}}
	_, err = readPending(h, "mx1")
	wantErr(err, "mx1", PendingPath, "over")
	// A FIFO would block the read.
	h = &fakeFS{files: map[string][]byte{PendingPath: nil}, mode: map[string]fs.FileMode{PendingPath: fs.ModeNamedPipe}}
	_, err = readPending(h, "mx1")
	wantErr(err, "mx1", PendingPath, "not a regular file")

	h = &fakeFS{files: map[string][]byte{ManifestPath: []byte(`{"format_version":1,"files":[{"path":"/etc/x"`)}}
	_, _, err = readManifest(h, "mx1")
	wantErr(err, "mx1", ManifestPath, "corrupted")
	h = &fakeFS{files: map[string][]byte{PendingPath: []byte(`{"format_version":1,"actions":[null]}`)}}
	_, err = readPending(h, "db2")
	wantErr(err, "db2", PendingPath, "without a name")

	h = &fakeFS{files: map[string][]byte{ManifestPath: seedManifest(t), PendingPath: []byte(`{"format_version":1,"actions":[{"Name":"reload"}]}`)}}
	m, ok, err := readManifest(h, "mx1")
	if err != nil || !ok || len(m.Files) != 2 {
		t.Errorf("a good manifest: %+v %v %v", m, ok, err)
	}
	acts, err := readPending(h, "mx1")
	if err != nil || len(acts) != 1 || acts[0].Name != "reload" {
		t.Errorf("good pending actions: %+v %v", acts, err)
	}
	h = &fakeFS{}
	if m, ok, err := readManifest(h, "mx1"); err != nil || ok || m.Files == nil {
		t.Errorf("no manifest: %+v %v %v", m, ok, err)
	}
}

func TestReadSavedPlanLimits(t *testing.T) {
	good := seedSavedPlan(t)
	if sp, ok, err := ReadSavedPlan(bytes.NewReader(good)); err != nil || !ok || len(sp.Hosts) != 1 {
		t.Fatalf("a good plan: %v %v", ok, err)
	}
	if _, ok, err := readSavedPlan(bytes.NewReader(good), int64(len(good)-1)); err == nil || !ok || !strings.Contains(err.Error(), "over") {
		t.Errorf("a plan over the limit: %v %v", ok, err)
	}
	if _, ok, err := ReadSavedPlan(bytes.NewReader(good[:len(good)-10])); err == nil || !ok || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("a plan cut short: %v %v", ok, err)
	}
	if _, ok, err := ReadSavedPlan(strings.NewReader("site \"x\" {}\n")); err != nil || ok {
		t.Errorf("a topology: %v %v", ok, err)
	}
}
