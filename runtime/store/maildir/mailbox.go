package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Observer learns about changes of a mailbox. Calls other than NewMail are
// made with the mailbox locked, in the order the changes happen, so an
// observer must not call back into the mailbox from them.
type Observer interface {
	// Appended: messages were added; total is the new message count.
	Appended(total uint32)
	// Expunged: the message with sequence number seq was removed. Several
	// removals are reported from the highest sequence number down.
	Expunged(seq uint32)
	// FlagsChanged: the message at seq has new flags.
	FlagsChanged(seq uint32, m Message)
	// NewMail: a delivery landed in new/; call Sync to pick it up.
	NewMail()
}

// Mailbox is one maildir folder with its UID list.
type Mailbox struct {
	acct *Account

	mu          sync.Mutex
	name        string
	dir         string
	deleted     bool
	loaded      bool
	uidValidity uint32
	uidNext     uint32
	msgs        []*message // by ascending UID
	byKey       map[string]*message
	observers   []Observer
}

// Name returns the mailbox name.
func (m *Mailbox) Name() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.name
}

// Account returns the account the mailbox belongs to.
func (m *Mailbox) Account() *Account { return m.acct }

func (m *Mailbox) markDeleted() {
	m.mu.Lock()
	m.deleted = true
	m.msgs, m.byKey = nil, nil
	m.mu.Unlock()
}

// AddObserver registers o; RemoveObserver forgets it.
func (m *Mailbox) AddObserver(o Observer) {
	m.mu.Lock()
	m.observers = append(m.observers, o)
	m.mu.Unlock()
}

func (m *Mailbox) RemoveObserver(o Observer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.observers {
		if x == o {
			m.observers = append(m.observers[:i], m.observers[i+1:]...)
			return
		}
	}
}

func (m *Mailbox) check() error {
	if m.deleted {
		return fmt.Errorf("%w: %s", ErrNoMailbox, m.name)
	}
	return nil
}

// --- UID list -------------------------------------------------------------

func (m *Mailbox) loadLocked() error {
	if err := m.check(); err != nil {
		return err
	}
	if m.loaded {
		return nil
	}
	uv, next, entries, ok, err := readUIDList(m.dir)
	if err != nil {
		return err
	}
	files, err := scanFolder(m.dir, func(key string) (time.Time, bool) {
		e, ok := entries[key]
		return e.date, ok
	}, "cur", "new")
	if err != nil {
		return err
	}
	dirty := !ok
	if !ok {
		uv, next, entries = m.acct.store.newUIDValidity(), 1, nil
	}
	var msgs, unknown []*message
	seen := map[uint32]bool{}
	for key, f := range files {
		msg := &message{key: key, sub: f.sub, flags: f.name.Flags, size: f.size, date: f.date}
		if e, ok := entries[key]; ok && !seen[e.uid] {
			seen[e.uid] = true
			msg.uid, msg.keywords = e.uid, e.keywords
			msgs = append(msgs, msg)
		} else {
			// Not listed, or a UID listed twice (a damaged list): a
			// new UID.
			unknown = append(unknown, msg)
		}
	}
	if len(entries) != len(msgs) {
		dirty = true // entries of removed files are dropped
	}
	for _, msg := range msgs {
		if entries[msg.key].date.IsZero() {
			dirty = true // a version 1 list: write the dates down
			break
		}
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].uid < msgs[j].uid })
	// New messages get UIDs in delivery order (keys start with the time).
	sort.Slice(unknown, func(i, j int) bool { return deliveredBefore(unknown[i], unknown[j]) })
	for _, msg := range unknown {
		msg.uid = next
		next++
		msgs = append(msgs, msg)
		dirty = true
	}
	if dirty {
		if err := writeUIDList(m.dir, uv, next, msgs); err != nil {
			return err
		}
	}
	m.uidValidity, m.uidNext, m.msgs = uv, next, msgs
	m.byKey = make(map[string]*message, len(msgs))
	for _, msg := range msgs {
		m.byKey[msg.key] = msg
	}
	m.loaded = true
	m.moveNewToCurLocked(msgs)
	return nil
}

// moveNewToCurLocked moves messages that have UIDs from new/ to cur/, as
// maildir readers do once they have seen a message. A failure only leaves
// the file in new/, where it is still found by its key.
func (m *Mailbox) moveNewToCurLocked(msgs []*message) {
	for _, msg := range msgs {
		if msg.sub != "new" {
			continue
		}
		from := filepath.Join(m.dir, "new", msg.key)
		msg.sub = "cur"
		if err := os.Rename(from, filepath.Join(m.dir, "cur", msg.fileName())); err != nil {
			msg.sub = "new"
		}
	}
}

