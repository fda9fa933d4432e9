package maildir

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Delim is the hierarchy delimiter of mailbox names as clients see them.
const Delim = '/'

// Inbox is the canonical name of the account's root mailbox.
const Inbox = "INBOX"

// Limits on mailbox names.
const (
	MaxMailboxNameLen = 200 // bytes, whole name
	MaxMailboxDepth   = 16  // components
)

// ErrBadMailboxName is wrapped by every mailbox name rejection.
var ErrBadMailboxName = errors.New("invalid mailbox name")

// CanonicalMailboxName validates a client-supplied mailbox name and returns
// its canonical form ("INBOX" in any case becomes "INBOX").
func CanonicalMailboxName(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrBadMailboxName, why)
	}
	if name == "" {
		return bad("empty")
	}
	if len(name) > MaxMailboxNameLen {
		return bad("too long")
	}
	if !utf8.ValidString(name) {
		return bad("not valid UTF-8")
	}
	if strings.EqualFold(name, Inbox) {
		return Inbox, nil
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return bad("control character")
		}
		if r == '*' || r == '%' || r == '\\' {
			return bad(fmt.Sprintf("character %q is not allowed", r))
		}
	}
	parts := strings.Split(name, string(Delim))
	if len(parts) > MaxMailboxDepth {
		return bad("too deep")
	}
	for _, p := range parts {
		switch {
		case p == "":
			return bad("empty hierarchy level")
		case p == "." || p == "..":
			return bad(`"." and ".." are not allowed`)
		case strings.TrimSpace(p) != p:
			return bad("leading or trailing space in a hierarchy level")
		}
	}
	if strings.EqualFold(parts[0], Inbox) {
		parts[0] = Inbox
	}
	return strings.Join(parts, string(Delim)), nil
}

// dirName maps a canonical mailbox name other than INBOX to its maildir++
// folder name: "." + components joined by ".", with "." and "%" inside a
// component percent-encoded so that the mapping is one-to-one.
func dirName(name string) string {
	parts := strings.Split(name, string(Delim))
	for i, p := range parts {
		p = strings.ReplaceAll(p, "%", "%25")
		parts[i] = strings.ReplaceAll(p, ".", "%2E")
	}
	return "." + strings.Join(parts, ".")
}

// mailboxFromDir is the inverse of dirName; ok is false for directories
// that are not mailbox folders.
func mailboxFromDir(dir string) (string, bool) {
	if len(dir) < 2 || dir[0] != '.' || dir == ".." {
		return "", false
	}
	parts := strings.Split(dir[1:], ".")
	for i, p := range parts {
		p = strings.ReplaceAll(p, "%2E", ".")
		parts[i] = strings.ReplaceAll(p, "%25", "%")
	}
	name := strings.Join(parts, string(Delim))
	c, err := CanonicalMailboxName(name)
	if err != nil || c != name || c == Inbox {
		return "", false
	}
	return name, true
}
