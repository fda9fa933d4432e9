package ldapschema

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// Kind says what is wrong with a filter or DN.
type Kind string

const (
	BadSyntax          Kind = "syntax"      // does not parse, or is too long
	UnknownPlaceholder Kind = "placeholder" // a '%' that is not %e, %u or %d
	UnknownAttribute   Kind = "attribute"   // an attribute type the schema lacks
	UnknownObjectClass Kind = "objectclass" // an objectClass value the schema lacks
)

// Problem is one mistake in a filter or DN.
type Problem struct {
	Kind   Kind
	Name   string // the unknown name or placeholder; "" for BadSyntax
	Offset int    // byte offset of Name (or of the error) in the checked string
	Detail string // a sentence for people
}

func (p Problem) Error() string {
	return fmt.Sprintf("ldapschema: offset %d: %s", p.Offset, p.Detail)
}

// maxCheckLen bounds the filters and DNs that CheckFilter and CheckDN read.
const maxCheckLen = 4096

// Placeholders and the sample values CheckFilter puts in their place.
var placeholders = map[byte]string{
	'e': "user@example.org", // the whole address
	'u': "user",             // its local part
	'd': "example.org",      // its domain
}

// CheckFilter checks an account lookup filter such as
// "(&(uid=%e)(objectClass=inetLocalMailRecipient))": that its placeholders
// are %e, %u or %d (write a literal '%' as \25), that it compiles with
// go-ldap once they are replaced by sample values, that every attribute
// type it names is in s, and that every objectClass it tests for equality
// is. Names built from a placeholder are not checked.
func CheckFilter(s *Schema, filter string) []Problem {
	if len(filter) > maxCheckLen {
		return []Problem{{Kind: BadSyntax, Detail: fmt.Sprintf("filter is longer than %d bytes", maxCheckLen)}}
	}
	sub, orig, problems := substitute(filter)
	packet, err := compileFilter(sub)
	if err != nil {
		return append(problems, syntaxProblem("filter", err, orig))
	}
	items := filterItems(packet, nil)
	spans, ok := itemSpans(sub, items)
	for i, it := range items {
		// Where the item is in filter, when known.
		var sp span
		if ok {
			sp = span{orig[spans[i].attr], orig[spans[i].attrEnd], orig[spans[i].val], orig[spans[i].valEnd]}
		}
		if it.attr == "" && it.tag == ldap.FilterExtensibleMatch {
			continue // (:dn:2.5.13.5:=x) names no attribute
		}
		if ok && strings.Contains(filter[sp.attr:sp.attrEnd], "%") {
			continue
		}
		name, _, _ := strings.Cut(it.attr, ";") // drop options such as ;binary
		a := s.attr(name)
		if a == nil {
			detail := fmt.Sprintf("unknown attribute type %q", name)
			if name == "" {
				detail = "missing attribute type"
			}
			problems = append(problems, Problem{UnknownAttribute, name, sp.attr, detail})
			continue
		}
		if a.oid != "2.5.4.0" || it.tag != ldap.FilterEqualityMatch {
			continue
		}
		if ok && strings.Contains(filter[sp.val:sp.valEnd], "%") {
			continue
		}
		if !s.HasObjectClass(it.value) {
			problems = append(problems, Problem{UnknownObjectClass, it.value, sp.val,
				fmt.Sprintf("unknown object class %q", it.value)})
		}
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Offset < problems[j].Offset })
	return problems
}

// CheckDN checks that dn parses and that the attribute type of each of its
// RDNs is in s.
func CheckDN(s *Schema, dn string) []Problem {
	if len(dn) > maxCheckLen {
		return []Problem{{Kind: BadSyntax, Detail: fmt.Sprintf("DN is longer than %d bytes", maxCheckLen)}}
	}
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return []Problem{{Kind: BadSyntax, Detail: "DN does not parse: " + err.Error()}}
	}
	offsets := dnTypeOffsets(dn)
	var problems []Problem
	i := 0
	for _, rdn := range parsed.RDNs {
		for _, atv := range rdn.Attributes {
			off := 0
			if i < len(offsets) {
				off = offsets[i]
			}
			i++
			if !s.HasAttribute(atv.Type) {
				problems = append(problems, Problem{UnknownAttribute, atv.Type, off,
					fmt.Sprintf("unknown attribute type %q", atv.Type)})
			}
		}
	}
	return problems
}

// dnTypeOffsets returns where each attribute type of dn starts, scanning as
// ldap.ParseDN does: '\' escapes the next byte, the first '=' after a
// non-blank type ends it, and ',', ';' and '+' end a value.
func dnTypeOffsets(dn string) []int {
	var offsets []int
	start, inType := 0, true
	for i := 0; i < len(dn); i++ {
		switch c := dn[i]; {
		case c == '\\':
			i++
		case c == '=' && inType:
			off := start
			for off < i && dn[off] == ' ' {
				off++
			}
			if off == i { // ParseDN takes an empty type as none yet
				start = i + 1
				continue
			}
			offsets = append(offsets, off)
			inType = false
		case c == ',' || c == ';' || c == '+':
			start, inType = i+1, true
		}
	}
	return offsets
}

