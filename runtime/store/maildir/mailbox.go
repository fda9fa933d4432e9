package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Message is a snapshot of one message's metadata.
type Message struct {
	UID uint32
	// Key is the unique part of the file name: the same key always names
	// the same, unchanging content (flags live in the name's suffix).
	Key      string
	Flags    string   // maildir flag letters, sorted
	Keywords []string // IMAP keywords, sorted
	Size     int64
	Date     time.Time // internal date (file mtime)
}

// HasFlag reports whether the message carries the maildir flag letter f.
func (m Message) HasFlag(f byte) bool { return strings.IndexByte(m.Flags, f) >= 0 }

type message struct {
	uid      uint32
	key      string
	sub      string // "cur" or "new"
	flags    string
	keywords []string
	size     int64
	date     time.Time
}

func (m *message) fileName() string {
	if m.sub == "new" {
		return m.key
	}
	return Name{Key: m.key, Flags: m.flags, Info: true}.String()
}

func (m *message) snapshot() Message {
	return Message{UID: m.uid, Key: m.key, Flags: m.flags, Keywords: append([]string(nil), m.keywords...), Size: m.size, Date: m.date}
}

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

const uidListFile = "mailfleet-uidlist"

// writeUIDList replaces the UID list of the folder in dir.
// Format: "mailfleet-uidlist 2 UIDVALIDITY UIDNEXT\n" then
// "UID KEY DATE [KEYWORD...]\n", DATE the message's internal date (the
// file's modification time) in Unix nanoseconds: with it, and the size in
// the file's name, opening a folder reads its directories without a stat
// per message (a cold SELECT of 17,600 messages spent more than half its
// time in lstat). Version 1 lists (no DATE) are read too.
func writeUIDList(dir string, uidValidity, uidNext uint32, msgs []*message) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "mailfleet-uidlist 2 %d %d\n", uidValidity, uidNext)
	uidListLines(&b, msgs)
	return writeFileAtomic(filepath.Join(dir, uidListFile), b.Bytes(), 0o600)
}

func uidListLines(b *bytes.Buffer, msgs []*message) {
	for _, msg := range msgs {
		fmt.Fprintf(b, "%d %s %d", msg.uid, msg.key, msg.date.UnixNano())
		for _, k := range msg.keywords {
			b.WriteByte(' ')
			b.WriteString(k)
		}
		b.WriteByte('\n')
	}
}

// errRewrite: the UID list cannot take an append (missing, or its last
// line torn by a crash); write it whole.
var errRewrite = errors.New("maildir: the UID list needs a rewrite")

