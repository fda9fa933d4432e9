package ldapschema

import (
	"errors"
	"fmt"
	"strings"
)

// Limits on what Parse reads. The real files are tens of kilobytes, and a
// definition nests parentheses two deep: ( OID ... MAY ( a $ b ) ).
const (
	maxSchemaSize = 1 << 20
	maxNesting    = 2
)

// parse adds the definitions of one file in slapd.conf syntax to s.
//
// As in slapd, a line that starts with white space continues the previous
// one, a line that starts with '#' is a comment (with its continuations),
// and an empty line ends the previous one.
func (s *Schema) parse(name string, src []byte) error {
	if len(src) > maxSchemaSize {
		return fmt.Errorf("ldapschema: %s: larger than %d bytes", name, maxSchemaSize)
	}
	for _, l := range logicalLines(string(src)) {
		where := fmt.Sprintf("%s:%d", name, l.line)
		if err := s.directive(l.text, where); err != nil {
			return fmt.Errorf("ldapschema: %s: %w", where, err)
		}
	}
	return nil
}

type logicalLine struct {
	text string
	line int // of its first physical line, from 1
}

func logicalLines(src string) []logicalLine {
	var out []logicalLine
	var cur strings.Builder
	start := 0
	flush := func() {
		if start > 0 {
			out = append(out, logicalLine{cur.String(), start})
		}
		cur.Reset()
		start = 0
	}
	for i, l := range strings.Split(src, "\n") {
		l = strings.TrimSuffix(l, "\r")
		if l != "" && isSpace(l[0]) && start > 0 {
			cur.WriteByte(' ')
			cur.WriteString(l[1:])
			continue
		}
		flush()
		if strings.TrimLeft(l, " \t\v\f\r") != "" {
			start = i + 1
			cur.WriteString(l)
		}
	}
	flush()
	return out
}

func (s *Schema) directive(text, where string) error {
	text = strings.TrimLeft(text, " \t\v\f\r")
	if strings.HasPrefix(text, "#") {
		return nil
	}
	keyword, rest := text, ""
	if i := strings.IndexAny(text, " \t\v\f\r"); i >= 0 {
		keyword, rest = text[:i], text[i:]
	}
	switch strings.ToLower(keyword) {
	case "attributetype", "attributetypes":
		return s.addAttributeType(rest, where)
	case "objectclass", "objectclasses":
		return s.addObjectClass(rest, where)
	case "objectidentifier":
		return s.addMacro(rest)
	case "ldapsyntax", "ditcontentrule":
		return nil // name no attribute type or object class
	}
	return fmt.Errorf("unknown directive %q", keyword)
}

func (s *Schema) addMacro(rest string) error {
	f := strings.Fields(rest)
	if len(f) != 2 {
		return errors.New("objectidentifier wants a name and an OID")
	}
	if !isDescr(f[0]) {
		return fmt.Errorf("objectidentifier: bad name %q", f[0])
	}
	key := strings.ToLower(f[0])
	if _, dup := s.macros[key]; dup {
		return fmt.Errorf("objectidentifier %s is already defined", f[0])
	}
	oid, err := s.resolveOID(f[1])
	if err != nil {
		return fmt.Errorf("objectidentifier %s: %w", f[0], err)
	}
	s.macros[key] = oid
	return nil
}

// resolveOID expands an objectidentifier macro: "name" or "name:suffix".
func (s *Schema) resolveOID(text string) (string, error) {
	if isNumericOID(text) {
		return text, nil
	}
	prefix, suffix, colon := strings.Cut(text, ":")
	base, ok := s.macros[strings.ToLower(prefix)]
	switch {
	case !ok:
		return "", fmt.Errorf("%q is neither a numeric OID nor a known objectidentifier", text)
	case !colon:
		return base, nil
	case !isNumericOID(suffix):
		return "", fmt.Errorf("bad OID suffix in %q", text)
	}
	return base + "." + suffix, nil
}

var attributeKeywords = map[string]arity{
	"NAME": list, "DESC": one, "OBSOLETE": flag, "SUP": one,
	"EQUALITY": one, "ORDERING": one, "SUBSTR": one, "SYNTAX": one,
	"SINGLE-VALUE": flag, "COLLECTIVE": flag, "NO-USER-MODIFICATION": flag,
	"USAGE": one,
}

