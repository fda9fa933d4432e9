package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"log/slog"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

type session struct {
	s    *Server
	conn *imapserver.Conn
	log  *slog.Logger
	acct *maildir.Account

	// Selected state.
	mbox      *maildir.Mailbox
	tr        *tracker
	st        *imapserver.SessionTracker
	readOnly  bool
	searchRes goimap.UIDSet
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)

func (ss *session) Close() error {
	if ss.st != nil {
		ss.st.Close()
		ss.st = nil
	}
	return nil
}

func (ss *session) Login(username, password string) error {
	if password == "" {
		time.Sleep(ss.s.opts.FailedLoginDelay)
		return imapserver.ErrAuthFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := ss.s.opts.Auth.Authenticate(ctx, username, password)
	if errors.Is(err, auth.ErrInvalidCredentials) {
		ss.log.Info("login failed", "user", username)
		time.Sleep(ss.s.opts.FailedLoginDelay)
		return imapserver.ErrAuthFailed
	}
	if errors.Is(err, auth.ErrElsewhere) {
		ss.log.Info("login refused: account homed on another instance", "user", username, "err", err)
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeUnavailable, Text: err.Error()}
	}
	if err != nil {
		ss.log.Warn("directory error", "user", username, "err", err)
		return imapError(err)
	}
	if ss.s.opts.Refuse != nil {
		if err := ss.s.opts.Refuse(addr); err != nil {
			return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeUnavailable, Text: err.Error()}
		}
	}
	acct, err := ss.s.opts.Store.Account(addr)
	if err != nil {
		ss.log.Error("open account", "account", addr, "err", err)
		return imapError(err)
	}
	for name := range ss.s.opts.SpecialUse {
		if _, err := acct.Mailbox(name); errors.Is(err, maildir.ErrNoMailbox) {
			if err := acct.CreateMailbox(name); err == nil {
				acct.Subscribe(name, true)
			}
		}
	}
	ss.acct = acct
	ss.log = ss.log.With("account", addr)
	ss.log.Info("login")
	return nil
}

func (ss *session) mailbox(name string) (*maildir.Mailbox, error) {
	m, err := ss.acct.Mailbox(name)
	if err != nil {
		return nil, imapError(err)
	}
	return m, nil
}

// --- authenticated state ----------------------------------------------------

func (ss *session) Select(name string, options *goimap.SelectOptions) (*goimap.SelectData, error) {
	ss.Unselect()
	mbox, err := ss.mailbox(name)
	if err != nil {
		return nil, err
	}
	if err := mbox.Sync(); err != nil {
		return nil, imapError(err)
	}
	tr, err := ss.s.tracker(mbox)
	if err != nil {
		return nil, imapError(err)
	}
	var data goimap.SelectData
	err = mbox.View(func(msgs []maildir.Message, uv, next uint32) {
		ss.st = tr.mt.NewSession()
		seen := map[goimap.Flag]bool{}
		for i, m := range msgs {
			for _, f := range imapFlags(m) {
				seen[f] = true
			}
			if !m.HasFlag(maildir.FlagSeen) && data.FirstUnseenSeqNum == 0 {
				data.FirstUnseenSeqNum = uint32(i + 1)
			}
		}
		flags := []goimap.Flag{goimap.FlagSeen, goimap.FlagAnswered, goimap.FlagFlagged, goimap.FlagDeleted, goimap.FlagDraft, goimap.FlagForwarded}
		for f := range seen {
			if f[0] != '\\' && !equalFold(string(f), string(goimap.FlagForwarded)) {
				flags = append(flags, f)
			}
		}
		sortFlags(flags)
		data.Flags = flags
		data.PermanentFlags = append(append([]goimap.Flag(nil), flags...), goimap.FlagWildcard)
		data.NumMessages = uint32(len(msgs))
		data.UIDNext = goimap.UID(next)
		data.UIDValidity = uv
	})
	if err != nil {
		return nil, imapError(err)
	}
	ss.mbox, ss.tr, ss.readOnly = mbox, tr, options != nil && options.ReadOnly
	ss.searchRes = nil
	return &data, nil
}

