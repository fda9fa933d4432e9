package server

import (
	"encoding/base64"
	"strings"
)

// DecodePlain decodes a SASL PLAIN response (RFC 4616); an authorization
// identity other than the user is refused (no proxy authorization).
func DecodePlain(s string) (user, pass string, ok bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// EncodePlain is the SASL PLAIN response that logs user in.
func EncodePlain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}