var classKeywords = map[string]arity{
	"NAME": list, "DESC": one, "OBSOLETE": flag, "SUP": list,
	"ABSTRACT": flag, "STRUCTURAL": flag, "AUXILIARY": flag,
	"MUST": list, "MAY": list,
}

func (s *Schema) addAttributeType(text, where string) error {
	d, err := s.definition(text, attributeKeywords)
	if err != nil {
		return fmt.Errorf("attributetype: %w", err)
	}
	a := &attributeType{oid: d.oid, names: d.names, where: where}
	_, a.single = d.fields["SINGLE-VALUE"]
	if sup := d.fields["SUP"]; len(sup) == 1 {
		a.sup = sup[0].text
	}
	if err := d.checkOIDs("SUP"); err != nil {
		return fmt.Errorf("attributetype %s: %w", a.canonical(), err)
	}
	for _, key := range d.keys() {
		if prev := s.attrs[key]; prev != nil {
			return fmt.Errorf("attributetype %s: %q is already defined at %s", a.canonical(), key, prev.where)
		}
	}
	for _, key := range d.keys() {
		s.attrs[key] = a
	}
	s.attrList = append(s.attrList, a)
	return nil
}

func (s *Schema) addObjectClass(text, where string) error {
	d, err := s.definition(text, classKeywords)
	if err != nil {
		return fmt.Errorf("objectclass: %w", err)
	}
	oc := &objectClass{oid: d.oid, names: d.names, where: where}
	if err := d.checkOIDs("SUP", "MUST", "MAY"); err != nil {
		return fmt.Errorf("objectclass %s: %w", oc.canonical(), err)
	}
	oc.sup, oc.must, oc.may = d.texts("SUP"), d.texts("MUST"), d.texts("MAY")
	for _, key := range d.keys() {
		if prev := s.classes[key]; prev != nil {
			return fmt.Errorf("objectclass %s: %q is already defined at %s", oc.canonical(), key, prev.where)
		}
	}
	for _, key := range d.keys() {
		s.classes[key] = oc
	}
	s.classList = append(s.classList, oc)
	return nil
}

// def is a parsed "( OID KEYWORD value ... )".
type def struct {
	oid    string
	names  []string
	fields map[string][]token // by upper-case keyword; flags have none
}

// keys are the look-up keys of a definition: its names and OID.
func (d *def) keys() []string {
	keys := []string{d.oid}
	for _, n := range d.names {
		keys = append(keys, strings.ToLower(n))
	}
	return keys
}

func (d *def) texts(keyword string) []string {
	var out []string
	for _, t := range d.fields[keyword] {
		out = append(out, t.text)
	}
	return out
}

// checkOIDs checks that the values of keywords are names or numeric OIDs.
func (d *def) checkOIDs(keywords ...string) error {
	for _, k := range keywords {
		for _, t := range d.fields[k] {
			if !isDescr(t.text) && !isNumericOID(t.text) {
				return fmt.Errorf("%s: %q is neither a name nor a numeric OID", k, t.text)
			}
		}
	}
	return nil
}

type arity int

const (
	flag arity = iota // KEYWORD
	one               // KEYWORD value
	list              // KEYWORD value, or KEYWORD ( value value ... )
)

func (s *Schema) definition(text string, keywords map[string]arity) (*def, error) {
	toks, err := tokenize(text)
	if err != nil {
		return nil, err
	}
	p := &tokens{toks: toks}
	if !p.skip('(') {
		return nil, errors.New("a definition starts with '('")
	}
	t := p.take()
	if t.kind != word {
		return nil, fmt.Errorf("expected an OID after '(', found %s", t)
	}
	d := &def{fields: map[string][]token{}}
	if d.oid, err = s.resolveOID(t.text); err != nil {
		return nil, err
	}
	for !p.skip(')') {
		t := p.take()
		if t.kind != word {
			return nil, fmt.Errorf("%s: expected a keyword, found %s", d.oid, t)
		}
		kw := strings.ToUpper(t.text)
		ar, ok := keywords[kw]
		if !ok && !strings.HasPrefix(kw, "X-") {
			return nil, fmt.Errorf("%s: unknown keyword %s", d.oid, t.text)
		} else if !ok {
			ar = list
		}
		if _, dup := d.fields[kw]; dup {
			return nil, fmt.Errorf("%s: %s given twice", d.oid, kw)
		}
		var vals []token
		switch ar {
		case one:
			vals, err = p.values(false)
		case list:
			vals, err = p.values(true)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", d.oid, kw, err)
		}
		d.fields[kw] = vals
	}
	if p.more() {
		return nil, fmt.Errorf("%s: unexpected %s after the closing ')'", d.oid, p.take())
	}
	for _, n := range d.fields["NAME"] {
		if n.kind != quoted || !isDescr(n.text) {
			return nil, fmt.Errorf("%s: bad NAME %s", d.oid, n)
		}
		d.names = append(d.names, n.text)
	}
	if desc, ok := d.fields["DESC"]; ok && desc[0].kind != quoted {
		return nil, fmt.Errorf("%s: DESC wants a quoted string, found %s", d.oid, desc[0])
	}
	return d, nil
}

