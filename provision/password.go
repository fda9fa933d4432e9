package provision

import "github.com/mailfleet/mailfleet/internal/ssha"

// HashPassword returns the {SSHA} form of password with a random salt: the
// scheme slapd verifies without any module.
func HashPassword(password string) (string, error) { return ssha.New(password) }

// IsHash reports whether s is a salted SHA hash ({SSHA}, {SSHA256},
// {SSHA512}), for imports that carry hashes.
func IsHash(s string) bool { return ssha.IsHash(s) }

// VerifyPassword checks password against such a hash.
func VerifyPassword(hash, password string) bool { return ssha.Verify(hash, password) }
