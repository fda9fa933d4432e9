// Package ldapschema reads OpenLDAP schema files (the slapd.conf syntax of
// core.schema and friends) so that the topology validator can check LDAP
// DNs and search filters against the attribute types and object classes
// the directory really loads, rather than against a list kept by hand.
//
// Copies of OpenLDAP's core, cosine, inetorgperson, misc and nis schema
// files are embedded, with system.schema: the part of the schema that slapd
// defines in its own code (objectClass, cn, uid, userPassword, top, the
// operational attributes, ...). They are covered by the OpenLDAP Public
// License in schema/LICENSE.
// It imports nothing of mailfleet.
package ldapschema

import (
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

//go:embed schema/*.schema
var files embed.FS

// systemName is the schema built into slapd; Load always includes it.
const systemName = "system"

// Schema is a set of attribute types and object classes. Look-ups ignore
// case and accept any of a definition's names or its OID.
type Schema struct {
	attrs   map[string]*attributeType // by lower-case name and by OID
	classes map[string]*objectClass
	macros  map[string]string // objectidentifier name (lower case) → OID

	attrList  []*attributeType // in the order defined
	classList []*objectClass
}

type attributeType struct {
	oid    string
	names  []string
	sup    string
	single bool
	where  string // "file:line"
}

type objectClass struct {
	oid       string
	names     []string
	sup       []string
	must, may []string
	where     string
}

func newSchema() *Schema {
	return &Schema{
		attrs:   map[string]*attributeType{},
		classes: map[string]*objectClass{},
		macros:  map[string]string{},
	}
}

// Known returns the names Load accepts, sorted. The system schema is not
// among them: Load always includes it.
func Known() []string {
	entries, _ := files.ReadDir("schema")
	var names []string
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".schema")
		if name != systemName {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Load returns the schema slapd would have after including the named
// embedded schema files ("core", "cosine", ...) on top of its built-in
// system schema. Unlike Parse, it also checks that every SUP, MUST and MAY
// names a defined attribute type or object class, so that a missing file
// (inetorgperson without cosine, say) is reported. Order does not matter and
// a name given twice is loaded once.
func Load(names ...string) (*Schema, error) {
	key := cacheKey(names)
	loaded.Lock()
	defer loaded.Unlock()
	if s, ok := loaded.m[key]; ok {
		return s, nil
	}
	s, err := load(names)
	if err == nil {
		loaded.m[key] = s
	}
	return s, err
}

// loaded remembers each set of schemas parsed: a Schema is read-only once
// loaded, and validation loads the same few sets again and again.
var loaded = struct {
	sync.Mutex
	m map[string]*Schema
}{m: map[string]*Schema{}}

func cacheKey(names []string) string {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	return strings.Join(sorted, "\x00")
}

func load(names []string) (*Schema, error) {
	s := newSchema()
	seen := map[string]bool{}
	for _, name := range append([]string{systemName}, names...) {
		if seen[name] {
			continue
		}
		seen[name] = true
		src, err := files.ReadFile("schema/" + name + ".schema")
		if err != nil || strings.ContainsAny(name, "/.") {
			return nil, fmt.Errorf("ldapschema: unknown schema %q (known: %s)", name, strings.Join(Known(), ", "))
		}
		if err := s.parse(name, src); err != nil {
			return nil, err
		}
	}
	if err := s.checkReferences(); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse reads one schema file in slapd.conf syntax. name is used in error
// messages. The result holds only what src defines: names it refers to
// (SUP top, say) need not be defined in it.
func Parse(name string, src []byte) (*Schema, error) {
	s := newSchema()
	if err := s.parse(name, src); err != nil {
		return nil, err
	}
	return s, nil
}

// HasAttribute reports whether name is a name or OID of an attribute type.
func (s *Schema) HasAttribute(name string) bool {
	_, _, ok := s.Attribute(name)
	return ok
}

// HasObjectClass reports whether name is a name or OID of an object class.
func (s *Schema) HasObjectClass(name string) bool {
	return s.class(name) != nil
}

// Attribute returns the canonical (first) name of an attribute type, or its
// OID if it has no name, and whether it is SINGLE-VALUE.
func (s *Schema) Attribute(name string) (canonical string, singleValued bool, ok bool) {
	a := s.attr(name)
	if a == nil {
		return "", false, false
	}
	return a.canonical(), a.single, true
}

// ObjectClass returns the attribute types an entry of the class must and
// may have, including those of its superclasses, by canonical name and
// without duplicates. An attribute both required and allowed is in must
// only. Names the schema does not define are returned as written.
func (s *Schema) ObjectClass(name string) (must, may []string, ok bool) {
	oc := s.class(name)
	if oc == nil {
		return nil, nil, false
	}
	var chain []*objectClass
	visited := map[*objectClass]bool{}
	var walk func(oc *objectClass)
	walk = func(oc *objectClass) {
		if oc == nil || visited[oc] {
			return
		}
		visited[oc] = true
		chain = append(chain, oc)
		for _, sup := range oc.sup {
			walk(s.class(sup))
		}
	}
	walk(oc)

	seen := map[string]bool{}
	add := func(list []string, names []string) []string {
		for _, n := range names {
			if a := s.attr(n); a != nil {
				n = a.canonical()
			}
			if !seen[strings.ToLower(n)] {
				seen[strings.ToLower(n)] = true
				list = append(list, n)
			}
		}
		return list
	}
	for _, oc := range chain {
		must = add(must, oc.must)
	}
	for _, oc := range chain {
		may = add(may, oc.may)
	}
	return must, may, true
}

func (s *Schema) attr(name string) *attributeType {
	if s == nil {
		return nil
	}
	return s.attrs[strings.ToLower(name)]
}

func (s *Schema) class(name string) *objectClass {
	if s == nil {
		return nil
	}
	return s.classes[strings.ToLower(name)]
}

func (a *attributeType) canonical() string {
	if len(a.names) > 0 {
		return a.names[0]
	}
	return a.oid
}

// checkReferences reports every definition whose SUP, MUST or MAY names
// something undefined, usually because a schema file is missing.
func (s *Schema) checkReferences() error {
	var errs []error
	report := func(where, what string, missing []string) {
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("ldapschema: %s: %s refers to undefined %s (is a schema missing?)",
				where, what, strings.Join(missing, ", ")))
		}
	}
	for _, a := range s.attrList {
		if a.sup != "" && s.attr(a.sup) == nil {
			report(a.where, "attribute type "+a.canonical(), []string{a.sup})
		}
	}
	for _, oc := range s.classList {
		var missing []string
		for _, n := range oc.sup {
			if s.class(n) == nil {
				missing = append(missing, n)
			}
		}
		for _, n := range append(append([]string(nil), oc.must...), oc.may...) {
			if s.attr(n) == nil {
				missing = append(missing, n)
			}
		}
		report(oc.where, "object class "+oc.canonical(), missing)
	}
	return errors.Join(errs...)
}

func (oc *objectClass) canonical() string {
	if len(oc.names) > 0 {
		return oc.names[0]
	}
	return oc.oid
}