type tokenKind byte

const (
	end    tokenKind = 0
	open   tokenKind = '('
	closer tokenKind = ')'
	dollar tokenKind = '$'
	word   tokenKind = 'w'
	quoted tokenKind = 'q'
)

type token struct {
	kind tokenKind
	text string
}

func (t token) String() string {
	switch t.kind {
	case end:
		return "the end of the definition"
	case word:
		return fmt.Sprintf("%q", t.text)
	case quoted:
		return fmt.Sprintf("'%s'", t.text)
	}
	return fmt.Sprintf("'%c'", t.kind)
}

// tokenize splits a definition into parentheses, '$', 'quoted strings' and
// words, checking that parentheses balance and nest at most maxNesting deep.
func tokenize(s string) ([]token, error) {
	var toks []token
	depth := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '(' || c == ')' || c == '$':
			if c == '(' {
				if depth++; depth > maxNesting {
					return nil, fmt.Errorf("parentheses nested more than %d deep", maxNesting)
				}
			} else if c == ')' {
				if depth--; depth < 0 {
					return nil, errors.New("unbalanced ')'")
				}
			}
			toks = append(toks, token{kind: tokenKind(c)})
			i++
		case c == '\'':
			n := strings.IndexByte(s[i+1:], '\'')
			if n < 0 {
				return nil, errors.New("unterminated quoted string")
			}
			toks = append(toks, token{quoted, s[i+1 : i+1+n]})
			i += n + 2
		default:
			n := i
			for n < len(s) && !isSpace(s[n]) && !strings.ContainsRune("()$'", rune(s[n])) {
				n++
			}
			toks = append(toks, token{word, s[i:n]})
			i = n
		}
	}
	if depth != 0 {
		return nil, errors.New("missing ')'")
	}
	return toks, nil
}

type tokens struct {
	toks []token
	pos  int
}

func (p *tokens) more() bool { return p.pos < len(p.toks) }

func (p *tokens) take() token {
	if !p.more() {
		return token{kind: end}
	}
	p.pos++
	return p.toks[p.pos-1]
}

func (p *tokens) skip(k tokenKind) bool {
	if p.more() && p.toks[p.pos].kind == k {
		p.pos++
		return true
	}
	return false
}

// values reads a word or quoted string or, if many, a parenthesized list of
// them, separated by white space or '$'.
func (p *tokens) values(many bool) ([]token, error) {
	if !many || !p.skip('(') {
		t := p.take()
		if t.kind != word && t.kind != quoted {
			return nil, fmt.Errorf("expected a value, found %s", t)
		}
		return []token{t}, nil
	}
	var vals []token
	for !p.skip(')') {
		if len(vals) > 0 {
			p.skip('$')
		}
		t := p.take()
		if t.kind != word && t.kind != quoted {
			return nil, fmt.Errorf("expected a value, found %s", t)
		}
		vals = append(vals, t)
	}
	if len(vals) == 0 {
		return nil, errors.New("empty list")
	}
	return vals, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// isDescr reports whether s is a descr of RFC 4512: ALPHA *(ALPHA / DIGIT / "-").
func isDescr(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || c != '-' && (c < '0' || c > '9')) {
			return false
		}
	}
	return s != ""
}

// isNumericOID reports whether s is digits separated by single dots.
func isNumericOID(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return false
		}
	}
	return true
}
