package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

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
