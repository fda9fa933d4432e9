// Package ssha is OpenLDAP's salted-SHA password schemes ({SSHA}, and
// {SSHA256} and {SSHA512} as Dovecot and slapd's pw-sha2 write them): the
// one place mailfleet makes and checks them, for render (the directory's
// own passwords), provision (accounts), the dev cluster and the stores.
// It imports nothing of mailfleet.
package ssha

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
)

// SaltSize is the salt New draws.
const SaltSize = 8

// minSalt is the shortest salt a hash must carry to count as one.
const minSalt = 4

// Hash is the {SSHA} form of password with salt: base64 of
// SHA-1(password+salt) followed by salt.
func Hash(password string, salt []byte) string {
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

// New is the {SSHA} form of password with a random salt: the scheme slapd
// verifies without any module. An empty password is an error.
func New(password string) (string, error) {
	if password == "" {
		return "", errors.New("the password is empty")
	}
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return Hash(password, salt), nil
}

var schemes = []struct {
	prefix string
	new    func() hash.Hash
	size   int
}{
	{"{SSHA}", sha1.New, sha1.Size},
	{"{SSHA256}", sha256.New, sha256.Size},
	{"{SSHA512}", sha512.New, sha512.Size},
}

// split finds s's scheme (the prefix in any case) and its digest and salt.
func split(s string) (newHash func() hash.Hash, digest, salt []byte, ok bool) {
	for _, sc := range schemes {
		if len(s) < len(sc.prefix) || !strings.EqualFold(s[:len(sc.prefix)], sc.prefix) {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s[len(sc.prefix):])
		if err != nil || len(raw) < sc.size+minSalt {
			return nil, nil, nil, false
		}
		return sc.new, raw[:sc.size], raw[sc.size:], true
	}
	return nil, nil, nil, false
}

// IsHash reports whether s is a hash of one of the schemes, with a salt of
// at least 4 bytes (for imports that carry hashes).
func IsHash(s string) bool {
	_, _, _, ok := split(s)
	return ok
}

// Verify checks password against a hash of one of the schemes, in
// constant time for a given hash.
func Verify(hashed, password string) bool {
	newHash, digest, salt, ok := split(hashed)
	if !ok {
		return false
	}
	h := newHash()
	h.Write([]byte(password))
	h.Write(salt)
	return subtle.ConstantTimeCompare(h.Sum(nil), digest) == 1
}
