package ldapschema

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

func mailSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := Load("core", "cosine", "inetorgperson", "misc")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadAttributes(t *testing.T) {
	s := mailSchema(t)
	for _, name := range []string{"mailHost", "mailLocalAddress", "mailRoutingAddress", "uid", "userPassword", "mail", "objectClass", "entryUUID"} {
		if !s.HasAttribute(name) {
			t.Errorf("HasAttribute(%q) = false", name)
		}
	}
	for _, name := range []string{"objectType", "", "loginShell", "mailhost;binary"} {
		if s.HasAttribute(name) {
			t.Errorf("HasAttribute(%q) = true", name)
		}
	}
	if _, single, ok := s.Attribute("mailHost"); !ok || !single {
		t.Errorf("mailHost: single-valued %v, ok %v; misc.schema says SINGLE-VALUE", single, ok)
	}
	if _, single, _ := s.Attribute("mailLocalAddress"); single {
		t.Error("mailLocalAddress is multi-valued")
	}
}

func TestAliases(t *testing.T) {
	s := mailSchema(t)
	for _, tc := range []struct{ name, canonical string }{
		{"cn", "cn"}, {"commonName", "cn"}, {"COMMONNAME", "cn"}, {"2.5.4.3", "cn"},
		{"userid", "uid"}, {"rfc822Mailbox", "mail"}, {"MAILHOST", "mailHost"},
		{"2.16.840.1.113730.3.1.18", "mailHost"},
	} {
		got, _, ok := s.Attribute(tc.name)
		if !ok || got != tc.canonical {
			t.Errorf("Attribute(%q) = %q, %v; want %q", tc.name, got, ok, tc.canonical)
		}
	}
}

func TestObjectClass(t *testing.T) {
	s := mailSchema(t)
	must, may, ok := s.ObjectClass("INETLOCALMAILRECIPIENT")
	if !ok {
		t.Fatal("inetLocalMailRecipient not found")
	}
	if !slices.Equal(must, []string{"objectClass"}) { // from top
		t.Errorf("must = %v", must)
	}
	if !slices.Equal(may, []string{"mailLocalAddress", "mailHost", "mailRoutingAddress"}) {
		t.Errorf("may = %v", may)
	}

	must, may, _ = s.ObjectClass("inetOrgPerson")
	if !slices.Equal(must, []string{"sn", "cn", "objectClass"}) {
		t.Errorf("inetOrgPerson must = %v", must)
	}
	for _, a := range []string{"mail", "uid", "userPassword", "telephoneNumber", "x500UniqueIdentifier"} {
		if !slices.Contains(may, a) {
			t.Errorf("inetOrgPerson may lacks %s: %v", a, may)
		}
	}
	if slices.Contains(may, "cn") {
		t.Error("cn is both must and may")
	}
	if !s.HasObjectClass("2.16.840.1.113730.3.2.2") || !s.HasObjectClass("top") || s.HasObjectClass("posixAccount") {
		t.Error("HasObjectClass")
	}
	if _, _, ok := s.ObjectClass("nope"); ok {
		t.Error("ObjectClass(nope) ok")
	}
}