func (ss *session) Unselect() error {
	if ss.st != nil {
		ss.st.Close()
	}
	ss.mbox, ss.tr, ss.st, ss.searchRes = nil, nil, nil, nil
	return nil
}

func (ss *session) Create(name string, options *goimap.CreateOptions) error {
	name = strings.TrimRight(name, "/")
	return imapError(ss.acct.CreateMailbox(name))
}

func (ss *session) Delete(name string) error {
	if err := ss.acct.DeleteMailbox(name); err != nil {
		return imapError(err)
	}
	ss.acct.Subscribe(name, false)
	return nil
}

func (ss *session) Rename(from, to string, options *goimap.RenameOptions) error {
	to = strings.TrimRight(to, "/")
	return imapError(ss.acct.RenameMailbox(from, to))
}

func (ss *session) Subscribe(name string) error {
	if _, err := ss.mailbox(name); err != nil {
		return err
	}
	return imapError(ss.acct.Subscribe(name, true))
}

func (ss *session) Unsubscribe(name string) error {
	return imapError(ss.acct.Subscribe(name, false))
}

func (ss *session) Namespace() (*goimap.NamespaceData, error) {
	return &goimap.NamespaceData{Personal: []goimap.NamespaceDescriptor{{Delim: maildir.Delim}}}, nil
}

