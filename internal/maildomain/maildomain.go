// Package maildomain is the one canonical form in which mailfleet compares
// mail domains: IDNA (UTS #46, lookup profile) A-labels, lower case,
// without the root's trailing dot. Unicode case folding alone is not
// enough: strings.ToLower("maİlfleet.test") is "mailfleet.test", which made
// a foreign domain local and opened a relay; its canonical form is
// "xn--mailfleet-7jf.test". It imports nothing of mailfleet.
package maildomain

import (
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalid is the error of a string that is no domain name.
var ErrInvalid = errors.New("not a valid domain name")

// Canonical is d's canonical form, or ErrInvalid.
func Canonical(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 || !utf8.ValidString(d) {
		return "", ErrInvalid
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil || a == "" {
		return "", ErrInvalid
	}
	a = strings.ToLower(a)
	if strings.HasPrefix(a, ".") || strings.HasSuffix(a, ".") || strings.Contains(a, "..") {
		return "", ErrInvalid // an empty label
	}
	// An A-label must decode to what it encodes: one that does not (a
	// replacement character, say) is no name.
	if again, err := idna.Lookup.ToASCII(a); err != nil || again != a {
		return "", ErrInvalid
	}
	return a, nil
}

// Equal says whether a and b are the same domain (false when either is
// invalid).
func Equal(a, b string) bool {
	ca, err := Canonical(a)
	if err != nil {
		return false
	}
	cb, err := Canonical(b)
	return err == nil && ca == cb
}
