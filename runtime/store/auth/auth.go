package auth

import (
	"context"
	"errors"
)

// Errors of a Directory. Protocol servers map ErrInvalidCredentials to an
// authentication failure and ErrUnavailable to a temporary error.
var (
	ErrInvalidCredentials = errors.New("auth: invalid credentials")
	ErrUnavailable        = errors.New("auth: directory unavailable")
)

// Directory is an account directory.
type Directory interface {
	// Authenticate checks the password of username (an address) and returns
	// the canonical address of the account.
	Authenticate(ctx context.Context, username, password string) (string, error)
	// Lookup tells whether address is an account, returning its canonical
	// address.
	Lookup(ctx context.Context, address string) (string, bool, error)
}
