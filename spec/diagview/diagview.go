// Package diagview shows diagnostics to people (text with source snippets,
// coloured on a terminal) and to programs (the JSON shape of Terraform's
// `validate -json`).
// Like all of spec it imports nothing of render, remote, runtime
// (runtime/config's constants apart), provision or lab.
package diagview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
)

// Sources are the bytes of the topology files, by file name.
type Sources map[string][]byte

// FormatVersion of the JSON document.
const FormatVersion = "1.0"

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonSnippet struct {
	Context              *string `json:"context"`
	Code                 string  `json:"code"`
	StartLine            int     `json:"start_line"`
	HighlightStartOffset int     `json:"highlight_start_offset"`
	HighlightEndOffset   int     `json:"highlight_end_offset"`
	Values               []any   `json:"values"`
}

type jsonDiag struct {
	Severity string       `json:"severity"`
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *jsonRange   `json:"range,omitempty"`
	Snippet  *jsonSnippet `json:"snippet,omitempty"`
}

// Document is the whole `validate -json` answer.
type Document struct {
	FormatVersion string     `json:"format_version"`
	Valid         bool       `json:"valid"`
	ErrorCount    int        `json:"error_count"`
	WarningCount  int        `json:"warning_count"`
	Diagnostics   []jsonDiag `json:"diagnostics"`
}

// JSON writes the diagnostics as Terraform's validate -json does.
func JSON(w io.Writer, ds spec.Diagnostics, src Sources) error {
	doc := Document{FormatVersion: FormatVersion, Valid: !ds.HasErrors(),
		ErrorCount: ds.Count(spec.Error), WarningCount: ds.Count(spec.Warning), Diagnostics: []jsonDiag{}}
	for _, d := range ds {
		jd := jsonDiag{Severity: d.Severity.String(), Summary: d.Summary, Detail: d.Detail}
		if r := d.Subject; r != nil && r.Line > 0 {
			jd.Range = &jsonRange{Filename: r.File, Start: jsonPos{r.Line, r.Col, r.Byte}, End: jsonPos{r.EndLine, r.EndCol, r.EndByte}}
			if lines, start, ok := snippet(src[r.File], *r); ok {
				code := strings.Join(lines, "\n")
				hs := r.Col - 1
				he := len(code)
				if r.EndLine == r.Line {
					he = r.EndCol - 1
				}
				if hs > len(code) {
					hs = len(code)
				}
				if he > len(code) || he < hs {
					he = len(code)
				}
				jd.Snippet = &jsonSnippet{Code: code, StartLine: start, HighlightStartOffset: hs, HighlightEndOffset: he, Values: []any{}}
			}
		}
		doc.Diagnostics = append(doc.Diagnostics, jd)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// snippet returns the source lines of r (one line, or the lines it spans
// up to three).
func snippet(b []byte, r spec.Range) ([]string, int, bool) {
	if b == nil || r.Line < 1 {
		return nil, 0, false
	}
	lines := bytes.Split(b, []byte("\n"))
	if r.Line > len(lines) {
		return nil, 0, false
	}
	end := r.EndLine
	if end < r.Line {
		end = r.Line
	}
	if end > len(lines) {
		end = len(lines)
	}
	if end-r.Line > 2 {
		end = r.Line + 2
	}
	var out []string
	for i := r.Line; i <= end; i++ {
		out = append(out, strings.TrimRight(string(lines[i-1]), "\r"))
	}
	return out, r.Line, true
}

// Text writes diagnostics for people: severity, summary, place, the source
// line with the range underlined, and the detail. color adds ANSI colours.
func Text(w io.Writer, ds spec.Diagnostics, src Sources, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	for _, d := range ds {
		label := paint("1;31", "Error")
		if d.Severity == spec.Warning {
			label = paint("1;33", "Warning")
		}
		fmt.Fprintf(w, "\n%s: %s\n", label, paint("1", d.Summary))
		if r := d.Subject; r != nil && r.Line > 0 {
			fmt.Fprintf(w, "\n  on %s line %d:\n", r.File, r.Line)
			if lines, start, ok := snippet(src[r.File], *r); ok {
				for i, l := range lines {
					fmt.Fprintf(w, "  %4d: %s\n", start+i, l)
				}
				if r.EndLine == r.Line && r.EndCol > r.Col {
					fmt.Fprintf(w, "        %s%s\n", strings.Repeat(" ", r.Col-1), paint("31", strings.Repeat("^", r.EndCol-r.Col)))
				}
			}
		}
		if d.Related != nil && d.Related.Line > 0 {
			fmt.Fprintf(w, "\n  (first at %s line %d)\n", d.Related.File, d.Related.Line)
		}
		if d.Detail != "" {
			fmt.Fprintf(w, "\n%s\n", d.Detail)
		}
	}
}
