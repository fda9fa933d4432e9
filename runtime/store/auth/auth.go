package auth

import (
	"context"
	"errors"
	"strings"
)

// Errors of a Directory. Protocol servers map ErrInvalidCredentials to an
// authentication failure and ErrUnavailable to a temporary error.
var (
	ErrInvalidCredentials = errors.New("auth: invalid credentials")
	ErrUnavailable        = errors.New("auth: directory unavailable")
	// ErrElsewhere: the account is in the directory, but its entry's host
	// attribute names another instance as its home. Protocol servers map
	// it to a temporary refusal: right after a move, a front-end whose
	// lookup cache still names this instance may route here, and its
	// retry reaches the new home.
	ErrElsewhere = errors.New("auth: account is homed on another instance")
)

// ElsewhereError is ErrElsewhere for one account, with the home its
// directory entry names.
type ElsewhereError struct {
	Address, Host string
}

func (e *ElsewhereError) Error() string {
	return "account is homed on " + e.Host + "; routing is catching up"
}

// Is makes errors.Is(err, ErrElsewhere) true.
func (e *ElsewhereError) Is(target error) bool { return target == ErrElsewhere }

// SameHost tells whether two host names are the same, ignoring case,
// surrounding space and a trailing dot.
func SameHost(a, b string) bool {
	norm := func(h string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".") }
	return norm(a) == norm(b)
}

// Directory is an account directory.
type Directory interface {
	// Authenticate checks the password of username (an address) and returns
	// the canonical address of the account. A directory that knows homes
	// (LDAP) returns an ErrElsewhere error, once the password is checked,
	// for an account homed on another instance.
	Authenticate(ctx context.Context, username, password string) (string, error)
	// Lookup tells whether address is an account, returning its canonical
	// address; an account homed on another instance is an ErrElsewhere
	// error.
	Lookup(ctx context.Context, address string) (string, bool, error)
}
