package spec

import (
	"fmt"
	"sort"
)

type Severity int

const (
	Error Severity = iota
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Diagnostic is a user mistake (or a doubtful choice) found in a topology.
// Summary is short and stable (tests assert on it); Detail says what to do.
type Diagnostic struct {
	Severity Severity
	Summary  string
	Detail   string
	Subject  *Range // where; nil for whole-topology problems
	// Related points at another place, e.g. the first definition of a
	// duplicate.
	Related *Range
}

func (d Diagnostic) Error() string {
	if d.Subject != nil {
		return fmt.Sprintf("%s:%d,%d: %s: %s", d.Subject.File, d.Subject.Line, d.Subject.Col, d.Summary, d.Detail)
	}
	return d.Summary + ": " + d.Detail
}

type Diagnostics []Diagnostic

func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

func (ds Diagnostics) Count(s Severity) int {
	n := 0
	for _, d := range ds {
		if d.Severity == s {
			n++
		}
	}
	return n
}

// Sort orders diagnostics by file, then position, keeping the order of
// diagnostics at the same place.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Subject, ds[j].Subject
		switch {
		case a == nil && b == nil:
			return false
		case a == nil:
			return false
		case b == nil:
			return true
		case a.File != b.File:
			return a.File < b.File
		default:
			return a.Byte < b.Byte
		}
	})
}

func (ds *Diagnostics) errorf(r Range, summary, format string, args ...any) {
	rr := r
	*ds = append(*ds, Diagnostic{Severity: Error, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &rr})
}

func (ds *Diagnostics) warnf(r Range, summary, format string, args ...any) {
	rr := r
	*ds = append(*ds, Diagnostic{Severity: Warning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &rr})
}

// Dedup drops diagnostics identical to an earlier one (same severity,
// summary, detail and place).
func (ds Diagnostics) Dedup() Diagnostics {
	type key struct {
		s            Severity
		sum, det     string
		file         string
		line, column int
	}
	seen := map[key]bool{}
	var out Diagnostics
	for _, d := range ds {
		k := key{s: d.Severity, sum: d.Summary, det: d.Detail}
		if d.Subject != nil {
			k.file, k.line, k.column = d.Subject.File, d.Subject.Line, d.Subject.Col
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}
