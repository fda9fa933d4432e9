// Package decode reads a topology written in the mailfleet HCL language into
// the plain Go model of package spec. It owns the language: block schemas
// (at the bottom of each block's file), references between blocks,
// variables, locals and functions, and the canonical defaults. It reads only
// the topology's own files (and those its file() calls name); it must not
// import render, remote or runtime.
package decode

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"

	"github.com/mailfleet/mailfleet/spec"
)

// Limits on what a topology may be, so that bad input cannot exhaust memory
// or the parser's stack.
const (
	maxFiles     = 1000
	maxFileBytes = 8 << 20
	maxDepth     = 500
)

// maxNesting returns the deepest nesting of brackets in b and the line where
// it is first reached. Brackets inside strings and comments count too: a
// harmless overestimate that keeps the scan simple.
func maxNesting(b []byte) (line, max int) {
	depth, ln := 0, 1
	for _, c := range b {
		switch c {
		case '\n':
			ln++
		case '(', '[', '{':
			depth++
			if depth > max {
				max, line = depth, ln
			}
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return line, max
}

// Options change how a topology is read.
type Options struct {
	// Env looks up environment variables for env() and MAILFLEET_VAR_*;
	// nil means os.LookupEnv.
	Env func(string) (string, bool)
	// RequireSecrets turns an unreadable secret (env unset, file missing)
	// from a warning into an error: build needs every secret, validate none.
	RequireSecrets bool
	// AllowPaths are directories outside the topology's own from which
	// file() may read (as Terraform confines module paths); by default it
	// reads only below the topology's directory, so that a topology
	// cannot make `validate` print /etc/shadow.
	AllowPaths []string
}

// Sources holds the bytes of every file read, for diagnostic snippets.
type Sources map[string][]byte

// Load reads the topology at path: one .hcl file, or every .hcl file of a
// directory (not recursive), like a Terraform module. It returns the
// decoded and canonicalized topology and the diagnostics of parsing and
// decoding; it does not validate. The topology is nil when the files could
// not be parsed; with other errors it is returned without the faulty parts,
// so that validation can report further mistakes, but it must not be
// rendered.
func Load(path string, opts Options) (*spec.Topology, Sources, spec.Diagnostics) {
	if opts.Env == nil {
		opts.Env = os.LookupEnv
	}
	files, dir, diags := topologyFiles(path)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	parser := hclparse.NewParser()
	var bodies []*hcl.File
	src := Sources{}
	for _, f := range files {
		b, err := readLimited(f)
		if err != nil {
			diags = append(diags, spec.Diagnostic{Severity: spec.Error, Summary: "Cannot read topology file", Detail: err.Error()})
			continue
		}
		if line, depth := maxNesting(b); depth > maxDepth {
			r := spec.Range{File: f, Line: line, Col: 1, EndLine: line, EndCol: 1}
			diags = append(diags, spec.Diagnostic{Severity: spec.Error, Summary: "Expression nested too deeply",
				Detail: fmt.Sprintf("Brackets nest %d deep here; at most %d levels are read.", depth, maxDepth), Subject: &r})
			continue
		}
		file, hd := parser.ParseHCL(b, f)
		src[f] = b
		diags = append(diags, convertDiags(hd)...)
		if file != nil {
			diags = append(diags, forNesting(file)...)
			bodies = append(bodies, file)
		}
	}
	if diags.HasErrors() {
		return nil, src, diags
	}
	d := newDecoder(dir, opts)
	t := d.decode(bodies)
	for _, dg := range d.diags {
		// The decoder's own messages quote values too; none may be one
		// that env() or file() returned.
		dg.Summary, dg.Detail = d.un.redact(dg.Summary), d.un.redact(dg.Detail)
		diags = append(diags, dg)
	}
	if t != nil {
		t.Redact = d.un.redact
	}
	return t, src, diags
}

func readLimited(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxFileBytes {
		return nil, fmt.Errorf("%s is %d bytes; a topology file may have at most %d", path, st.Size(), maxFileBytes)
	}
	return os.ReadFile(path)
}

// topologyFiles lists the .hcl files of path, sorted.
func topologyFiles(path string) ([]string, string, spec.Diagnostics) {
	var diags spec.Diagnostics
	st, err := os.Stat(path)
	if err != nil {
		diags = append(diags, spec.Diagnostic{Severity: spec.Error, Summary: "Topology not found", Detail: fmt.Sprintf("Cannot read %s: %v.", path, errText(err))})
		return nil, "", diags
	}
	if !st.IsDir() {
		return []string{path}, filepath.Dir(path), nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		diags = append(diags, spec.Diagnostic{Severity: spec.Error, Summary: "Cannot read topology directory", Detail: err.Error()})
		return nil, "", diags
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".hcl") && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		diags = append(diags, spec.Diagnostic{Severity: spec.Error, Summary: "No topology files", Detail: fmt.Sprintf("The directory %s has no .hcl files; a topology is one .hcl file or a directory of them.", path)})
	}
	if len(files) > maxFiles {
		diags = append(diags, spec.Diagnostic{Severity: spec.Error, Summary: "Too many topology files", Detail: fmt.Sprintf("%s has %d .hcl files; at most %d are read.", path, len(files), maxFiles)})
	}
	return files, path, diags
}

func convertRange(r hcl.Range) spec.Range {
	return spec.Range{File: r.Filename, Line: r.Start.Line, Col: r.Start.Column, Byte: r.Start.Byte,
		EndLine: r.End.Line, EndCol: r.End.Column, EndByte: r.End.Byte}
}

func convertDiags(hd hcl.Diagnostics) spec.Diagnostics {
	var out spec.Diagnostics
	for _, d := range hd {
		sd := spec.Diagnostic{Severity: spec.Error, Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			sd.Severity = spec.Warning
		}
		if d.Subject != nil {
			r := convertRange(*d.Subject)
			sd.Subject = &r
		}
		out = append(out, sd)
	}
	return out
}

// addDiags converts HCL's diagnostics, with every value read by env() or
// file() replaced: a function that fails quotes its argument, and that
// argument may be a secret.
func (d *decoder) addDiags(hd hcl.Diagnostics) {
	for _, sd := range convertDiags(hd) {
		sd.Summary = d.un.redact(sd.Summary)
		sd.Detail = d.un.redact(sd.Detail)
		d.diags = append(d.diags, sd)
	}
}

// decoder holds the state of one decode: the evaluation context grows as
// blocks are decoded in dependency order.
type decoder struct {
	dir   string
	opts  Options
	diags spec.Diagnostics
	un    *unavailable
	ctx   *hcl.EvalContext
	t     *spec.Topology

	// blocks by kind, in file order
	blocks map[string][]*hcl.Block

	networks   map[string]*spec.Network
	kernels    map[string]*spec.Kernel
	nodes      map[string]*spec.Node
	fences     map[string]*spec.FenceDevice
	partitions map[string]*spec.Partition // key: storage.S.disk.D.partition.P
	instances  map[string]*spec.Instance
	connectors map[string]*spec.LDAPConnector
	// defined remembers where each kind+name was first defined.
	defined map[string]hcl.Range
}

func newDecoder(dir string, opts Options) *decoder {
	d := &decoder{dir: dir, opts: opts, un: &unavailable{}, t: &spec.Topology{Dir: dir},
		blocks: map[string][]*hcl.Block{}, networks: map[string]*spec.Network{}, kernels: map[string]*spec.Kernel{},
		nodes: map[string]*spec.Node{}, fences: map[string]*spec.FenceDevice{}, partitions: map[string]*spec.Partition{},
		instances: map[string]*spec.Instance{}, connectors: map[string]*spec.LDAPConnector{}, defined: map[string]hcl.Range{}}
	d.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: functions(dir, opts.AllowPaths, opts.Env, d.un)}
	return d
}

