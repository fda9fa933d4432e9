// Package mountinfo reads a mount namespace's mount table
// (/proc/PID/mountinfo): the lab and the cluster's mount agent both need
// the mount points, with the kernel's escapes undone. It imports nothing of
// mailfleet.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Entry is one mount: its mount point and file system type.
type Entry struct {
	Point, FSType string
}

// maxSize bounds what is read: far more than a node's mounts.
const maxSize = 16 << 20

// Read reads the mount table at path (/proc/self/mountinfo).
func Read(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	es, err := Parse(f)
	if err != nil {
		return es, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}

// Parse reads a mount table in mountinfo's format, in the order the mounts
// were made (a point mounted twice is there twice). A line too short to
// name its mount point is an error; the entries before it are returned.
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxSize)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			return out, fmt.Errorf("malformed line %q", sc.Text())
		}
		e := Entry{Point: Unescape(fields[4])}
		for i := 5; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				e.FSType = fields[i+1]
				break
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Unescape undoes the kernel's octal escapes (\040 for a space, \011,
// \012, \134) in a mountinfo field.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
