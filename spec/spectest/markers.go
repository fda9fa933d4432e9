package spectest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
)

var marker = regexp.MustCompile(`# (ERROR|WARNING): ([^#]+)`)

// Expected reads the markers of the topology at path (a .hcl file or a
// directory of them): a comment "# ERROR: <summary>" or "# WARNING:
// <summary>" on a line announces that diagnostic there. Each is returned as
// "file:line: severity: summary", sorted and without repeats.
func Expected(path string) ([]string, error) {
	files := []string{path}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*.hcl"))
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for line := 1; sc.Scan(); line++ {
			for _, m := range marker.FindAllStringSubmatch(sc.Text(), -1) {
				out = append(out, fmt.Sprintf("%s:%d: %s: %s", f, line, strings.ToLower(m[1]), strings.TrimSpace(m[2])))
			}
		}
	}
	return uniq(out), nil
}

// Diagnose decodes and validates the topology at path with env for env()
// and returns its diagnostics in the form Expected uses.
func Diagnose(path string, env func(string) (string, bool)) ([]string, spec.Diagnostics) {
	t, _, ds := decode.Load(path, decode.Options{Env: env})
	if t != nil {
		for _, d := range spec.Validate(t) {
			if t.Redact != nil {
				d.Summary, d.Detail = t.Redact(d.Summary), t.Redact(d.Detail)
			}
			ds = append(ds, d)
		}
	}
	var out []string
	for _, d := range ds {
		if d.Subject == nil {
			out = append(out, fmt.Sprintf("-:0: %s: %s", d.Severity, d.Summary))
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d: %s: %s", d.Subject.File, d.Subject.Line, d.Severity, d.Summary))
	}
	return uniq(out), ds
}

// NoEnv is an environment with no variable set.
func NoEnv(string) (string, bool) { return "", false }

func uniq(s []string) []string {
	sort.Strings(s)
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
