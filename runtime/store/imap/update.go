package imap

import (
	"errors"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

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
