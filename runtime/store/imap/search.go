package imap

// The matching below follows imapmemserver's (github.com/emersion/go-imap,
// MIT licence), adapted to messages read lazily from the maildir.

import (
	"bytes"
	"io"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

func hasFlag(m maildir.Message, f goimap.Flag) bool {
	for _, x := range imapFlags(m) {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

func matchMessage(seq uint32, m maildir.Message, lazy *lazyMessage, c *goimap.SearchCriteria) bool {
	for _, set := range c.SeqNum {
		if seq == 0 || !set.Contains(seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !set.Contains(goimap.UID(m.UID)) {
			return false
		}
	}
	if !matchDate(m.Date, c.Since, c.Before) {
		return false
	}
	for _, f := range c.Flag {
		if !hasFlag(m, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(m, f) {
			return false
		}
	}
	if c.Larger != 0 && m.Size <= c.Larger {
		return false
	}
	if c.Smaller != 0 && m.Size >= c.Smaller {
		return false
	}
	needContent := len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() || len(c.Text) > 0 || len(c.Body) > 0
	if needContent {
		buf, err := lazy.bytes()
		if err != nil {
			return false
		}
		entity := func() *gomessage.Entity {
			e, _ := gomessage.Read(bytes.NewReader(buf))
			if e == nil {
				e, _ = gomessage.New(gomessage.Header{}, bytes.NewReader(nil))
			}
			return e
		}
		header := mail.Header{Header: entity().Header}
		for _, hc := range c.Header {
			if !matchHeaderFields(header.FieldsByKey(hc.Key), hc.Value) {
				return false
			}
		}
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			t, err := header.Date()
			if err != nil || !matchDate(t, c.SentSince, c.SentBefore) {
				return false
			}
		}
		for _, text := range c.Text {
			if !matchEntity(entity(), text, true) {
				return false
			}
		}
		for _, body := range c.Body {
			if !matchEntity(entity(), body, false) {
				return false
			}
		}
	}
	for i := range c.Not {
		if matchMessage(seq, m, lazy, &c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !matchMessage(seq, m, lazy, &c.Or[i][0]) && !matchMessage(seq, m, lazy, &c.Or[i][1]) {
			return false
		}
	}
	return true
}

func matchDate(t, since, before time.Time) bool {
	// RFC 3501 compares dates without time zones.
	t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && t.Before(since) {
		return false
	}
	if !before.IsZero() && !t.Before(before) {
		return false
	}
	return true
}

func matchHeaderFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, _ := fields.Text()
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

func matchEntity(e *gomessage.Entity, pattern string, includeHeader bool) bool {
	if pattern == "" {
		return true
	}
	if includeHeader && matchHeaderFields(e.Header.Fields(), pattern) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			part, err := mr.NextPart()
			if err != nil {
				return false
			}
			if matchEntity(part, pattern, includeHeader) {
				return true
			}
		}
	}
	t, _, err := e.Header.ContentType()
	if err != nil {
		t = "text/plain"
	}
	if !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	buf, err := io.ReadAll(io.LimitReader(e.Body, 16<<20))
	if err != nil {
		return false
	}
	return bytes.Contains(bytes.ToLower(buf), bytes.ToLower([]byte(pattern)))
}
