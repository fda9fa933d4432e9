package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/mailfleet/mailfleet/render"
	"github.com/mailfleet/mailfleet/render/graph"
	"github.com/mailfleet/mailfleet/render/outdir"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
	"github.com/mailfleet/mailfleet/spec/diagview"
)

// load decodes and validates a topology, printing its diagnostics in text
// unless quiet. It returns nil when there are errors.
func load(e *env, path string, requireSecrets bool) (*spec.Topology, spec.Diagnostics, diagview.Sources) {
	t, src, ds := decode.Load(path, decode.Options{Env: e.getenv, RequireSecrets: requireSecrets, AllowPaths: e.allowPaths})
	if t != nil {
		for _, d := range spec.Validate(t) {
			if t.Redact != nil {
				d.Summary, d.Detail = t.Redact(d.Summary), t.Redact(d.Detail)
			}
			ds = append(ds, d)
		}
	}
	ds = ds.Dedup()
	ds.Sort()
	if ds.HasErrors() {
		t = nil
	}
	return t, ds, diagview.Sources(src)
}

func runValidate(e *env, args []string) int {
	fs := newFlags(e, "validate", "[-json] PATH")
	asJSON := fs.Bool("json", false, "print diagnostics as JSON in the shape of terraform validate -json")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	t, ds, src := load(e, path, false)
	if *asJSON {
		if err := diagview.JSON(e.stdout, ds, src); err != nil {
			fmt.Fprintln(e.stderr, "mailfleet validate:", err)
			return 1
		}
	} else {
		diagview.Text(e.stderr, ds, src, e.color)
		if t != nil {
			msg := "Success! The topology is valid."
			if n := ds.Count(spec.Warning); n > 0 {
				msg = fmt.Sprintf("Success! The topology is valid, with %d warning(s).", n)
			}
			fmt.Fprintln(e.stdout, msg)
		}
	}
	if t == nil {
		return 1
	}
	return 0
}

func runBuild(e *env, args []string) int {
	fs := newFlags(e, "build", "-o DIR PATH")
	out := fs.String("o", "", "output `directory`")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	if *out == "" {
		fmt.Fprintln(e.stderr, "mailfleet build: -o DIR is required")
		fs.Usage()
		return 1
	}
	t, ds, src := load(e, path, true)
	diagview.Text(e.stderr, ds, src, e.color)
	if t == nil {
		return 1
	}
	res, err := render.Render(t, render.Options{Current: outdir.Current(*out)})
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet build:", err)
		return 1
	}
	m, err := outdir.Write(*out, res)
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet build:", err)
		return 1
	}
	fmt.Fprintf(e.stdout, "Rendered %d files for %d hosts into %s (manifest: %s).\n",
		len(m.Files), len(m.Nodes()), *out, filepath.Join(*out, "manifest.json"))
	return 0
}

func runGraph(e *env, args []string) int {
	fs := newFlags(e, "graph", "[-format svg|dot] [-o FILE] PATH")
	format := fs.String("format", "svg", "svg or dot")
	out := fs.String("o", "", "write to `FILE` instead of standard output")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	t, ds, src := load(e, path, false)
	diagview.Text(e.stderr, errorsOnly(ds), src, e.color)
	if t == nil {
		return 1
	}
	b, err := graph.Render(t, *format)
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet graph:", err)
		return 1
	}
	if *out == "" {
		_, err = e.stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet graph:", err)
		return 1
	}
	return 0
}

func errorsOnly(ds spec.Diagnostics) spec.Diagnostics {
	var out spec.Diagnostics
	for _, d := range ds {
		if d.Severity == spec.Error {
			out = append(out, d)
		}
	}
	return out
}

func runFmt(e *env, args []string) int {
	fs := newFlags(e, "fmt", "[-check] [-diff] PATH...")
	check := fs.Bool("check", false, "change nothing; exit 1 when a file is not formatted")
	diff := fs.Bool("diff", false, "show the changes")
	pos, err := parse(fs, args)
	if err != nil {
		return 1
	}
	if len(pos) == 0 {
		pos = []string{"."}
	}
	var files []string
	for _, p := range pos {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintln(e.stderr, "mailfleet fmt:", err)
			return 1
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		m, _ := filepath.Glob(filepath.Join(p, "*.hcl"))
		files = append(files, m...)
	}
	status := 0
	for _, f := range files {
		changed, err := fmtFile(e, f, *check, *diff)
		if err != nil {
			var ds hcl.Diagnostics
			if errors.As(err, &ds) {
				for _, d := range ds {
					fmt.Fprintln(e.stderr, d.Error())
				}
			} else {
				fmt.Fprintln(e.stderr, "mailfleet fmt:", err)
			}
			status = 1
			continue
		}
		if changed {
			fmt.Fprintln(e.stdout, f)
			if *check {
				status = 1
			}
		}
	}
	return status
}

// fmtFile formats one file; syntax errors are reported and the file is left
// as it is (hclwrite would format around them).
func fmtFile(e *env, path string, check, showDiff bool) (bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if _, ds := hclparse.NewParser().ParseHCL(src, path); ds.HasErrors() {
		return false, ds
	}
	out := hclwrite.Format(src)
	if bytes.Equal(src, out) {
		return false, nil
	}
	if showDiff {
		fmt.Fprint(e.stdout, unifiedDiff(path, src, out))
	}
	if check {
		return true, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return true, err
	}
	return true, os.WriteFile(path, out, st.Mode().Perm())
}
