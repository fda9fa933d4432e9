package decode

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/mailfleet/mailfleet/spec"
)

// body reads the attributes of one block against its schema and remembers
// where each attribute was written.
type body struct {
	d       *decoder
	kind    string // for messages: `node "proxy1"`
	content *hcl.BodyContent
	src     spec.Src
}

func (d *decoder) body(b *hcl.Block, schema *hcl.BodySchema) *body {
	return d.bodyOf(b.Body, b.DefRange, blockTitle(b), schema)
}

func (d *decoder) bodyOf(hb hcl.Body, def hcl.Range, title string, schema *hcl.BodySchema) *body {
	content, hd := hb.Content(schema)
	d.addDiags(hd)
	if content == nil {
		content = &hcl.BodyContent{Attributes: hcl.Attributes{}}
	}
	bd := &body{d: d, kind: title, content: content, src: spec.Src{Range: convertRange(def), Attrs: map[string]spec.Range{}}}
	for name, a := range content.Attributes {
		bd.src.Attrs[name] = convertRange(a.Expr.Range())
	}
	return bd
}

func blockTitle(b *hcl.Block) string {
	if len(b.Labels) > 0 {
		return fmt.Sprintf("%s %q", b.Type, b.Labels[0])
	}
	return b.Type
}

func (b *body) has(name string) bool { _, ok := b.content.Attributes[name]; return ok }

func (b *body) errorf(name, summary, format string, args ...any) {
	r := b.src.At(name)
	b.d.diags = append(b.d.diags, spec.Diagnostic{Severity: spec.Error, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &r})
}

func (b *body) warnf(name, summary, format string, args ...any) {
	r := b.src.At(name)
	b.d.diags = append(b.d.diags, spec.Diagnostic{Severity: spec.Warning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &r})
}

// value evaluates attribute name. ok is false when it is absent, failed to
// evaluate (diagnosed), or is unknown because env()/file() could not be
// read (diagnosed by the caller through unknownNote).
func (b *body) value(name string) (cty.Value, bool) {
	a, ok := b.content.Attributes[name]
	if !ok {
		return cty.NilVal, false
	}
	v, hd := a.Expr.Value(b.d.ctx)
	b.d.addDiags(hd)
	if hd.HasErrors() {
		b.d.un.take()
		return cty.NilVal, false
	}
	if missing := b.d.un.take(); len(missing) > 0 || !v.IsWhollyKnown() {
		b.unknown(name, missing)
		return v, false
	}
	if v.IsNull() {
		return v, false
	}
	return v, true
}

// unknown reports a value that could not be read: a warning for validate,
// an error for build.
func (b *body) unknown(name string, missing []string) {
	detail := "The value of " + name + " is not known"
	if len(missing) > 0 {
		detail += ": " + strings.Join(missing, "; ")
	}
	if b.d.opts.RequireSecrets {
		b.errorf(name, "Value not available", "%s. build needs every value; set it and run again.", detail)
	} else {
		b.warnf(name, "Value not available", "%s; it is treated as unknown, which is enough to validate.", detail)
	}
}

func (b *body) typed(name string, ty cty.Type, what string) (cty.Value, bool) {
	v, ok := b.value(name)
	if !ok {
		return v, false
	}
	v, _ = v.UnmarkDeep()
	cv, err := convert.Convert(v, ty)
	if err != nil {
		b.errorf(name, "Incorrect attribute value type", "%s in %s must be %s: %s.", name, b.kind, what, b.d.un.redact(err.Error()))
		return cty.NilVal, false
	}
	if hasNullElement(cv) {
		b.errorf(name, "Invalid value", "%s in %s must not contain null.", name, b.kind)
		return cty.NilVal, false
	}
	return cv, true
}

func (b *body) str(name string) (string, bool) {
	v, ok := b.typed(name, cty.String, "a string")
	if !ok {
		return "", false
	}
	return v.AsString(), true
}

func (b *body) strDefault(name, def string) string {
	if s, ok := b.str(name); ok {
		return s
	}
	return def
}

func (b *body) integer(name string, min, max int64) (int, bool) {
	v, ok := b.typed(name, cty.Number, "a number")
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		b.errorf(name, "Invalid number", "%s in %s must be a whole number.", name, b.kind)
		return 0, false
	}
	i, acc := bf.Int64()
	if acc != big.Exact || i < min || i > max {
		b.errorf(name, "Number out of range", "%s in %s must be between %d and %d.", name, b.kind, min, max)
		return 0, false
	}
	return int(i), true
}

func (b *body) boolean(name string) bool {
	v, ok := b.typed(name, cty.Bool, "true or false")
	return ok && v.True()
}

func (b *body) addr(name string) netip.Addr {
	s, ok := b.str(name)
	if !ok {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		b.errorf(name, "Invalid IP address", "%q in %s is not an IP address.", s, b.kind)
		return netip.Addr{}
	}
	return a.Unmap()
}

