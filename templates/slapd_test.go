package templates

import "testing"

func TestSlapdQuote(t *testing.T) {
	for in, want := range map[string]string{
		"dc=example,dc=com":     `"dc=example,dc=com"`,
		`cn=a\,b,dc=x`:          `"cn=a\\,b,dc=x"`,
		`cn=say "hi",dc=x`:      `"cn=say \"hi\",dc=x"`,
		`cn=back\\slash,dc=x`:   `"cn=back\\\\slash,dc=x"`,
		"cn=with space,dc=test": `"cn=with space,dc=test"`,
	} {
		if got := SlapdQuote(in); got != want {
			t.Errorf("SlapdQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
