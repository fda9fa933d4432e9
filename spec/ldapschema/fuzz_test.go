package ldapschema

import (
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// More seeds are in testdata/fuzz/<FuzzName>/.

func FuzzParse(f *testing.F) {
	// The smallest real file: big seeds make the fuzzer slow to minimize.
	src, err := files.ReadFile("schema/misc.schema")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(src)
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("fuzz", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ldapschema: fuzz") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		for _, a := range s.attrList {
			for _, n := range append([]string{a.oid}, a.names...) {
				if c, _, ok := s.Attribute(n); !ok || c != a.canonical() {
					t.Fatalf("Attribute(%q) = %q, %v; want %q", n, c, ok, a.canonical())
				}
			}
		}
		for _, oc := range s.classList {
			if _, _, ok := s.ObjectClass(oc.oid); !ok {
				t.Fatalf("ObjectClass(%q) not found", oc.oid)
			}
		}
		_ = s.checkReferences()
	})
}

var fuzzSchema = sync.OnceValue(func() *Schema {
	s, err := Load("core", "cosine", "inetorgperson", "misc")
	if err != nil {
		panic(err)
	}
	return s
})

func FuzzCheckFilter(f *testing.F) {
	f.Add(referenceFilter)
	f.Add("(&(uid=%e)(objectType=inetLocalMailRecipient))")
	f.Fuzz(func(t *testing.T, filter string) {
		for _, p := range CheckFilter(fuzzSchema(), filter) {
			if p.Offset < 0 || p.Offset > len(filter) {
				t.Fatalf("%v: offset out of range", p)
			}
			if (p.Kind == UnknownAttribute || p.Kind == UnknownPlaceholder) && !strings.HasPrefix(filter[p.Offset:], p.Name) {
				t.Fatalf("%v: %q is not at its offset", p, p.Name)
			}
		}
		// Offsets come from itemSpans, which must read every filter that
		// go-ldap compiles as go-ldap does. (Not on long filters, which
		// CheckFilter refuses: go-ldap recurses once per '('.)
		if len(filter) > maxCheckLen {
			return
		}
		sub, _, _ := substitute(filter)
		if p, err := compileFilter(sub); err == nil {
			if _, ok := itemSpans(sub, filterItems(p, nil)); !ok {
				t.Fatalf("itemSpans disagrees with go-ldap on %q", sub)
			}
		}
	})
}

func FuzzCheckDN(f *testing.F) {
	f.Add("uid=jdoe,ou=people,dc=example,dc=org")
	f.Fuzz(func(t *testing.T, dn string) {
		for _, p := range CheckDN(fuzzSchema(), dn) {
			if p.Offset < 0 || p.Offset > len(dn) {
				t.Fatalf("%v: offset out of range", p)
			}
		}
		// Offsets come from dnTypeOffsets, which must find one type per
		// attribute of every DN that ParseDN accepts.
		if len(dn) > maxCheckLen {
			return
		}
		parsed, err := ldap.ParseDN(dn)
		if err != nil {
			return
		}
		n := 0
		for _, rdn := range parsed.RDNs {
			n += len(rdn.Attributes)
		}
		if got := len(dnTypeOffsets(dn)); got != n {
			t.Fatalf("dnTypeOffsets found %d types, ParseDN %d", got, n)
		}
	})
}