// substitute replaces the placeholders of filter by sample values. orig maps
// each byte offset in sub (and len(sub)) to one in filter; a sample value
// maps to its placeholder.
func substitute(filter string) (sub string, orig []int, problems []Problem) {
	var b strings.Builder
	for i := 0; i < len(filter); i++ {
		c := filter[i]
		if c != '%' {
			b.WriteByte(c)
			orig = append(orig, i)
			continue
		}
		if i+1 < len(filter) && placeholders[filter[i+1]] != "" {
			v := placeholders[filter[i+1]]
			b.WriteString(v)
			for range v {
				orig = append(orig, i)
			}
			i++
			continue
		}
		name := "%"
		if i+1 < len(filter) && isAlnum(filter[i+1]) {
			name = filter[i : i+2]
		}
		problems = append(problems, Problem{UnknownPlaceholder, name, i,
			fmt.Sprintf("unknown placeholder %q: use %%e, %%u or %%d, and \\25 for a literal '%%'", name)})
		b.WriteByte(c)
		orig = append(orig, i)
	}
	return b.String(), append(orig, len(filter)), problems
}

// compileFilter is ldap.CompileFilter, guarded against a panic in it.
func compileFilter(filter string) (p *ber.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("ldap: filter compiler failed: %v", r)
		}
	}()
	p, err = ldap.CompileFilter(filter)
	if err == nil && p == nil {
		err = errors.New("ldap: error compiling filter")
	}
	return p, err
}

var positionRE = regexp.MustCompile(`position (\d+)`)

// syntaxProblem reports err from go-ldap, with the positions it names in
// the substituted filter moved back to the original one.
func syntaxProblem(what string, err error, orig []int) Problem {
	var lerr *ldap.Error
	if errors.As(err, &lerr) && lerr.Err != nil {
		err = lerr.Err // without "LDAP Result Code 201 ..."
	}
	off := 0
	msg := positionRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(m, "position "))
		if n < 0 || n >= len(orig) {
			return m
		}
		off = orig[n]
		return "position " + strconv.Itoa(off)
	})
	return Problem{Kind: BadSyntax, Offset: off, Detail: what + " does not parse: " + msg}
}

// item is one comparison of a compiled filter, such as (uid=x).
type item struct {
	tag   ber.Tag // ldap.FilterEqualityMatch, ...
	attr  string  // the attribute description, with any options
	value string  // the asserted value, for the tags that have one
}

// filterItems lists the comparisons of a compiled filter in order.
func filterItems(p *ber.Packet, out []item) []item {
	if p == nil {
		return out
	}
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr, ldap.FilterNot:
		for _, c := range p.Children {
			out = filterItems(c, out)
		}
	case ldap.FilterPresent:
		out = append(out, item{tag: p.Tag, attr: text(p)})
	case ldap.FilterEqualityMatch, ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual,
		ldap.FilterApproxMatch, ldap.FilterSubstrings:
		it := item{tag: p.Tag}
		if len(p.Children) > 0 {
			it.attr = text(p.Children[0])
		}
		if len(p.Children) > 1 && p.Tag != ldap.FilterSubstrings {
			it.value = text(p.Children[1])
		}
		out = append(out, it)
	case ldap.FilterExtensibleMatch:
		it := item{tag: p.Tag}
		for _, c := range p.Children {
			switch c.Tag {
			case ldap.MatchingRuleAssertionType:
				it.attr = text(c)
			case ldap.MatchingRuleAssertionMatchValue:
				it.value = text(c)
			}
		}
		out = append(out, it)
	}
	return out
}

func text(p *ber.Packet) string {
	if p == nil || p.Data == nil {
		return ""
	}
	return p.Data.String()
}

// span is where one item's attribute description and value are in a filter.
type span struct{ attr, attrEnd, val, valEnd int }

// itemSpans finds where the items of a filter that compiled are, scanning
// it as ldap.CompileFilter does. ok is false if what it finds does not
// match items (a go-ldap change, say).
func itemSpans(f string, items []item) (spans []span, ok bool) {
	var walk func(pos int) int
	walk = func(pos int) int {
		if pos >= len(f) {
			return len(f)
		}
		switch f[pos] {
		case '(':
			return walk(pos+1) + 1 // and its ')'
		case '&', '|':
			pos++
			for pos < len(f) && f[pos] == '(' {
				pos = walk(pos + 1)
			}
			return pos + 1
		case '!':
			return walk(pos + 1)
		}
		sp := span{attr: pos}
		end := strings.IndexByte(f[pos:], ')')
		if end < 0 {
			end = len(f)
		} else {
			end += pos
		}
		sp.attrEnd = pos
		for sp.attrEnd < end && !isFilterOp(f[sp.attrEnd:]) {
			sp.attrEnd++
		}
		switch rest := f[sp.attrEnd:end]; {
		case strings.HasPrefix(rest, "="):
			sp.val = sp.attrEnd + 1
		case strings.HasPrefix(rest, ":"):
			if i := strings.Index(rest, ":="); i >= 0 {
				sp.val = sp.attrEnd + i + 2
			} else {
				sp.val = end
			}
		default: // >=, <=, ~=
			sp.val = min(sp.attrEnd+2, end)
		}
		sp.valEnd = end
		spans = append(spans, sp)
		return end + 1
	}
	if walk(1) != len(f) || len(spans) != len(items) {
		return nil, false
	}
	for i, sp := range spans {
		if f[sp.attr:sp.attrEnd] != items[i].attr {
			return nil, false
		}
	}
	return spans, true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isFilterOp(s string) bool {
	switch {
	case s == "":
		return false
	case s[0] == '=' || s[0] == ':':
		return true
	case strings.IndexByte("<>~", s[0]) >= 0:
		return len(s) > 1 && s[1] == '='
	}
	return false
}
