package imap

import (
	"errors"
	"io"
	"strings"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

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