func (ss *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *goimap.ListOptions) error {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		return w.WriteList(&goimap.ListData{Attrs: []goimap.MailboxAttr{goimap.MailboxAttrNoSelect}, Delim: maildir.Delim})
	}
	names, err := ss.acct.List()
	if err != nil {
		return imapError(err)
	}
	subs, err := ss.acct.Subscriptions()
	if err != nil {
		return imapError(err)
	}
	hasChildren := map[string]bool{}
	for _, n := range names {
		if i := strings.LastIndexByte(n, maildir.Delim); i > 0 {
			hasChildren[n[:i]] = true
		}
	}
	for _, name := range names {
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(name, maildir.Delim, ref, p) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		special, isSpecial := ss.s.opts.SpecialUse[name]
		if options.SelectSubscribed && !subs[name] {
			continue
		}
		if options.SelectSpecialUse && !isSpecial {
			continue
		}
		data := goimap.ListData{Mailbox: name, Delim: maildir.Delim}
		if hasChildren[name] {
			data.Attrs = append(data.Attrs, goimap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, goimap.MailboxAttrHasNoChildren)
		}
		if subs[name] && (options.SelectSubscribed || options.ReturnSubscribed) {
			data.Attrs = append(data.Attrs, goimap.MailboxAttrSubscribed)
		}
		if isSpecial {
			// Special-use attributes are cheap, so they are always returned
			// (RFC 6154 allows it without RETURN (SPECIAL-USE)).
			data.Attrs = append(data.Attrs, special)
		}
		if options.ReturnStatus != nil {
			if st, err := ss.Status(name, options.ReturnStatus); err == nil {
				data.Status = st
			}
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

func (ss *session) Status(name string, options *goimap.StatusOptions) (*goimap.StatusData, error) {
	mbox, err := ss.mailbox(name)
	if err != nil {
		return nil, err
	}
	st, err := mbox.Status()
	if err != nil {
		return nil, imapError(err)
	}
	data := &goimap.StatusData{Mailbox: mbox.Name()}
	if options.NumMessages {
		n := st.Messages
		data.NumMessages = &n
	}
	if options.UIDNext {
		data.UIDNext = goimap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		n := st.Unseen
		data.NumUnseen = &n
	}
	if options.NumDeleted {
		n := st.Deleted
		data.NumDeleted = &n
	}
	if options.Size {
		n := st.Size
		data.Size = &n
	}
	if options.NumRecent {
		n := uint32(0)
		data.NumRecent = &n
	}
	return data, nil
}

func (ss *session) Append(name string, r goimap.LiteralReader, options *goimap.AppendOptions) (*goimap.AppendData, error) {
	mbox, err := ss.acct.Mailbox(name)
	if errors.Is(err, maildir.ErrNoMailbox) {
		io.Copy(io.Discard, r)
		return nil, &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		io.Copy(io.Discard, r)
		return nil, imapError(err)
	}
	if r.Size() > int64(ss.s.opts.AppendLimit) {
		io.Copy(io.Discard, r)
		return nil, imapError(maildir.ErrTooBig)
	}
	letters, keywords := splitFlags(options.Flags)
	msg, err := mbox.Append(r, letters, keywords, options.Time, int64(ss.s.opts.AppendLimit)+1024)
	if err != nil {
		io.Copy(io.Discard, r)
		return nil, imapError(err)
	}
	st, err := mbox.Status()
	if err != nil {
		return nil, imapError(err)
	}
	return &goimap.AppendData{UID: goimap.UID(msg.UID), UIDValidity: st.UIDValidity}, nil
}

func (ss *session) AppendLimit() uint32 { return ss.s.opts.AppendLimit }

func (ss *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if ss.st == nil {
		return nil
	}
	if err := ss.mbox.Sync(); err != nil && !errors.Is(err, maildir.ErrNoMailbox) {
		return imapError(err)
	}
	return ss.st.Poll(w, allowExpunge)
}

func (ss *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if ss.st == nil {
		<-stop
		return nil
	}
	return ss.st.Idle(w, stop)
}

// --- selected state -----------------------------------------------------------

type selected struct {
	seq uint32 // in the client's numbering
	msg maildir.Message
}

// resolve returns the messages of numSet in ascending order, with their
// sequence numbers as this client knows them.
func (ss *session) resolve(numSet goimap.NumSet) ([]selected, error) {
	if goimap.IsSearchRes(numSet) {
		numSet = ss.searchRes
	}
	var out []selected
	err := ss.mbox.View(func(msgs []maildir.Message, uv, next uint32) {
		switch set := numSet.(type) {
		case goimap.SeqSet:
			// "*" is the highest sequence number the client knows.
			max := uint32(0)
			for i := len(msgs); i >= 1; i-- {
				if s := ss.st.EncodeSeqNum(uint32(i)); s != 0 {
					max = s
					break
				}
			}
			set = staticSeqSet(set, max)
			for i, m := range msgs {
				s := ss.st.EncodeSeqNum(uint32(i + 1))
				if s != 0 && set.Contains(s) {
					out = append(out, selected{s, m})
				}
			}
		case goimap.UIDSet:
			max := goimap.UID(0)
			if len(msgs) > 0 {
				max = goimap.UID(msgs[len(msgs)-1].UID)
			}
			set = staticUIDSet(set, max)
			for i, m := range msgs {
				if set.Contains(goimap.UID(m.UID)) {
					out = append(out, selected{ss.st.EncodeSeqNum(uint32(i + 1)), m})
				}
			}
		}
	})
	return out, imapError(err)
}

func staticSeqSet(set goimap.SeqSet, max uint32) goimap.SeqSet {
	out := make(goimap.SeqSet, len(set))
	copy(out, set)
	for i := range out {
		r := &out[i]
		dyn := r.Start == 0 || r.Stop == 0
		if r.Start == 0 {
			r.Start = max
		}
		if r.Stop == 0 {
			r.Stop = max
		}
		if dyn && r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
	}
	return out
}

func staticUIDSet(set goimap.UIDSet, max goimap.UID) goimap.UIDSet {
	out := make(goimap.UIDSet, len(set))
	copy(out, set)
	for i := range out {
		r := &out[i]
		dyn := r.Start == 0 || r.Stop == 0
		if r.Start == 0 {
			r.Start = max
		}
		if r.Stop == 0 {
			r.Stop = max
		}
		if dyn && r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
	}
	return out
}

func uids(sel []selected) []uint32 {
	out := make([]uint32, len(sel))
	for i, s := range sel {
		out[i] = s.msg.UID
	}
	return out
}

func (ss *session) Expunge(w *imapserver.ExpungeWriter, uidSet *goimap.UIDSet) error {
	if ss.readOnly {
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeCannot, Text: "Mailbox is read-only"}
	}
	var set goimap.NumSet = goimap.UIDSet{goimap.UIDRange{Start: 1, Stop: 0}}
	if uidSet != nil {
		set = *uidSet
	}
	sel, err := ss.resolve(set)
	if err != nil {
		return err
	}
	var del []uint32
	for _, s := range sel {
		if s.msg.HasFlag(maildir.FlagTrashed) {
			del = append(del, s.msg.UID)
		}
	}
	if len(del) == 0 {
		return nil
	}
	_, err = ss.mbox.Expunge(del)
	return imapError(err) // the EXPUNGE responses come from the tracker
}

func (ss *session) Store(w *imapserver.FetchWriter, numSet goimap.NumSet, flags *goimap.StoreFlags, options *goimap.StoreOptions) error {
	if ss.readOnly {
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeCannot, Text: "Mailbox is read-only"}
	}
	sel, err := ss.resolve(numSet)
	if err != nil {
		return err
	}
	letters, keywords := splitFlags(flags.Flags)
	op := map[goimap.StoreFlagsOp]maildir.FlagOp{goimap.StoreFlagsSet: maildir.FlagsSet, goimap.StoreFlagsAdd: maildir.FlagsAdd, goimap.StoreFlagsDel: maildir.FlagsRemove}[flags.Op]
	updated, err := ss.mbox.SetFlags(uids(sel), op, letters, keywords)
	if err != nil {
		return imapError(err)
	}
	if flags.Silent {
		return nil
	}
	byUID := map[uint32]maildir.Message{}
	for _, m := range updated {
		byUID[m.UID] = m
	}
	for _, s := range sel {
		m, ok := byUID[s.msg.UID]
		if !ok || s.seq == 0 {
			continue
		}
		rw := w.CreateMessage(s.seq)
		rw.WriteUID(goimap.UID(m.UID))
		rw.WriteFlags(imapFlags(m))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (ss *session) Copy(numSet goimap.NumSet, dest string) (*goimap.CopyData, error) {
	dst, err := ss.acct.Mailbox(dest)
	if errors.Is(err, maildir.ErrNoMailbox) {
		return nil, &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return nil, imapError(err)
	}
	sel, err := ss.resolve(numSet)
	if err != nil {
		return nil, err
	}
	src, dstUIDs, err := ss.mbox.Copy(uids(sel), dst)
	if err != nil {
		return nil, imapError(err)
	}
	return ss.copyData(dst, src, dstUIDs)
}

func (ss *session) copyData(dst *maildir.Mailbox, src, dstUIDs []uint32) (*goimap.CopyData, error) {
	st, err := dst.Status()
	if err != nil {
		return nil, imapError(err)
	}
	data := &goimap.CopyData{UIDValidity: st.UIDValidity}
	for i := range src {
		data.SourceUIDs.AddNum(goimap.UID(src[i]))
		data.DestUIDs.AddNum(goimap.UID(dstUIDs[i]))
	}
	return data, nil
}

func (ss *session) Move(w *imapserver.MoveWriter, numSet goimap.NumSet, dest string) error {
	if ss.readOnly {
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeCannot, Text: "Mailbox is read-only"}
	}
	dst, err := ss.acct.Mailbox(dest)
	if errors.Is(err, maildir.ErrNoMailbox) {
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return imapError(err)
	}
	sel, err := ss.resolve(numSet)
	if err != nil {
		return err
	}
	src, dstUIDs, err := ss.mbox.Copy(uids(sel), dst)
	if err != nil {
		return imapError(err)
	}
	data, err := ss.copyData(dst, src, dstUIDs)
	if err != nil {
		return err
	}
	if err := w.WriteCopyData(data); err != nil {
		return err
	}
	// The EXPUNGE responses reach this session through the tracker.
	_, err = ss.mbox.Expunge(src)
	return imapError(err)
}

// --- FETCH --------------------------------------------------------------------

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

func sortFlags(f []goimap.Flag) {
	sort.Slice(f, func(i, j int) bool { return f[i] < f[j] })
}
