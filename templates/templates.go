// Package templates holds the embedded text/template sources for the formats
// that are text by nature (zone files, slapd.conf, cluster.conf,
// keepalived.conf, systemd units, the Vagrantfile). Templates only format:
// render feeds them small view structs and does every decision itself.
// It imports nothing of mailfleet.
package templates

import (
	"embed"
	"fmt"
	"strings"
	"sync"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var (
	once sync.Once
	all  *template.Template
	err  error
)

// funcs are formatting helpers only.
var funcs = template.FuncMap{
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"quote": func(s string) string { return fmt.Sprintf("%q", s) },
}

// Lookup returns the parsed template called name (its file name), parsed once
// with missingkey=error.
func Lookup(name string) (*template.Template, error) {
	once.Do(func() {
		all, err = template.New("").Funcs(funcs).Option("missingkey=error").ParseFS(files, "*.tmpl")
	})
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	t := all.Lookup(name)
	if t == nil {
		return nil, fmt.Errorf("templates: no template %q", name)
	}
	return t, nil
}

// Execute runs the template called name on data.
func Execute(name string, data any) ([]byte, error) {
	t, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("templates: %s: %w", name, err)
	}
	return []byte(b.String()), nil
}