// Sync picks up messages delivered to new/ since the last look, gives them
// UIDs (durably) and reports them to the observers.
func (m *Mailbox) Sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded {
		return m.loadLocked()
	}
	if err := m.check(); err != nil {
		return err
	}
	files, err := scanFolder(m.dir, nil, "new")
	if err != nil {
		return err
	}
	var fresh []*message
	for key, f := range files {
		if _, ok := m.byKey[key]; ok {
			continue
		}
		fresh = append(fresh, &message{key: key, sub: "new", flags: f.name.Flags, size: f.size, date: f.date})
	}
	if len(fresh) == 0 {
		return nil
	}
	sort.Slice(fresh, func(i, j int) bool { return deliveredBefore(fresh[i], fresh[j]) })
	return m.addLocked(fresh)
}

// addLocked assigns UIDs to msgs, makes the UID list durable, then exposes
// the messages.
func (m *Mailbox) addLocked(msgs []*message) error {
	next := m.uidNext
	for _, msg := range msgs {
		msg.uid = next
		next++
	}
	all := append(append([]*message(nil), m.msgs...), msgs...)
	if err := appendUIDList(m.dir, msgs); errors.Is(err, errRewrite) {
		if err := writeUIDList(m.dir, m.uidValidity, next, all); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	m.uidNext, m.msgs = next, all
	for _, msg := range msgs {
		m.byKey[msg.key] = msg
	}
	m.moveNewToCurLocked(msgs)
	for _, o := range m.observers {
		o.Appended(uint32(len(m.msgs)))
	}
	return nil
}

// --- reading ----------------------------------------------------------------

// Status is the summary of a mailbox.
type Status struct {
	Messages    uint32
	Unseen      uint32
	Deleted     uint32
	Size        int64
	UIDNext     uint32
	UIDValidity uint32
}

// Status syncs the mailbox and summarizes it.
func (m *Mailbox) Status() (Status, error) {
	if err := m.Sync(); err != nil {
		return Status{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Messages: uint32(len(m.msgs)), UIDNext: m.uidNext, UIDValidity: m.uidValidity}
	for _, msg := range m.msgs {
		if strings.IndexByte(msg.flags, FlagSeen) < 0 {
			st.Unseen++
		}
		if strings.IndexByte(msg.flags, FlagTrashed) >= 0 {
			st.Deleted++
		}
		st.Size += msg.size
	}
	return st, nil
}

// Messages syncs the mailbox and returns its messages by ascending UID.
func (m *Mailbox) Messages() ([]Message, error) {
	if err := m.Sync(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshotLocked(), nil
}

// Snapshot returns the messages known now, without looking for new ones,
// with the UIDVALIDITY and UIDNEXT that go with them.
func (m *Mailbox) Snapshot() (msgs []Message, uidValidity, uidNext uint32, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadLocked(); err != nil {
		return nil, 0, 0, err
	}
	return m.snapshotLocked(), m.uidValidity, m.uidNext, nil
}

func (m *Mailbox) snapshotLocked() []Message {
	out := make([]Message, len(m.msgs))
	for i, msg := range m.msgs {
		out[i] = msg.snapshot()
	}
	return out
}

func (m *Mailbox) findLocked(uid uint32) (int, *message) {
	i := sort.Search(len(m.msgs), func(i int) bool { return m.msgs[i].uid >= uid })
	if i < len(m.msgs) && m.msgs[i].uid == uid {
		return i, m.msgs[i]
	}
	return -1, nil
}

// ErrNoMessage is returned for a UID that is not (or no longer) there.
var ErrNoMessage = errors.New("no such message")

// Open opens the message file for reading. The open file stays readable
// even if the message is renamed or expunged meanwhile.
func (m *Mailbox) Open(uid uint32) (*os.File, Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadLocked(); err != nil {
		return nil, Message{}, err
	}
	_, msg := m.findLocked(uid)
	if msg == nil {
		return nil, Message{}, ErrNoMessage
	}
	f, err := os.Open(filepath.Join(m.dir, msg.sub, msg.fileName()))
	if err != nil {
		return nil, Message{}, fmt.Errorf("maildir: %w", err)
	}
	return f, msg.snapshot(), nil
}

// --- writing ----------------------------------------------------------------

// DeliverOptions tune a delivery.
type DeliverOptions struct {
	MaxSize     int64 // 0: unlimited
	IgnoreQuota bool
}

// Deliver stores a new message in the mailbox's new/ directory. It returns
// only after the file and new/ are fsynced, so a nil error means the
// message survives a crash. Quota is checked against the real size.
func (m *Mailbox) Deliver(r io.Reader, opt DeliverOptions) (size int64, err error) {
	m.mu.Lock()
	dir, chkErr := m.dir, m.check()
	m.mu.Unlock()
	if chkErr != nil {
		return 0, chkErr
	}
	if !opt.IgnoreQuota {
		if err := m.acct.CheckQuota(0); err != nil {
			return 0, err
		}
	}
	key, size, err := writeTmp(dir, m.acct.store.host, r, opt.MaxSize)
	if err != nil {
		return 0, err
	}
	tmpPath := filepath.Join(dir, "tmp", tmpNameOf(key))
	if !opt.IgnoreQuota {
		m.acct.mu.Lock()
		err := m.acct.checkQuotaLocked(size, 1)
		if err == nil && m.acct.usageKnown {
			m.acct.usage.Bytes += size
			m.acct.usage.Messages++
		}
		m.acct.mu.Unlock()
		if err != nil {
			os.Remove(tmpPath)
			return 0, err
		}
	} else {
		m.acct.addUsage(size, 1)
	}
	if err := os.Rename(tmpPath, filepath.Join(dir, "new", key)); err != nil {
		os.Remove(tmpPath)
		m.acct.addUsage(-size, -1)
		return 0, fmt.Errorf("maildir: %w", err)
	}
	if err := syncDir(filepath.Join(dir, "new")); err != nil {
		// The message may or may not survive a crash: do not acknowledge it.
		return 0, err
	}
	m.mu.Lock()
	obs := append([]Observer(nil), m.observers...)
	m.mu.Unlock()
	for _, o := range obs {
		o.NewMail()
	}
	return size, nil
}

// Append stores a message directly in cur/ with the given flags and
// internal date (zero: now) and returns its UID.
func (m *Mailbox) Append(r io.Reader, flags string, keywords []string, date time.Time, maxSize int64) (Message, error) {
	m.mu.Lock()
	dir, chkErr := m.dir, m.check()
	m.mu.Unlock()
	if chkErr != nil {
		return Message{}, chkErr
	}
	if err := m.acct.CheckQuota(0); err != nil {
		return Message{}, err
	}
	key, size, err := writeTmp(dir, m.acct.store.host, r, maxSize)
	if err != nil {
		return Message{}, err
	}
	tmpPath := filepath.Join(dir, "tmp", tmpNameOf(key))
	m.acct.mu.Lock()
	err = m.acct.checkQuotaLocked(size, 1)
	if err == nil && m.acct.usageKnown {
		m.acct.usage.Bytes += size
		m.acct.usage.Messages++
	}
	m.acct.mu.Unlock()
	if err != nil {
		os.Remove(tmpPath)
		return Message{}, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	_ = os.Chtimes(tmpPath, date, date)
	msg := &message{key: key, sub: "cur", flags: normalizeFlags(flags), keywords: normalizeKeywords(keywords), size: size, date: date}
	return m.link(tmpPath, msg, true)
}

// link moves (or hard-links, when rename is false) the fsynced file src
// into cur/ as msg and registers it with a UID.
func (m *Mailbox) link(src string, msg *message, rename bool) (Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadLocked(); err != nil {
		if rename {
			os.Remove(src)
		}
		return Message{}, err
	}
	dst := filepath.Join(m.dir, "cur", msg.fileName())
	var err error
	if rename {
		err = os.Rename(src, dst)
	} else {
		err = os.Link(src, dst)
	}
	if err != nil {
		if rename {
			os.Remove(src)
		}
		m.acct.addUsage(-msg.size, -1)
		return Message{}, fmt.Errorf("maildir: %w", err)
	}
	if err := syncDir(filepath.Join(m.dir, "cur")); err != nil {
		return Message{}, err
	}
	if err := m.addLocked([]*message{msg}); err != nil {
		return Message{}, err
	}
	return msg.snapshot(), nil
}

// Copy copies the messages with the given UIDs into dst (which may be m)
// with their flags and dates, and returns the source and new UIDs pairwise.
func (m *Mailbox) Copy(uids []uint32, dst *Mailbox) (srcUIDs, dstUIDs []uint32, err error) {
	type item struct {
		path string
		msg  message
	}
	m.mu.Lock()
	if err := m.loadLocked(); err != nil {
		m.mu.Unlock()
		return nil, nil, err
	}
	var items []item
	for _, uid := range uids {
		if _, msg := m.findLocked(uid); msg != nil {
			items = append(items, item{filepath.Join(m.dir, msg.sub, msg.fileName()), *msg})
		}
	}
	m.mu.Unlock()
	var total int64
	for _, it := range items {
		total += it.msg.size
	}
	dst.acct.mu.Lock()
	err = dst.acct.checkQuotaLocked(total, int64(len(items)))
	dst.acct.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	dst.mu.Lock()
	dstDir, chkErr := dst.dir, dst.check()
	dst.mu.Unlock()
	if chkErr != nil {
		return nil, nil, chkErr
	}
	for _, it := range items {
		// A fresh key: keys are unique per folder, and the copy is a new
		// message there.
		key := newKey(m.acct.store.host) + ",S=" + strconv.FormatInt(it.msg.size, 10)
		msg := &message{key: key, sub: "cur", flags: it.msg.flags, keywords: it.msg.keywords, size: it.msg.size, date: it.msg.date}
		tmp := filepath.Join(dstDir, "tmp", tmpNameOf(key))
		if err := os.Link(it.path, tmp); err != nil {
			k2, _, err2 := copyFile(it.path, dstDir, m.acct.store.host)
			if err2 != nil {
				return srcUIDs, dstUIDs, err2
			}
			msg.key = k2
			tmp = filepath.Join(dstDir, "tmp", tmpNameOf(k2))
			_ = os.Chtimes(tmp, msg.date, msg.date)
		}
		dst.acct.addUsage(msg.size, 1)
		snap, err := dst.link(tmp, msg, true)
		if err != nil {
			return srcUIDs, dstUIDs, err
		}
		srcUIDs = append(srcUIDs, it.msg.uid)
		dstUIDs = append(dstUIDs, snap.UID)
	}
	return srcUIDs, dstUIDs, nil
}

// MoveResult pairs the UIDs of moved messages.
type MoveResult struct {
	SrcUIDs, DstUIDs []uint32
}

// Move copies the messages into dst, then expunges them from m.
func (m *Mailbox) Move(uids []uint32, dst *Mailbox) (MoveResult, error) {
	src, dstUIDs, err := m.Copy(uids, dst)
	if err != nil {
		return MoveResult{}, err
	}
	if _, err := m.Expunge(src); err != nil {
		return MoveResult{}, err
	}
	return MoveResult{SrcUIDs: src, DstUIDs: dstUIDs}, nil
}

// Expunge removes the messages with the given UIDs and returns the UIDs
// removed. The UID list keeps UIDNEXT; stale entries are dropped on the
// next rewrite.
func (m *Mailbox) Expunge(uids []uint32) ([]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadLocked(); err != nil {
		return nil, err
	}
	want := map[uint32]bool{}
	for _, u := range uids {
		want[u] = true
	}
	var removed []uint32
	var bytes int64
	subs := map[string]bool{}
	for i := len(m.msgs) - 1; i >= 0; i-- {
		msg := m.msgs[i]
		if !want[msg.uid] {
			continue
		}
		if err := os.Remove(filepath.Join(m.dir, msg.sub, msg.fileName())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("maildir: %w", err)
		}
		subs[msg.sub] = true
		m.msgs = append(m.msgs[:i], m.msgs[i+1:]...)
		delete(m.byKey, msg.key)
		removed = append(removed, msg.uid)
		bytes += msg.size
		for _, o := range m.observers {
			o.Expunged(uint32(i + 1))
		}
	}
	for sub := range subs {
		if err := syncDir(filepath.Join(m.dir, sub)); err != nil {
			return removed, err
		}
	}
	m.acct.addUsage(-bytes, -int64(len(removed)))
	sort.Slice(removed, func(i, j int) bool { return removed[i] < removed[j] })
	return removed, nil
}

// Attach loads the mailbox and registers the observer that newObserver
// makes from the current message count, atomically, so that the observer
// misses no change.
func (m *Mailbox) Attach(newObserver func(count uint32) Observer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadLocked(); err != nil {
		return err
	}
	m.observers = append(m.observers, newObserver(uint32(len(m.msgs))))
	return nil
}

// View calls fn with the current messages (by ascending UID; index+1 is the
// sequence number the observers use), UIDVALIDITY and UIDNEXT, with the
// mailbox locked. fn must not call back into the mailbox.
func (m *Mailbox) View(fn func(msgs []Message, uidValidity, uidNext uint32)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadLocked(); err != nil {
		return err
	}
	fn(m.snapshotLocked(), m.uidValidity, m.uidNext)
	return nil
}