func (b *body) prefix(name string) netip.Prefix {
	s, ok := b.str(name)
	if !ok {
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		b.errorf(name, "Invalid CIDR", "%q in %s is not a CIDR prefix such as 10.0.0.0/24.", s, b.kind)
		return netip.Prefix{}
	}
	if p.Masked() != p {
		b.errorf(name, "Invalid CIDR", "%q has host bits set; the network is %s.", s, p.Masked())
		return netip.Prefix{}
	}
	return p
}

func (b *body) duration(name string, def time.Duration) time.Duration {
	if !b.has(name) {
		return def
	}
	v, ok := b.value(name)
	if !ok {
		return def
	}
	v, _ = v.UnmarkDeep()
	if v.Type() == cty.Number {
		b.errorf(name, "Invalid duration", "%s in %s must be a duration string such as \"1s\" or \"500ms\".", name, b.kind)
		return def
	}
	sv, err := convert.Convert(v, cty.String)
	if err != nil {
		b.errorf(name, "Invalid duration", "%s in %s must be a duration string such as \"1s\".", name, b.kind)
		return def
	}
	dur, err := time.ParseDuration(sv.AsString())
	if err != nil || dur <= 0 {
		b.errorf(name, "Invalid duration", "%s in %s is %q, not a positive duration such as \"1s\" or \"500ms\".", name, b.kind, sv.AsString())
		return def
	}
	return dur
}

func (b *body) strList(name string) []string {
	v, ok := b.typed(name, cty.List(cty.String), "a list of strings")
	if !ok {
		return nil
	}
	// An empty list written as such is non-nil: "nothing", not "unknown".
	out := []string{}
	for _, e := range v.AsValueSlice() {
		if e.IsNull() {
			b.errorf(name, "Invalid value", "%s in %s must not contain null.", name, b.kind)
			continue
		}
		out = append(out, e.AsString())
	}
	return out
}

func (b *body) intMap(name string) (map[string]int, bool) {
	v, ok := b.typed(name, cty.Map(cty.Number), "a map of numbers")
	if !ok {
		return nil, false
	}
	out := map[string]int{}
	for k, e := range v.AsValueMap() {
		if e.IsNull() {
			continue
		}
		bf := e.AsBigFloat()
		i, acc := bf.Int64()
		if !bf.IsInt() || acc != big.Exact || i < 0 || i > 1<<31 {
			b.errorf(name, "Invalid number", "%s[%q] in %s must be a whole non-negative number.", name, k, b.kind)
			continue
		}
		out[k] = int(i)
	}
	return out, true
}

// secret reads a sensitive attribute. Its value must come from env() or
// file() (or a variable set from the environment): a literal in the
// topology would put the secret in version control.
func (b *body) secret(name string) spec.Secret {
	s := spec.Secret{Src: spec.Src{Range: b.src.At(name)}}
	a, ok := b.content.Attributes[name]
	if !ok {
		return s
	}
	s.Source = sourceOf(a.Expr)
	v, hd := a.Expr.Value(b.d.ctx)
	missing := b.d.un.take()
	if hd.HasErrors() {
		for _, h := range hd {
			if strings.Contains(h.Detail, confinedMark) {
				// file()'s own refusal names the path only.
				b.errorf(name, "File outside the topology", "%s in %s: %s", name, b.kind, h.Detail)
				return s
			}
		}
		// HCL's messages may quote the value; say only that it failed.
		b.errorf(name, "Invalid secret", "%s in %s could not be evaluated (%s); the message is withheld because it may contain the secret.", name, b.kind, s.Source)
		return s
	}
	b.d.addDiags(hd)
	if !v.HasMark(markExternal) && v.IsKnown() {
		b.errorf(name, "Secret in plain text",
			"%s in %s is written in the topology itself. Secrets must come from env(\"VAR\") or file(\"PATH\") (or a variable set through MAILFLEET_VAR_*), so they stay out of version control.", name, b.kind)
		return s
	}
	if !v.IsKnown() || len(missing) > 0 {
		b.unknown(name, missing)
		return s
	}
	v, _ = v.UnmarkDeep()
	sv, err := convert.Convert(v, cty.String)
	if err != nil || sv.IsNull() {
		b.errorf(name, "Incorrect attribute value type", "%s in %s must be a string.", name, b.kind)
		return s
	}
	s.Value = sv.AsString()
	s.Known = true
	if s.Value == "" {
		b.errorf(name, "Empty secret", "%s in %s is empty (%s); an empty password would allow anonymous binds.", name, b.kind, s.Source)
	}
	return s
}

// strongSecret is secret for a value that mailfleet's own parts use as a
// key or a password (not a device's own password, which the device
// decides): shorter than min characters is an error, whose message gives
// the length and the source, never the value.
func (b *body) strongSecret(name string, min int, guards string) spec.Secret {
	s := b.secret(name)
	if s.Known && s.Value != "" && utf8.RuneCountInString(s.Value) < min {
		b.errorf(name, "Weak secret", "%s in %s (%s) is %d characters long; it %s, so it needs at least %d (for example: openssl rand -base64 32).",
			name, b.kind, s.Source, utf8.RuneCountInString(s.Value), guards, min)
	}
	return s
}

