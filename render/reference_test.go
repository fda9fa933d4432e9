package render

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
)

// exampleReference decodes and validates examples/reference, the shipped
// topology, with its checked-in throwaway secrets.
func exampleReference(t *testing.T) *Output {
	t.Helper()
	return renderExample(t, "reference")
}

// renderExample decodes, validates and renders examples/NAME; a warning
// is allowed only for examples that are meant to have them (the lab's
// single directory node).
func renderExample(t *testing.T, name string) *Output {
	t.Helper()
	topo, _, ds := decode.Load("../examples/"+name, decode.Options{RequireSecrets: true})
	if topo != nil {
		ds = append(ds, spec.Validate(topo)...)
	}
	if ds.HasErrors() || (name == "reference" && len(ds) > 0) {
		t.Fatalf("examples/%s has diagnostics: %v", name, ds)
	}
	out, err := Render(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExampleReferenceGolden keeps a golden copy of every file rendered for
// examples/reference (run go test ./render -update after a meant change).
func TestExampleReferenceGolden(t *testing.T) {
	out := exampleReference(t)
	n := 0
	rendered := map[string]bool{}
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			n++
			name := filepath.Join("examples-reference", h.Node+f.Path)
			rendered[name] = true
			checkGolden(t, name, f.Content)
		}
	}
	if n < 70 {
		t.Errorf("only %d files rendered", n)
	}
	// A golden file of something no longer rendered is stale: -update
	// removes it, a plain run names it.
	root := filepath.Join("testdata", "golden")
	filepath.WalkDir(filepath.Join(root, "examples-reference"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, _ := filepath.Rel(root, p)
		if rendered[name] {
			return nil
		}
		if *update {
			return os.Remove(p)
		}
		t.Errorf("golden file %s is no longer rendered (go test ./render -update removes it)", p)
		return nil
	})
}

// TestExampleReferenceValidators runs every artifact of examples/reference
// through the validator of its own engine.
func TestExampleReferenceValidators(t *testing.T) {
	testutil.Long(t)
	out := exampleReference(t)
	checkzone, checkconf := bindTool(t, "named-checkzone"), bindTool(t, "named-checkconf")
	crmVerify := clTool(t, "crm_verify", "pacemaker-cli-utils")
	slaptest := clTool(t, "slaptest", "slapd")
	ruby := clTool(t, "ruby", "ruby")
	seen := map[string]int{}
	for _, h := range out.Hosts {
		root := t.TempDir()
		for _, f := range h.Files {
			switch {
			case strings.HasPrefix(f.Path, bindDir+"/"):
				content := bytes.ReplaceAll(f.Content, []byte(`"/`), []byte(`"`+root+`/`))
				writeUnder(t, filepath.Join(root, f.Path), content)
				if zone, ok := strings.CutPrefix(f.Path, bindZoneDir+"/db."); ok {
					seen["named-checkzone"]++
					if b, err := exec.Command(checkzone, zone, filepath.Join(root, f.Path)).CombinedOutput(); err != nil {
						t.Errorf("%s: named-checkzone %s: %v\n%s", h.Node, zone, err, b)
					}
				}
			case strings.HasSuffix(f.Path, "/keepalived.conf"):
				seen["keepalived"]++
				keepalivedCheck(t, h.Node, f.Content)
			case strings.HasSuffix(f.Path, "/cib.xml"):
				seen["crm_verify"]++
				p := clWrite(t, root, "cib.xml", f.Content)
				if msg, err := exec.Command(crmVerify, "--xml-file", p).CombinedOutput(); err != nil {
					t.Errorf("%s: crm_verify: %v\n%s", h.Node, err, msg)
				}
			case f.Path == slapdConfPath:
				seen["slaptest"]++
				conf := ldapTestConf(t, t.TempDir(), f.Content)
				if msg, err := exec.Command(slaptest, "-u", "-f", conf).CombinedOutput(); err != nil {
					t.Errorf("%s: slaptest -u: %v\n%s", h.Node, err, msg)
				}
			case strings.HasSuffix(f.Path, "/Vagrantfile"):
				seen["ruby"]++
				p := clWrite(t, root, "Vagrantfile", f.Content)
				if msg, err := exec.Command(ruby, "-c", p).CombinedOutput(); err != nil {
					t.Errorf("ruby -c Vagrantfile: %v\n%s", err, msg)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(root, bindNamedConf)); err == nil {
			seen["named-checkconf"]++
			writeUnder(t, filepath.Join(root, bindDir, "named.conf.default-zones"), nil)
			if err := os.MkdirAll(filepath.Join(root, bindWorkDir), 0o755); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(checkconf, "-z", filepath.Join(root, bindNamedConf)).CombinedOutput(); err != nil {
				t.Errorf("%s: named-checkconf -z: %v\n%s", h.Node, err, b)
			}
		}
	}
	// Every kind of artifact was found and checked.
	want := map[string]int{"named-checkzone": 4, "named-checkconf": 1, "keepalived": 2, "crm_verify": 4, "slaptest": 2, "ruby": 1}
	for k, n := range want {
		if seen[k] != n {
			t.Errorf("%s ran %d times, want %d", k, seen[k], n)
		}
	}
}

// TestExampleReferenceSecretsOnlyInSensitiveFiles looks for every secret of
// examples/reference in every rendered file: a secret may appear only in a
// file marked sensitive, whose mode keeps it from other users.
func TestExampleReferenceSecretsOnlyInSensitiveFiles(t *testing.T) {
	out := exampleReference(t)
	paths, _ := filepath.Glob("../examples/reference/secrets/*")
	var secrets []string
	for _, p := range paths {
		if strings.HasSuffix(p, ".md") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, strings.TrimRight(string(b), "\r\n"))
	}
	if len(secrets) < 5 {
		t.Fatalf("found only %d secrets", len(secrets))
	}
	found := 0
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			for _, s := range secrets {
				if !bytes.Contains(f.Content, []byte(s)) {
					continue
				}
				found++
				if !f.Sensitive {
					t.Errorf("%s:%s holds a secret but is not marked sensitive", h.Node, f.Path)
				}
				if f.Mode&0o027 != 0 {
					t.Errorf("%s:%s holds a secret but has mode %o", h.Node, f.Path, f.Mode)
				}
			}
		}
	}
	if found == 0 {
		t.Error("no rendered file holds any secret; the test would prove nothing")
	}
}
