package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Standard maildir flag letters (the "info" part after ":2,").
const (
	FlagDraft   = 'D'
	FlagFlagged = 'F'
	FlagPassed  = 'P'
	FlagReplied = 'R'
	FlagSeen    = 'S'
	FlagTrashed = 'T'
)

// MaxNameLen bounds a message file name; longer names are rejected as
// corrupt rather than trusted.
const MaxNameLen = 255

// Name is a parsed maildir message file name:
// KEY[,S=SIZE][,W=VSIZE][:2,FLAGS].
type Name struct {
	// Key is the unique part before the first ':' (including ",S=" fields);
	// it identifies the message in the UID list wherever the file moves.
	Key string
	// Size is the value of the ",S=" field, or -1 when absent.
	Size int64
	// Flags are the maildir flag letters, sorted and without duplicates.
	Flags string
	// Info is true when the name carries a ":2," info part.
	Info bool
}

var errBadName = errors.New("maildir: malformed message file name")

// ParseName parses a message file name. It accepts what other maildir
// writers produce (Dovecot, Courier, our own) and rejects names that could
// not be a file in cur/ or new/.
func ParseName(s string) (Name, error) {
	n := Name{Size: -1}
	if s == "" || len(s) > MaxNameLen || !utf8.ValidString(s) {
		return n, errBadName
	}
	if s[0] == '.' || strings.ContainsAny(s, "/\x00") {
		return n, errBadName
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return n, errBadName
		}
	}
	key, info, hasInfo := strings.Cut(s, ":")
	if key == "" {
		return n, errBadName
	}
	n.Key = key
	if hasInfo {
		if !strings.HasPrefix(info, "2,") {
			return n, errBadName
		}
		n.Info = true
		flags := info[2:]
		for i := 0; i < len(flags); i++ {
			c := flags[i]
			if c < 'A' || c > 'Z' {
				// Lower-case letters are Dovecot keywords; we keep keywords
				// in the UID list instead and refuse what we cannot map.
				return n, errBadName
			}
		}
		n.Flags = normalizeFlags(flags)
	}
	fields := strings.Split(key, ",")
	for _, f := range fields[1:] {
		if v, ok := strings.CutPrefix(f, "S="); ok {
			size, err := strconv.ParseInt(v, 10, 64)
			if err != nil || size < 0 || strconv.FormatInt(size, 10) != v {
				return n, errBadName
			}
			n.Size = size
		}
	}
	return n, nil
}

// String formats the name back into a file name.
func (n Name) String() string {
	if !n.Info {
		return n.Key
	}
	return n.Key + ":2," + n.Flags
}

// normalizeFlags sorts flag letters and removes duplicates.
func normalizeFlags(f string) string {
	if f == "" {
		return ""
	}
	b := []byte(f)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	out := b[:1]
	for _, c := range b[1:] {
		if c != out[len(out)-1] {
			out = append(out, c)
		}
	}
	return string(out)
}

var keyCounter atomic.Uint64

// newKey returns a unique key in the usual maildir form
// TIME.M<usec>P<pid>Q<n>R<rand>.HOST; the size field is added once the
// message is written.
func newKey(host string) string {
	now := time.Now()
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%d.M%dP%dQ%dR%s.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(),
		keyCounter.Add(1), hex.EncodeToString(r[:]), sanitizeHost(host))
}

// sanitizeHost escapes the characters that maildir reserves, as the maildir
// specification asks ("/" → \057, ":" → \072), and commas, which start fields.
func sanitizeHost(h string) string {
	if h == "" {
		h = "localhost"
	}
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == '/':
			b.WriteString(`\057`)
		case r == ':':
			b.WriteString(`\072`)
		case r == ',':
			b.WriteString(`\054`)
		case r < 0x21 || r == 0x7f:
			continue
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// deliveredBefore orders new messages for their UIDs: by file time, then,
// since file times are coarse (several deliveries share one), by the time
// and sequence number in our keys (TIME.M<usec>P<pid>Q<n>…), compared as
// numbers; other keys compare as strings.
func deliveredBefore(a, b *message) bool {
	if !a.date.Equal(b.date) {
		return a.date.Before(b.date)
	}
	ka, aok := parseKeyOrder(a.key)
	kb, bok := parseKeyOrder(b.key)
	if aok && bok && ka != kb {
		for i := range ka {
			if ka[i] != kb[i] {
				return ka[i] < kb[i]
			}
		}
	}
	return a.key < b.key
}

// parseKeyOrder reads seconds, microseconds, pid and sequence from a key
// made by newKey.
func parseKeyOrder(key string) ([4]uint64, bool) {
	var v [4]uint64
	_, err := fmt.Sscanf(key, "%d.M%dP%dQ%d", &v[0], &v[1], &v[2], &v[3])
	return v, err == nil
}
