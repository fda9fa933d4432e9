package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FlagOp says how SetFlags combines flags.
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// SetFlags changes the flags (maildir letters) and keywords of the given
// messages and returns their new state. Flags live in the file names, so a
// change is a rename; keywords live in the UID list.
func (m *Mailbox) SetFlags(uids []uint32, op FlagOp, flags string, keywords []string) ([]Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadLocked(); err != nil {
		return nil, err
	}
	keywords = normalizeKeywords(keywords)
	var out []Message
	kwChanged, renamed := false, false
	for _, uid := range uids {
		i, msg := m.findLocked(uid)
		if msg == nil {
			continue
		}
		nf, nk := combineFlags(msg.flags, flags, op), combineKeywords(msg.keywords, keywords, op)
		if nf != msg.flags || msg.sub == "new" {
			from := filepath.Join(m.dir, msg.sub, msg.fileName())
			old, oldSub := msg.flags, msg.sub
			msg.flags, msg.sub = nf, "cur"
			if err := os.Rename(from, filepath.Join(m.dir, "cur", msg.fileName())); err != nil {
				msg.flags, msg.sub = old, oldSub
				return out, fmt.Errorf("maildir: %w", err)
			}
			renamed = true
		}
		if strings.Join(nk, " ") != strings.Join(msg.keywords, " ") {
			msg.keywords = nk
			kwChanged = true
		}
		out = append(out, msg.snapshot())
		for _, o := range m.observers {
			o.FlagsChanged(uint32(i+1), msg.snapshot())
		}
	}
	if renamed {
		if err := syncDir(filepath.Join(m.dir, "cur")); err != nil {
			return out, err
		}
	}
	if kwChanged {
		if err := writeUIDList(m.dir, m.uidValidity, m.uidNext, m.msgs); err != nil {
			return out, err
		}
	}
	return out, nil
}

func combineFlags(cur, change string, op FlagOp) string {
	switch op {
	case FlagsSet:
		return normalizeFlags(change)
	case FlagsAdd:
		return normalizeFlags(cur + change)
	default:
		var b []byte
		for i := 0; i < len(cur); i++ {
			if strings.IndexByte(change, cur[i]) < 0 {
				b = append(b, cur[i])
			}
		}
		return string(b)
	}
}

func combineKeywords(cur, change []string, op FlagOp) []string {
	set := map[string]bool{}
	if op != FlagsSet {
		for _, k := range cur {
			set[k] = true
		}
	}
	for _, k := range change {
		set[k] = op != FlagsRemove
	}
	var out []string
	for k, on := range set {
		if on {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// normalizeKeywords keeps keywords that are safe in the UID list (IMAP
// atoms without spaces or control characters), sorted and unique.
func normalizeKeywords(kw []string) []string {
	set := map[string]bool{}
	for _, k := range kw {
		if k == "" || len(k) > 64 || strings.HasPrefix(k, "\\") {
			continue
		}
		ok := true
		for _, r := range k {
			if r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"]\`, r) {
				ok = false
			}
		}
		if ok {
			set[k] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