func TestLoadAll(t *testing.T) {
	s, err := Load(Known()...)
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasAttribute("uidNumber") || !s.HasObjectClass("posixAccount") {
		t.Error("nis not loaded")
	}
	if !slices.Equal(Known(), []string{"core", "cosine", "inetorgperson", "misc", "nis"}) {
		t.Errorf("Known() = %v", Known())
	}
	if _, err := Load("misc", "core", "core", "system"); err != nil {
		t.Errorf("repeated names: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load("core", "mailfleet")
	if err == nil || !strings.HasPrefix(err.Error(), "ldapschema: ") ||
		!strings.Contains(err.Error(), `"mailfleet"`) || !strings.Contains(err.Error(), "core, cosine, inetorgperson, misc, nis") {
		t.Errorf("unknown name: %v", err)
	}
	for _, name := range []string{"", "../schema/core", "core.schema", "LICENSE"} {
		if _, err := Load(name); err == nil {
			t.Errorf("Load(%q) did not fail", name)
		}
	}
	// inetorgperson builds on cosine.
	_, err = Load("core", "inetorgperson")
	if err == nil || !strings.Contains(err.Error(), "inetorgperson:100: object class inetOrgPerson refers to undefined audio, homePhone") {
		t.Errorf("missing cosine: %v", err)
	}
}

// The embedded files are verbatim copies, license headers and all.
func TestEmbeddedCopies(t *testing.T) {
	for _, name := range Known() {
		got, err := files.ReadFile("schema/" + name + ".schema")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(got, []byte("The OpenLDAP Foundation")) || !bytes.Contains(got, []byte("Public License")) {
			t.Errorf("%s: license header missing", name)
		}
		want, err := os.ReadFile("/etc/ldap/schema/" + name + ".schema")
		if err != nil {
			continue // no slapd here
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from /etc/ldap/schema", name)
		}
	}
}

func TestParse(t *testing.T) {
	src := "# comment\r\n" +
		"#attributetype ( 1.1 NAME 'commented'\n" +
		"\tDESC 'a continued comment' )\n" +
		"objectIdentifier Fleet 1.3.6.1.4.1.99999\n" +
		"objectidentifier FleetAt Fleet:1\n" +
		"\n" +
		"attributetype ( FleetAt:1 NAME ( 'fleetHost' 'fleetServer' )\r\n" +
		"    DESC 'where (mail) goes, $ and all'\n" +
		"\tEQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}\n" +
		"  SINGLE-VALUE X-ORIGIN ( 'mailfleet' 'test' ) )\n" +
		"AttributeType ( 1.3.6.1.4.1.99999.1.2 NAME 'fleetAlias' SUP 'fleetHost' )\n" +
		"objectclass ( Fleet:2.1 NAME 'fleetAccount' SUP top AUXILIARY\n" +
		" MUST fleetHost MAY ( fleetAlias $ description ) )\n"
	s, err := Parse("test", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if s.HasAttribute("commented") {
		t.Error("a commented-out definition was read")
	}
	for _, name := range []string{"fleetHost", "FLEETSERVER", "1.3.6.1.4.1.99999.1.1", "fleetAlias"} {
		if !s.HasAttribute(name) {
			t.Errorf("HasAttribute(%q) = false", name)
		}
	}
	if c, single, _ := s.Attribute("fleetServer"); c != "fleetHost" || !single {
		t.Errorf("fleetServer: %q %v", c, single)
	}
	must, may, ok := s.ObjectClass("1.3.6.1.4.1.99999.2.1")
	if !ok || !slices.Equal(must, []string{"fleetHost"}) || !slices.Equal(may, []string{"fleetAlias", "description"}) {
		t.Errorf("fleetAccount: %v %v %v", must, may, ok)
	}
	if s.HasObjectClass("top") {
		t.Error("Parse added the system schema")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"attributetype ( 1.1 NAME 'a'", "test:1: attributetype: missing ')'"},
		{"attributetype ( 1.1 NAME 'a' ) )", "unbalanced ')'"},
		{"\n\nattributetype ( 1.1 NAME 'a )", "test:3: attributetype: unterminated quoted string"},
		{"attributetype ( 1.1 NAME ( ( 'a' ) ) )", "nested more than 2 deep"},
		{"attributetype ( 1.1 NAME 'a' FOO bar )", "unknown keyword FOO"},
		{"attributetype ( 1.1 NAME 'a' NAME 'b' )", "NAME given twice"},
		{"attributetype ( 1.1 NAME a )", `bad NAME "a"`},
		{"attributetype ( 1.1 NAME 'a_b' )", "bad NAME 'a_b'"},
		{"attributetype ( 1.1 NAME 'a' DESC b )", "DESC wants a quoted string"},
		{"attributetype ( 1.1 NAME 'a' SUP ( b c ) )", "SUP: expected a value, found '('"},
		{"attributetype ( 1.1 NAME 'a' SUP 'b c' )", `SUP: "b c" is neither`},
		{"attributetype ( 1.1 NAME 'a' ) x", `unexpected "x" after the closing ')'`},
		{"attributetype 1.1 NAME 'a'", "starts with '('"},
		{"attributetype ( NAME 'a' )", `"NAME" is neither a numeric OID nor a known objectidentifier`},
		{"attributetype ( x:1 NAME 'a' )", `"x:1" is neither`},
		{"attributetype ( 1..1 NAME 'a' )", `"1..1" is neither`},
		{"attributetype ( 1.1 NAME 'a' )\nattributetype ( 1.2 NAME 'A' )", `"a" is already defined at test:1`},
		{"objectclass ( 1.1 NAME 'a' MAY ( ) )", "MAY: empty list"},
		{"objectclass ( 1.1 NAME 'a' MAY ( b $ $ c ) )", "expected a value, found '$'"},
		{"objectclass ( 1.1 NAME 'a' MUST )", "MUST: expected a value, found ')'"},
		{"objectidentifier a", "wants a name and an OID"},
		{"objectidentifier a 1.1\nobjectidentifier a 1.2", "objectidentifier a is already defined"},
		{"objectidentifier a b:1", `objectidentifier a: "b:1" is neither`},
		{"include /etc/passwd", `unknown directive "include"`},
		{strings.Repeat("#", maxSchemaSize+1), "larger than"},
	} {
		_, err := Parse("test", []byte(tc.src))
		if err == nil || !strings.HasPrefix(err.Error(), "ldapschema: test") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v; want %q", tc.src, err, tc.want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	s, err := Parse("empty", nil)
	if err != nil || s.HasAttribute("cn") {
		t.Fatal(s, err)
	}
	var none *Schema
	if none.HasAttribute("cn") || none.HasObjectClass("top") {
		t.Error("nil schema has names")
	}
}
