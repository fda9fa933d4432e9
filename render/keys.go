package render

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Keys derives every piece of random material from the site secret with
// HKDF-SHA256, one label per use, so a second render gives the same bytes and
// a second apply finds nothing to change.
type Keys struct{ secret []byte }

func NewKeys(siteSecret string) *Keys { return &Keys{secret: []byte(siteSecret)} }

// Bytes returns n bytes for label. Distinct labels give independent values.
func (k *Keys) Bytes(label string, n int) []byte {
	b, err := hkdf.Key(sha256.New, k.secret, []byte("mailfleet/v1"), label, n)
	if err != nil {
		panic("render: hkdf: " + err.Error()) // only for n > 255*32
	}
	return b
}

// Hex returns a hex string of n random bytes for label.
func (k *Keys) Hex(label string, n int) string { return hex.EncodeToString(k.Bytes(label, n)) }

// Token returns a URL-safe token of n random bytes for label.
func (k *Keys) Token(label string, n int) string {
	return base64.RawURLEncoding.EncodeToString(k.Bytes(label, n))
}

// AdminSecret is instance's admin API secret when the topology does not
// set one: what render writes into the instance's secret file and what
// `mailfleet account` (package provision) presents.
func (k *Keys) AdminSecret(instance string) string { return k.Token("admin/"+instance, 32) }