// topSchema lists the top-level blocks of the language.
var topSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "locals"},
	{Type: "site", LabelNames: []string{"name"}},
	{Type: "network", LabelNames: []string{"name"}},
	{Type: "router", LabelNames: []string{"name"}},
	{Type: "kernel", LabelNames: []string{"name"}},
	{Type: "node", LabelNames: []string{"name"}},
	{Type: "fence", LabelNames: []string{"name"}},
	{Type: "storage", LabelNames: []string{"name"}},
	{Type: "balancer", LabelNames: []string{"name"}},
	{Type: "directory", LabelNames: []string{"name"}},
	{Type: "ldap_connector", LabelNames: []string{"name"}},
	{Type: "frontend", LabelNames: []string{"name"}},
	{Type: "mail_instance", LabelNames: []string{"name"}},
	{Type: "provisioning"},
	{Type: "vagrant"},
}}

func (d *decoder) decode(files []*hcl.File) *spec.Topology {
	for _, f := range files {
		content, hd := f.Body.Content(topSchema)
		d.addDiags(hd)
		if content == nil {
			continue
		}
		for _, b := range content.Blocks {
			if len(b.Labels) == 1 && b.Type != "variable" {
				if !d.define(b.Type, b.Labels[0], b.LabelRanges[0]) {
					continue
				}
			}
			d.blocks[b.Type] = append(d.blocks[b.Type], b)
		}
	}
	if d.diags.HasErrors() {
		return nil
	}
	d.decodeVariables()
	d.decodeLocals()
	if d.diags.HasErrors() {
		return nil
	}
	// Dependency order: each kind refers only to kinds decoded before it.
	d.decodeSite()
	for _, b := range d.blocks["network"] {
		d.decodeNetwork(b)
	}
	for _, b := range d.blocks["kernel"] {
		d.decodeKernel(b)
	}
	for _, b := range d.blocks["fence"] {
		d.decodeFence(b)
	}
	// Nodes may name other nodes as jump hosts: create them all first.
	for _, b := range d.blocks["node"] {
		n := &spec.Node{Name: b.Labels[0]}
		d.nodes[n.Name] = n
	}
	for _, b := range d.blocks["node"] {
		d.decodeNode(b)
	}
	d.setObjects("node", nodeObjects(d.nodes))
	for _, b := range d.blocks["storage"] {
		d.decodeStorage(b)
	}
	for _, b := range d.blocks["router"] {
		d.decodeRouter(b)
	}
	for _, b := range d.blocks["directory"] {
		d.decodeDirectory(b)
	}
	for _, b := range d.blocks["ldap_connector"] {
		d.decodeConnector(b)
	}
	for _, b := range d.blocks["mail_instance"] {
		d.decodeInstance(b)
	}
	for _, b := range d.blocks["balancer"] {
		d.decodeBalancer(b)
	}
	for _, b := range d.blocks["frontend"] {
		d.decodeFrontend(b)
	}
	d.decodeProvisioning()
	d.decodeVagrant()
	// A topology with decoding errors (an unresolved reference, a missing
	// attribute) is still returned, with the faulty parts left out, so that
	// validation can report every other mistake in the same run.
	canonicalize(d.t)
	return d.t
}

