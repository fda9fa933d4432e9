package ldapschema

import (
	"fmt"
	"strings"
	"testing"
)

const referenceFilter = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"

func TestCheckFilterReference(t *testing.T) {
	s := mailSchema(t)
	if ps := CheckFilter(s, referenceFilter); len(ps) != 0 {
		t.Errorf("reference filter: %v", ps)
	}
	filter := "(&(uid=%e)(objectType=inetLocalMailRecipient))"
	ps := CheckFilter(s, filter)
	want := Problem{UnknownAttribute, "objectType", strings.Index(filter, "objectType"), `unknown attribute type "objectType"`}
	if len(ps) != 1 || ps[0] != want {
		t.Fatalf("got %v, want %v", ps, want)
	}
	if want.Offset != 11 || ps[0].Error() != `ldapschema: offset 11: unknown attribute type "objectType"` {
		t.Errorf("offset %d, %q", want.Offset, ps[0].Error())
	}
}

// problems renders problems compactly: "kind name@offset".
func problems(ps []Problem) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s %s@%d", p.Kind, p.Name, p.Offset))
	}
	return strings.Join(out, "; ")
}

func TestCheckFilter(t *testing.T) {
	s := mailSchema(t)
	for _, tc := range []struct{ filter, want string }{
		{"(mailLocalAddress=%e)", ""},
		{"(|(mail=%u@%d)(mailLocalAddress=%e))", ""},
		{"(&(uid=%u)(OBJECTCLASS=INETORGPERSON)(!(mailHost=*)))", ""},
		{"(&(objectClass=inetLocalMailRecipient)(objectClass=mailAccount))", "objectclass mailAccount@51"},
		{"(2.5.4.0=posixAccount)", "objectclass posixAccount@9"},
		{"(objectClass=inetOrg\\50erson)", ""}, // \50 is P
		{"(objectClass=inetOrg\\50)", "objectclass inetOrgP@13"},
		{"(objectClass=%u)", ""},   // from the user: not checked
		{"(objectClass=foo*)", ""}, // only equality is checked
		{"(objectClass=*)", ""},
		{"(userCertificate;binary=*)", ""},
		{"(mailHost;x-fleet=a)", ""},
		{"(bogus;binary=*)", "attribute bogus@1"},
		{"(2.5.4.3=x)", ""},
		{"(9.9.9=x)", "attribute 9.9.9@1"},
		{"(cn:caseExactMatch:=Fleet)", ""},
		{"(cn:dn:=x)", ""},
		{"(:dn:2.5.13.5:=x)", ""},
		{"(fleet:dn:=x)", "attribute fleet@1"},
		{"(&(modifyTimestamp>=20250101000000Z)(uidx<=5)(sn~=smith)(mailHos=a*b*c))", "attribute uidx@37; attribute mailHos@57"},
		{"(!cn=x)", ""},
		{"(!(nope=x))", "attribute nope@3"},
		{"(=x)", "attribute @1"},
		{"(%u=x)", ""}, // built from a placeholder: not checked
		{"(uid=%s)", "placeholder %s@5"},
		{"(uid=100%)", "placeholder %@8"},
		{"(uid=%%u)", "placeholder %@5"},
		{"(uid=\\25u)", ""},
		{"(bad=%x)(", "placeholder %x@5; syntax @0"},
		{"(&(mail=%e)y)", "syntax @11"},
		{"(&(mail=%e)(cn=x)", "syntax @0"},
		{"uid=x", "syntax @0"},
		{"", "syntax @0"},
		{"(uid=\\zz)", "syntax @0"},
		{"(uid=\xff)", "syntax @5"},
		{"(" + strings.Repeat("x", maxCheckLen) + "=y)", "syntax @0"},
	} {
		if got := problems(CheckFilter(s, tc.filter)); got != tc.want {
			t.Errorf("CheckFilter(%q) = %s; want %s", tc.filter, got, tc.want)
		}
	}
}

func TestCheckFilterMessages(t *testing.T) {
	s := mailSchema(t)
	ps := CheckFilter(s, "(&(mail=%e)y)")
	if len(ps) != 1 || ps[0].Detail != "filter does not parse: ldap: expected ')' at position 11" {
		t.Errorf("%q", ps)
	}
	ps = CheckFilter(s, "(uid=%s)")
	if len(ps) != 1 || !strings.Contains(ps[0].Detail, `unknown placeholder "%s": use %e, %u or %d`) {
		t.Errorf("%q", ps)
	}
}

func TestCheckDN(t *testing.T) {
	s := mailSchema(t)
	for _, tc := range []struct{ dn, want string }{
		{"", ""},
		{"uid=jdoe,ou=people,dc=example,dc=org", ""},
		{"UID=jdoe+CN=John Doe, OU=people; DC=example", ""},
		{"2.5.4.3=x,dc=org", ""},
		{"uid=x, ou=people,  fleet=bar+cn=x,dc=example,dc=org", "attribute fleet@19"},
		{"cn=a\\,b=c,mailRoute=x", "attribute mailRoute@10"},
		{"cn=a\\2Cb=c,bogus=1", "attribute bogus@11"},
		{"cn=x, =bogus=1", "attribute bogus@7"}, // as ParseDN reads it
		{"cn=x,dc", "syntax @0"},
		{"cn=\\zz", "syntax @0"},
		{strings.Repeat("dc=x,", maxCheckLen), "syntax @0"},
	} {
		if got := problems(CheckDN(s, tc.dn)); got != tc.want {
			t.Errorf("CheckDN(%q) = %s; want %s", tc.dn, got, tc.want)
		}
	}
}
