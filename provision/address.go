package provision

import (
	"fmt"
	"strings"
)

// Limits of RFC 5321 section 4.5.3.1.
const (
	maxLocalPart = 64
	maxDomain    = 255
	maxLabel     = 63
	// maxAddress: a path is at most 256 octets including the angle
	// brackets.
	maxAddress = 254
)

// NormalizeAddress checks addr as an RFC 5321 mailbox whose local part is a
// Dot-string (the quoted-string form and address literals are refused:
// the store keeps one directory per account) and returns it in lower case,
// as the store and the directory's uid matching treat it.
func NormalizeAddress(addr string) (string, error) {
	bad := func(why string, args ...any) (string, error) {
		return "", fmt.Errorf("invalid address %q: %s", addr, fmt.Sprintf(why, args...))
	}
	if addr == "" {
		return bad("empty")
	}
	if len(addr) > maxAddress {
		return bad("longer than %d characters", maxAddress)
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return bad("no @")
	}
	local, domain := addr[:at], addr[at+1:]
	switch {
	case local == "":
		return bad("empty local part")
	case len(local) > maxLocalPart:
		return bad("local part longer than %d characters", maxLocalPart)
	case strings.HasPrefix(local, `"`):
		return bad("quoted local parts are not supported")
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return bad("a dot at the start or end of the local part, or two dots in a row")
	}
	for _, r := range local {
		if !isAtext(r) && r != '.' {
			return bad("character %q is not allowed in a local part", r)
		}
	}
	if domain == "" {
		return bad("empty domain")
	}
	if strings.HasPrefix(domain, "[") {
		return bad("address literals are not supported")
	}
	if len(domain) > maxDomain {
		return bad("domain longer than %d characters", maxDomain)
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" {
			return bad("empty domain label")
		}
		if len(label) > maxLabel {
			return bad("domain label longer than %d characters", maxLabel)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return bad("domain label %q starts or ends with a hyphen", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return bad("character %q is not allowed in a domain", r)
			}
		}
	}
	return strings.ToLower(addr), nil
}

// isAtext is RFC 5322's atext.
func isAtext(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// NormalizeDomain checks a domain as NormalizeAddress does.
func NormalizeDomain(d string) (string, error) {
	a, err := NormalizeAddress("x@" + d)
	if err != nil {
		return "", fmt.Errorf("invalid domain %q", d)
	}
	return a[2:], nil
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }
