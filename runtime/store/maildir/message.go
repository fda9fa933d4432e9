package maildir

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
