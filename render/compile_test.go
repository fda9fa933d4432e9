package render_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailfleet/mailfleet/render"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// compile runs the whole pipeline on the topology at path: decode, validate,
// render. It returns the diagnostics and, when there were no errors, the
// rendered output.
func compile(path string, env func(string) (string, bool), allowUnknown bool) (*render.Output, spec.Diagnostics, error) {
	t, _, ds := decode.Load(path, decode.Options{Env: env})
	if t == nil {
		return nil, ds, nil
	}
	ds = append(ds, spec.Validate(t)...)
	if ds.HasErrors() {
		return nil, ds, nil
	}
	out, err := render.Render(t, render.Options{AllowUnknownSecrets: allowUnknown})
	return out, ds, err
}

func TestRenderReferenceTwiceIdentical(t *testing.T) {
	a, ds, err := compile("../examples/reference", os.LookupEnv, false)
	if err != nil || ds.HasErrors() {
		t.Fatalf("compile: %v %v", err, ds)
	}
	b, _, err := compile("../examples/reference", os.LookupEnv, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Hosts) != len(b.Hosts) || len(a.Hosts) == 0 {
		t.Fatalf("hosts: %d vs %d", len(a.Hosts), len(b.Hosts))
	}
	files := 0
	for i, h := range a.Hosts {
		for j, f := range h.Files {
			g := b.Hosts[i].Files[j]
			files++
			if f.Path != g.Path || !bytes.Equal(f.Content, g.Content) || f.Mode != g.Mode {
				t.Errorf("%s %s differs between two renders", h.Node, f.Path)
			}
		}
	}
	if files < 50 {
		t.Errorf("only %d files rendered for the reference", files)
	}
}

func TestGeneratedTopologiesCompile(t *testing.T) {
	for _, n := range []int{8, 100} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(spectest.Generate(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, ds, err := compile(dir, spectest.GenerateEnv, false)
		if err != nil || ds.HasErrors() {
			t.Fatalf("nodes=%d: %v %v", n, err, ds)
		}
		if len(out.Hosts) < n {
			t.Errorf("nodes=%d: only %d hosts rendered", n, len(out.Hosts))
		}
	}
}

// FuzzCompile feeds arbitrary topology files through decode, validate and
// render: none may panic, and anything that validates must render (with
// unknown secrets allowed, as the fuzzer cannot know them).
func FuzzCompile(f *testing.F) {
	for _, dir := range []string{"../examples/reference", "../examples/reference-as-written"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		var all []byte
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			all = append(all, b...)
			all = append(all, '\n')
		}
		f.Add(all)
	}
	f.Add([]byte(spectest.Generate(8)))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "main.hcl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, ds, err := compile(p, spectest.GenerateEnv, true)
		if err != nil {
			t.Fatalf("a topology that validated did not render: %v", err)
		}
		if out == nil && !ds.HasErrors() {
			t.Fatalf("no output and no error")
		}
	})
}

// BenchmarkCompile measures decode+validate+render of generated topologies
// with front-end and backend nodes, instances and VIPs in proportion.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(spectest.Generate(n)), 0o644); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, ds, err := compile(dir, spectest.GenerateEnv, false)
				if err != nil || ds.HasErrors() || out == nil {
					b.Fatalf("%v %v", err, ds)
				}
			}
		})
	}
}