// sourceOf describes where a secret comes from without its value.
func sourceOf(e hcl.Expression) string {
	if call, diags := hcl.ExprCall(e); !diags.HasErrors() && len(call.Arguments) == 1 {
		if v, d := call.Arguments[0].Value(nil); !d.HasErrors() && v.Type() == cty.String && v.IsKnown() {
			return call.Name + " " + v.AsString()
		}
		return call.Name + "()"
	}
	r := e.Range()
	return fmt.Sprintf("expression at %s:%d", r.Filename, r.Start.Line)
}

// ref reads an attribute that must be a reference such as node.proxy1 and
// returns the referenced name (for partitions, the path after "storage.").
func (b *body) ref(name, kind string) (string, spec.Range, bool) {
	a, ok := b.content.Attributes[name]
	if !ok {
		return "", spec.Range{}, false
	}
	return b.d.traversalName(a.Expr, kind, name, b.kind)
}

type refItem struct {
	name string
	rng  spec.Range
}

// refs reads a list of references; each element's range is remembered as
// name[i].
func (b *body) refs(name, kind string) []refItem {
	a, ok := b.content.Attributes[name]
	if !ok {
		return nil
	}
	exprs, hd := hcl.ExprList(a.Expr)
	if hd.HasErrors() {
		b.errorf(name, "Invalid reference list", "%s in %s must be a list of references such as [%s.a, %s.b].", name, b.kind, kind, kind)
		return nil
	}
	var out []refItem
	for i, e := range exprs {
		n, r, ok := b.d.traversalName(e, kind, fmt.Sprintf("%s[%d]", name, i), b.kind)
		if ok {
			b.src.Attrs[fmt.Sprintf("%s[%d]", name, i)] = r
			out = append(out, refItem{n, r})
		}
	}
	return out
}

// traversalName checks that e is a reference to kind and returns the name.
// Partitions are written storage.S.disk.D.partition.P and named "S.D.P".
func (d *decoder) traversalName(e hcl.Expression, kind, attr, where string) (string, spec.Range, bool) {
	r := convertRange(e.Range())
	tr, hd := hcl.AbsTraversalForExpr(e)
	parts := traversalParts(tr)
	want := kind + ".NAME"
	if kind == "partition" {
		want = "storage.STORAGE.disk.DISK.partition.NAME"
	}
	bad := func() (string, spec.Range, bool) {
		d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Invalid reference",
			Detail: fmt.Sprintf("%s in %s must be a reference of the form %s.", attr, where, want), Subject: &r})
		return "", r, false
	}
	if hd.HasErrors() || parts == nil {
		return bad()
	}
	if kind == "partition" {
		if len(parts) != 6 || parts[0] != "storage" || parts[2] != "disk" || parts[4] != "partition" {
			return bad()
		}
		name := parts[1] + "." + parts[3] + "." + parts[5]
		if _, ok := d.partitions[name]; !ok {
			d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Reference to undeclared partition",
				Detail: fmt.Sprintf("There is no partition %q on disk %q of storage %q.", parts[5], parts[3], parts[1]), Subject: &r})
			return "", r, false
		}
		return name, r, true
	}
	if len(parts) != 2 || parts[0] != kind {
		return bad()
	}
	if _, ok := d.defined[kind+"."+parts[1]]; !ok {
		d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Reference to undeclared " + kind,
			Detail: fmt.Sprintf("%s refers to %s.%s, but no %s named %q is declared.", attr, kind, parts[1], kind, parts[1]), Subject: &r})
		return "", r, false
	}
	return parts[1], r, true
}

// traversalParts flattens a traversal of attribute steps (and string
// indexes) into names; nil when it has any other step.
func traversalParts(tr hcl.Traversal) []string {
	if len(tr) == 0 {
		return nil
	}
	var out []string
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			out = append(out, s.Name)
		case hcl.TraverseAttr:
			out = append(out, s.Name)
		case hcl.TraverseIndex:
			if s.Key.Type() != cty.String || !s.Key.IsKnown() {
				return nil
			}
			out = append(out, s.Key.AsString())
		default:
			return nil
		}
	}
	return out
}

// blocksOf returns the nested blocks of a type.
func (b *body) blocksOf(typ string) []*hcl.Block {
	var out []*hcl.Block
	for _, blk := range b.content.Blocks {
		if blk.Type == typ {
			out = append(out, blk)
		}
	}
	return out
}

// single returns the one nested block of a type, reporting a second one.
func (b *body) single(typ string) *hcl.Block {
	bs := b.blocksOf(typ)
	if len(bs) > 1 {
		r := convertRange(bs[1].DefRange)
		b.d.diags = append(b.d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Duplicate " + typ + " block",
			Detail: fmt.Sprintf("%s may have at most one %s block.", b.kind, typ), Subject: &r})
	}
	if len(bs) == 0 {
		return nil
	}
	return bs[0]
}

// hasNullElement reports a null element of a list, set or map (a null
// attribute itself was already treated as absent).
func hasNullElement(v cty.Value) bool {
	if v.IsNull() || !v.IsKnown() {
		return false
	}
	ty := v.Type()
	if !ty.IsListType() && !ty.IsMapType() && !ty.IsSetType() {
		return false
	}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			return true
		}
	}
	return false
}
