package spec_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// fixtureEnv is the environment the fixtures are validated in: env() and
// MAILFLEET_VAR_* read it. T_UNSET and every other name are unset.
var fixtureEnv = map[string]string{
	"T_SECRET":       "site-secret-value-for-the-tests",
	"T_FENCE":        "fence-password-value",
	"T_LDAP_ADMIN":   "ldap-admin-value",
	"T_LDAP_SERVICE": "ldap-service-value",
	"T_ADMIN":        "instance-admin-value",
	"T_VRRP":         "vrrp-value",
	"T_BIND":         "bind-password-value",
	// Two variables with one value: a service password equal to the admin's.
	"T_SAME_A": "same-password-value",
	"T_SAME_B": "same-password-value",
	// Set, but empty.
	"T_EMPTY": "",
	// Variables of testdata/valid/variables.hcl.
	"MAILFLEET_VAR_front_cidr":    "192.168.7.0/24",
	"MAILFLEET_VAR_vrrp_password": "vrrp-from-variable",
	"MAILFLEET_VAR_site_secret":   "site-secret-from-variable",
}

func lookupFixtureEnv(name string) (string, bool) {
	v, ok := fixtureEnv[name]
	return v, ok
}

// topologyMarker announces a diagnostic about the whole topology (one with
// no source range, such as "Missing directory"), which spectest.Expected
// cannot place on a line: "# TOPOLOGY ERROR: <summary>" anywhere in a file.
var topologyMarker = regexp.MustCompile(`# TOPOLOGY (ERROR|WARNING): ([^#]+)`)

// expected is spectest.Expected plus the topology markers, in the form of
// spectest.Diagnose ("-:0: severity: summary").
func expected(t *testing.T, path string) []string {
	t.Helper()
	want, err := spectest.Expected(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range hclFiles(t, path) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			for _, m := range topologyMarker.FindAllStringSubmatch(sc.Text(), -1) {
				want = append(want, fmt.Sprintf("-:0: %s: %s", strings.ToLower(m[1]), strings.TrimSpace(m[2])))
			}
		}
	}
	sort.Strings(want)
	return want
}

func hclFiles(t *testing.T, path string) []string {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsDir() {
		return []string{path}
	}
	files, err := filepath.Glob(filepath.Join(path, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// fixtures lists the topologies of dir: its .hcl files and its
// subdirectories (directory topologies).
func fixtures(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".hcl") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	return out
}

// checkFixture compares the diagnostics of the topology at path with its
// markers, and checks what every diagnostic must satisfy.
func checkFixture(t *testing.T, path string) spec.Diagnostics {
	t.Helper()
	want := expected(t, path)
	got, ds := spectest.Diagnose(path, lookupFixtureEnv)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics differ from the markers\n got:\n  %s\nwant:\n  %s\nfull:\n%s",
			strings.Join(got, "\n  "), strings.Join(want, "\n  "), describe(ds))
	}
	for _, d := range ds {
		if strings.TrimSpace(d.Summary) == "" || strings.TrimSpace(d.Detail) == "" {
			t.Errorf("diagnostic without summary or detail: %#v", d)
		}
		for _, r := range []*spec.Range{d.Subject, d.Related} {
			if r != nil && (r.File == "" || r.Line < 1 || r.Col < 1) {
				t.Errorf("%s: %q has a range that points nowhere: %+v", path, d.Summary, *r)
			}
		}
		for name, v := range fixtureEnv {
			if len(v) > 0 && !strings.HasPrefix(name, "MAILFLEET_VAR_front") && strings.Contains(d.Summary+d.Detail, v) {
				t.Errorf("%s: the value of %s shows in %q: %s", path, name, d.Summary, d.Detail)
			}
		}
	}
	return ds
}

func describe(ds spec.Diagnostics) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "  %s\n", d.Error())
	}
	return b.String()
}

// TestInvalidFixtures checks that every mistake of testdata/invalid is
// reported at its line, and nothing else.
func TestInvalidFixtures(t *testing.T) {
	for _, path := range fixtures(t, filepath.Join("testdata", "invalid")) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if want := expected(t, path); len(want) == 0 {
				t.Error("an invalid fixture must announce at least one diagnostic")
			}
			ds := checkFixture(t, path)
			if !ds.HasErrors() && !strings.HasPrefix(filepath.Base(path), "warn-") {
				t.Error("no error: a fixture of testdata/invalid must be invalid (name warning-only fixtures warn-*)")
			}
		})
	}
}

// TestValidFixtures checks that the topologies of testdata/valid have no
// error and exactly the warnings marked in them.
func TestValidFixtures(t *testing.T) {
	for _, path := range fixtures(t, filepath.Join("testdata", "valid")) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			ds := checkFixture(t, path)
			if ds.HasErrors() {
				t.Errorf("errors in a valid topology:\n%s", describe(ds))
			}
		})
	}
}

// TestDuplicateRelated checks that a duplicate points at the first
// definition, in another file of the same topology.
func TestDuplicateRelated(t *testing.T) {
	dir := filepath.Join("testdata", "invalid", "duplicate-across-files")
	_, ds := spectest.Diagnose(dir, lookupFixtureEnv)
	found := false
	for _, d := range ds {
		if d.Summary != "Duplicate node" {
			continue
		}
		found = true
		if d.Related == nil {
			t.Fatalf("no related range: %#v", d)
		}
		if filepath.Base(d.Related.File) != "a.hcl" || d.Related.Line != 3 {
			t.Errorf("related range %+v, want a.hcl line 3", *d.Related)
		}
		if filepath.Base(d.Subject.File) != "b.hcl" || d.Subject.Line != 3 {
			t.Errorf("subject %+v, want b.hcl line 3", *d.Subject)
		}
		if !strings.Contains(d.Detail, "a.hcl:3") {
			t.Errorf("detail does not say where the first one is: %s", d.Detail)
		}
	}
	if !found {
		t.Fatalf("no Duplicate node:\n%s", describe(ds))
	}
}

// TestKnownDiagnosticsWithoutPlace lists diagnostics that pointed nowhere
// when this test was written. Each is skipped while it still does (the
// reason says where), and passes once fixed.
func TestKnownDiagnosticsWithoutPlace(t *testing.T) {
	// An instance inherits its network's resolver, range included: when one
	// of its nodes is in another network, "Inconsistent nameservers" points
	// at the zero range (or at the network's resolver block, when it has
	// one).
	path := filepath.Join("testdata", "valid", "minimal.hcl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "  nodes        = [node.be] # WARNING: No failover node", "  nodes        = [node.be, node.fe]", 1)
	if text == string(b) {
		t.Fatal("minimal.hcl changed; update this test")
	}
	f := filepath.Join(t.TempDir(), "main.hcl")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ds := spectest.Diagnose(f, lookupFixtureEnv)
	for _, d := range ds {
		if d.Subject != nil && (d.Subject.File == "" || d.Subject.Line < 1) {
			t.Errorf("points nowhere: %s: %s", d.Summary, d.Detail)
		}
	}
}

// TestFixturesFormatted keeps the fixtures in the canonical format, except
// those whose point is not to parse.
func TestFixturesFormatted(t *testing.T) {
	unparsable := map[string]bool{"syntax.hcl": true, "attribute-redefined.hcl": true}
	err := filepath.WalkDir("testdata", func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".hcl") || unparsable[e.Name()] {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if string(hclwrite.Format(b)) != string(b) {
			t.Errorf("%s is not formatted; run mailfleet fmt %s", path, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
