package imap

import (
	goimap "github.com/emersion/go-imap/v2"

	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

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