// define records kind.name and reports a duplicate definition.
func (d *decoder) define(kind, name string, r hcl.Range) bool {
	key := kind + "." + name
	if first, ok := d.defined[key]; ok {
		fr := convertRange(first)
		sr := convertRange(r)
		d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Duplicate " + kind,
			Detail:  fmt.Sprintf("A %s named %q was already defined at %s:%d. Names must be unique within a kind.", kind, name, first.Filename, first.Start.Line),
			Subject: &sr, Related: &fr})
		return false
	}
	d.defined[key] = r
	if !validName(name) {
		sr := convertRange(r)
		d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Invalid name",
			Detail:  fmt.Sprintf("%q is not a valid %s name: use letters, digits, '_' and '-', starting with a letter, at most 63 characters.", name, kind),
			Subject: &sr})
		return false
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func (d *decoder) setObjects(kind string, objs map[string]cty.Value) {
	if len(objs) == 0 {
		return
	}
	d.ctx.Variables[kind] = cty.ObjectVal(objs)
}

func nodeObjects(nodes map[string]*spec.Node) map[string]cty.Value {
	out := map[string]cty.Value{}
	for name, n := range nodes {
		attrs := map[string]cty.Value{"name": cty.StringVal(name)}
		if n.Address.IsValid() {
			attrs["address"] = cty.StringVal(n.Address.String())
		}
		out[name] = cty.ObjectVal(attrs)
	}
	return out
}
