package imap

// The matching below follows imapmemserver's (github.com/emersion/go-imap,
// MIT licence), adapted to messages read lazily from the maildir.

import (
	"bytes"
	"io"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
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

func (ss *session) Search(kind imapserver.NumKind, criteria *goimap.SearchCriteria, options *goimap.SearchOptions) (*goimap.SearchData, error) {
	all, err := ss.resolve(goimap.UIDSet{goimap.UIDRange{Start: 1, Stop: 0}})
	if err != nil {
		return nil, err
	}
	ss.staticCriteria(criteria)
	var data goimap.SearchData
	var seqSet goimap.SeqSet
	var uidSet goimap.UIDSet
	for _, s := range all {
		lazy := &lazyMessage{ss: ss, uid: s.msg.UID}
		if !matchMessage(s.seq, s.msg, lazy, criteria) {
			continue
		}
		uidSet.AddNum(goimap.UID(s.msg.UID))
		var num uint32
		switch kind {
		case imapserver.NumKindSeq:
			if s.seq == 0 {
				continue
			}
			seqSet.AddNum(s.seq)
			num = s.seq
		case imapserver.NumKindUID:
			num = s.msg.UID
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqSet
	} else {
		data.All = uidSet
	}
	if options.ReturnSave {
		ss.searchRes = uidSet
	}
	return &data, nil
}

// staticCriteria replaces "*" and "$" in the criteria's sets.
func (ss *session) staticCriteria(c *goimap.SearchCriteria) {
	var maxSeq uint32
	var maxUID goimap.UID
	ss.mbox.View(func(msgs []maildir.Message, uv, next uint32) {
		for i := len(msgs); i >= 1; i-- {
			if s := ss.st.EncodeSeqNum(uint32(i)); s != 0 {
				maxSeq = s
				break
			}
		}
		if len(msgs) > 0 {
			maxUID = goimap.UID(msgs[len(msgs)-1].UID)
		}
	})
	var walk func(c *goimap.SearchCriteria)
	walk = func(c *goimap.SearchCriteria) {
		var seqs []goimap.SeqSet
		for _, s := range c.SeqNum {
			if goimap.IsSearchRes(s) {
				c.UID = append(c.UID, ss.searchRes)
				continue
			}
			seqs = append(seqs, staticSeqSet(s, maxSeq))
		}
		c.SeqNum = seqs
		for i, u := range c.UID {
			if goimap.IsSearchRes(u) {
				c.UID[i] = ss.searchRes
				continue
			}
			c.UID[i] = staticUIDSet(u, maxUID)
		}
		for i := range c.Not {
			walk(&c.Not[i])
		}
		for i := range c.Or {
			walk(&c.Or[i][0])
			walk(&c.Or[i][1])
		}
	}
	walk(c)
}

type lazyMessage struct {
	ss   *session
	uid  uint32
	buf  []byte
	err  error
	done bool
}

func (l *lazyMessage) bytes() ([]byte, error) {
	if !l.done {
		l.buf, l.err = l.ss.read(l.uid, false, nil)
		l.done = true
	}
	return l.buf, l.err
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