// appendUIDList adds msgs (given new UIDs) at the end of the UID list,
// durably: new mail costs a line each, not a rewrite of the whole list (a
// folder of 17,600 messages rewrote 1.3 MB, with an fsync, for every
// message seen). Readers take UIDNEXT as above the highest UID listed.
func appendUIDList(dir string, msgs []*message) error {
	f, err := os.OpenFile(filepath.Join(dir, uidListFile), os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		return errRewrite
	}
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	last := make([]byte, 1)
	if st.Size() == 0 {
		return errRewrite
	}
	if _, err := f.ReadAt(last, st.Size()-1); err != nil || last[0] != '\n' {
		return errRewrite
	}
	var b bytes.Buffer
	uidListLines(&b, msgs)
	if _, err := f.Write(b.Bytes()); err != nil {
		return fmt.Errorf("maildir: append to the UID list: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("maildir: append to the UID list: %w", err)
	}
	return nil
}

type uidEntry struct {
	uid      uint32
	date     time.Time // zero in a version 1 list
	keywords []string
}

// readUIDList returns ok=false when the list is missing or its header is
// unreadable; the mailbox then gets a new UIDVALIDITY.
func readUIDList(dir string) (uidValidity, uidNext uint32, entries map[string]uidEntry, ok bool, err error) {
	f, err := os.Open(filepath.Join(dir, uidListFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil, false, nil
	}
	if err != nil {
		return 0, 0, nil, false, fmt.Errorf("maildir: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	// Every line ends in a newline: a last line without one was torn by
	// a crash in the middle of an append, and is not read.
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF {
			return len(data), nil, nil
		}
		return 0, nil, nil
	})
	if !sc.Scan() {
		return 0, 0, nil, false, nil
	}
	h := strings.Fields(sc.Text())
	if len(h) != 4 || h[0] != "mailfleet-uidlist" || (h[1] != "1" && h[1] != "2") {
		return 0, 0, nil, false, nil
	}
	dated := h[1] == "2"
	v, err1 := strconv.ParseUint(h[2], 10, 32)
	n, err2 := strconv.ParseUint(h[3], 10, 32)
	if err1 != nil || err2 != nil || v == 0 || n == 0 {
		return 0, 0, nil, false, nil
	}
	entries = map[string]uidEntry{}
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		uid, err := strconv.ParseUint(fs[0], 10, 32)
		// Appended lines may be at or above the header's UIDNEXT; the
		// list's UIDNEXT is above every UID in it.
		if err != nil || uid == 0 || uid == math.MaxUint32 || (!dated && uid >= n) {
			continue
		}
		if uid >= n {
			n = uid + 1
		}
		e := uidEntry{uid: uint32(uid), keywords: fs[2:]}
		if dated {
			if len(fs) < 3 {
				continue
			}
			ns, err := strconv.ParseInt(fs[2], 10, 64)
			if err != nil {
				continue
			}
			if ns > 0 {
				e.date = time.Unix(0, ns)
			}
			e.keywords = fs[3:]
		}
		entries[fs[1]] = e
	}
	return uint32(v), uint32(n), entries, true, nil
}

// --- loading and syncing --------------------------------------------------

type found struct {
	name Name
	sub  string
	size int64
	date time.Time
}

// scanFolder reads the named subdirectories (cur/, new/) of the folder.
// known says what is known of a message already: its date (from the UID
// list); a message whose size is in its name and whose date is known is
// not stat'ed (its date is left zero for the caller to fill).
func scanFolder(dir string, known func(key string) (date time.Time, ok bool), subs ...string) (map[string]found, error) {
	out := map[string]found{}
	for _, sub := range subs {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
		for _, e := range ents {
			n, err := ParseName(e.Name())
			if err != nil || !e.Type().IsRegular() {
				continue
			}
			if prev, ok := out[n.Key]; ok && prev.sub == "cur" {
				continue
			}
			if known != nil && n.Size >= 0 {
				if date, ok := known(n.Key); ok && !date.IsZero() {
					out[n.Key] = found{name: n, sub: sub, size: n.Size, date: date}
					continue
				}
			}
			fi, err := e.Info()
			if err != nil {
				continue // renamed meanwhile; the next scan sees it
			}
			size := n.Size
			if size < 0 {
				size = fi.Size()
			}
			out[n.Key] = found{name: n, sub: sub, size: size, date: fi.ModTime()}
		}
	}
	return out, nil
}

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

// crlfWriter turns bare LF into CRLF so that stored messages are in wire
// form and sizes are the RFC822.SIZE that IMAP reports.
type crlfWriter struct {
	w      io.Writer
	lastCR bool
	n      int64
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	start := 0
	for i, b := range p {
		if b == '\n' && !(i == 0 && c.lastCR) && !(i > 0 && p[i-1] == '\r') {
			if _, err := c.w.Write(p[start:i]); err != nil {
				return 0, err
			}
			if _, err := c.w.Write([]byte("\r\n")); err != nil {
				return 0, err
			}
			c.n += int64(i-start) + 2
			start = i + 1
		}
	}
	if _, err := c.w.Write(p[start:]); err != nil {
		return 0, err
	}
	c.n += int64(len(p) - start)
	if len(p) > 0 {
		c.lastCR = p[len(p)-1] == '\r'
	}
	return len(p), nil
}

// limitedReader fails with ErrTooBig instead of truncating.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, ErrTooBig
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// writeTmp writes r into tmp/ of the folder, fsynced, and returns the file
// name (the key with its size field) and the size. maxSize 0 means no limit.
func writeTmp(dir, host string, r io.Reader, maxSize int64) (key string, size int64, err error) {
	base := newKey(host)
	tmpPath := filepath.Join(dir, "tmp", base)
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("maildir: %w", err)
	}
	fail := func(err error) (string, int64, error) {
		f.Close()
		os.Remove(tmpPath)
		return "", 0, err
	}
	if maxSize > 0 {
		r = &limitedReader{r: r, left: maxSize}
	}
	bw := bufio.NewWriterSize(f, 64*1024)
	cw := &crlfWriter{w: bw}
	if _, err := io.Copy(cw, r); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("maildir: %w", err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("maildir: fsync: %w", err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmpPath)
		return "", 0, fmt.Errorf("maildir: %w", err)
	}
	key = base + ",S=" + strconv.FormatInt(cw.n, 10)
	// The tmp file keeps the base name; the caller renames it to the key.
	return key, cw.n, nil
}

func tmpNameOf(key string) string {
	base, _, _ := strings.Cut(key, ",S=")
	return base
}

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

// copyFile copies the content of src into tmp/ of dir, fsynced, for when a
// hard link is not possible.
func copyFile(src string, dir, host string) (key string, size int64, err error) {
	f, err := os.Open(src)
	if err != nil {
		return "", 0, fmt.Errorf("maildir: %w", err)
	}
	defer f.Close()
	return writeTmp(dir, host, f, 0)
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
