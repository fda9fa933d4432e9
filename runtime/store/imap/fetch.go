package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sort"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

func (ss *session) Fetch(w *imapserver.FetchWriter, numSet goimap.NumSet, options *goimap.FetchOptions) error {
	sel, err := ss.resolve(numSet)
	if err != nil {
		return err
	}
	markSeen := false
	for _, bs := range options.BodySection {
		if !bs.Peek {
			markSeen = !ss.readOnly
		}
	}
	if markSeen {
		var unseen []uint32
		for _, s := range sel {
			if !s.msg.HasFlag(maildir.FlagSeen) {
				unseen = append(unseen, s.msg.UID)
			}
		}
		if len(unseen) > 0 {
			updated, err := ss.mbox.SetFlags(unseen, maildir.FlagsAdd, string(maildir.FlagSeen), nil)
			if err != nil {
				return imapError(err)
			}
			byUID := map[uint32]maildir.Message{}
			for _, m := range updated {
				byUID[m.UID] = m
			}
			for i := range sel {
				if m, ok := byUID[sel[i].msg.UID]; ok {
					sel[i].msg = m
				}
			}
			options.Flags = true // RFC 3501: the changed flags are returned
		}
	}
	needBody := options.Envelope || options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	hdrOnly := headerOnly(options)
	var reuse []byte
	for _, s := range sel {
		if s.seq == 0 {
			continue
		}
		var buf []byte
		cached := false
		if hdrOnly {
			buf, cached = ss.s.headers.get(s.msg.Key)
		}
		if needBody && !cached {
			b, err := ss.read(s.msg.UID, hdrOnly, reuse)
			if errors.Is(err, maildir.ErrNoMessage) {
				continue // expunged meanwhile
			}
			if err != nil {
				return imapError(err)
			}
			buf = b
			if hdrOnly {
				ss.s.headers.put(s.msg.Key, buf)
			}
		}
		if err := fetchOne(w.CreateMessage(s.seq), s.msg, buf, options); err != nil {
			return err
		}
		if !cached {
			// fetchOne has written the message: its buffer serves the next.
			reuse = buf
		}
	}
	return nil
}

// read returns a whole message, or with headerOnly its header up to and
// including the blank line that ends it (stored messages are in CRLF wire
// form), which is all a FETCH of flags, envelope and header sections needs.
// The message goes into buf's storage when it is large enough (a FETCH
// reuses one buffer for all its messages).
func (ss *session) read(uid uint32, headerOnly bool, buf []byte) ([]byte, error) {
	f, m, err := ss.mbox.Open(uid)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !headerOnly {
		if int64(cap(buf)) < m.Size+1 {
			buf = make([]byte, 0, m.Size+1) // one read, no regrowth, for the usual case
		}
		buf = buf[:0]
		for {
			n, err := f.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				return buf, nil
			}
			if err != nil {
				return nil, err
			}
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
		}
	}
	if cap(buf) < 4096 {
		buf = make([]byte, 0, 4096)
	}
	buf = buf[:0]
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.HasPrefix(buf, []byte("\r\n")) {
			return buf[:2], nil
		}
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], nil
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
	}
}

// headerOnly tells whether the message header serves every item of a FETCH.
func headerOnly(o *goimap.FetchOptions) bool {
	if o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		return false
	}
	for _, bs := range o.BodySection {
		if bs.Specifier != goimap.PartSpecifierHeader || len(bs.Part) > 0 {
			return false
		}
	}
	return true
}

func fetchOne(w *imapserver.FetchResponseWriter, m maildir.Message, buf []byte, options *goimap.FetchOptions) error {
	w.WriteUID(goimap.UID(m.UID))
	if options.Flags {
		w.WriteFlags(imapFlags(m))
	}
	if options.InternalDate {
		w.WriteInternalDate(m.Date)
	}
	if options.RFC822Size {
		w.WriteRFC822Size(m.Size)
	}
	if options.Envelope {
		if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(buf))); err == nil {
			w.WriteEnvelope(imapserver.ExtractEnvelope(h))
		}
	}
	if options.BodyStructure != nil {
		w.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(buf)))
	}
	for _, bs := range options.BodySection {
		var b []byte
		if bs.Specifier == goimap.PartSpecifierNone && len(bs.Part) == 0 && bs.Partial == nil {
			b = buf // BODY[]: the whole message, without a copy
		} else {
			b = imapserver.ExtractBodySection(bytes.NewReader(buf), bs)
		}
		wc := w.WriteBodySection(bs, int64(len(b)))
		_, werr := wc.Write(b)
		if cerr := wc.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	for _, bs := range options.BinarySection {
		b := imapserver.ExtractBinarySection(bytes.NewReader(buf), bs)
		wc := w.WriteBinarySection(bs, int64(len(b)))
		_, werr := wc.Write(b)
		if cerr := wc.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	for _, bss := range options.BinarySectionSize {
		w.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(buf), bss))
	}
	return w.Close()
}

// --- SEARCH -------------------------------------------------------------------

func sortFlags(f []goimap.Flag) {
	sort.Slice(f, func(i, j int) bool { return f[i] < f[j] })
}
