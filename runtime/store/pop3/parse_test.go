package pop3

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in   string
		name string
		args string
		rest string
		err  error
	}{
		{"USER bob@example.org", "USER", "bob@example.org", "bob@example.org", nil},
		{"pass secret with spaces", "PASS", "secret|with|spaces", "secret with spaces", nil},
		{"STAT", "STAT", "", "", nil},
		{"TOP 1 10", "TOP", "1|10", "1 10", nil},
		{"", "", "", "", ErrEmptyCommand},
		{"X", "", "", "", ErrBadKeyword},
		{"TOOLONG 1", "", "", "", ErrBadKeyword},
		{"US3R x", "", "", "", ErrBadKeyword},
		{"LIST 1\x002", "", "", "", ErrBadArgument},
		{"LIST 1 2 3 4 5", "", "", "", ErrBadArgument},
		{" USER", "", "", "", ErrBadKeyword},
	}
	for _, tt := range tests {
		c, err := ParseCommand(tt.in)
		if !errors.Is(err, tt.err) {
			t.Errorf("ParseCommand(%q) err = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && (c.Name != tt.name || strings.Join(c.Args, "|") != tt.args || c.Rest != tt.rest) {
			t.Errorf("ParseCommand(%q) = %+v", tt.in, c)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER a", "PASS a b", "TOP 1 2", "AUTH PLAIN AGEAYg==", "QUIT", "LIST"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommand(s)
		if err != nil {
			return
		}
		if len(c.Name) < 3 || len(c.Name) > 4 || strings.ToUpper(c.Name) != c.Name {
			t.Fatalf("bad name %q from %q", c.Name, s)
		}
		if len(c.Args) > MaxArgs {
			t.Fatalf("%d args from %q", len(c.Args), s)
		}
		for _, a := range c.Args {
			if a == "" || strings.ContainsAny(a, " \r\n\x00") {
				t.Fatalf("bad arg %q from %q", a, s)
			}
		}
		if !strings.EqualFold(s, c.Name) && !strings.EqualFold(s, c.Name+" "+c.Rest) {
			t.Fatalf("%q does not reassemble from %+v", s, c)
		}
	})
}
