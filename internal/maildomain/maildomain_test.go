package maildomain

import "testing"

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"MailFleet.TEST.":  "mailfleet.test",
		"maİlfleet.test":   "xn--mailfleet-7jf.test",
		"bücher.example":   "xn--bcher-kva.example",
		"XN--BCHER-KVA.EX": "xn--bcher-kva.ex",
		"example.com":      "example.com",
	} {
		if got, err := Canonical(in); err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "[127.0.0.1]", "a b.example", "exa\x00mple.com", "-x-.example"} {
		if got, err := Canonical(bad); err == nil {
			t.Errorf("Canonical(%q) = %q, want an error", bad, got)
		}
	}
	if Equal("maİlfleet.test", "mailfleet.test") || !Equal("MAILFLEET.test.", "mailfleet.test") {
		t.Error("Equal does not compare canonical forms")
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add("maİlfleet.test")
	f.Add("xn--bcher-kva.example")
	f.Fuzz(func(t *testing.T, d string) {
		c, err := Canonical(d)
		if err != nil {
			return
		}
		if again, err := Canonical(c); err != nil || again != c {
			t.Fatalf("Canonical(%q) = %q, whose canonical form is %q, %v", d, c, again, err)
		}
		for _, r := range c {
			if r >= 0x80 || r >= 'A' && r <= 'Z' {
				t.Fatalf("Canonical(%q) = %q is not lower-case ASCII", d, c)
			}
		}
	})
}
