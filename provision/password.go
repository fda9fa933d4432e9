package provision

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strings"
)

const sshaSalt = 8

// HashPassword returns the {SSHA} form of password with a random salt: the
// scheme slapd verifies without any module.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("the password is empty")
	}
	salt := make([]byte, sshaSalt)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...)), nil
}

// IsHash reports whether s is an {SSHA} hash as HashPassword makes them
// (a digest and a salt of at least 4 bytes), for imports that carry hashes.
func IsHash(s string) bool {
	b64, ok := cutPrefixFold(s, "{SSHA}")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && len(raw) >= sha1.Size+4
}

// VerifyPassword checks password against an {SSHA} hash.
func VerifyPassword(hash, password string) bool {
	b64, ok := cutPrefixFold(hash, "{SSHA}")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < sha1.Size {
		return false
	}
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(raw[sha1.Size:])
	return bytes.Equal(h.Sum(nil), raw[:sha1.Size])
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
