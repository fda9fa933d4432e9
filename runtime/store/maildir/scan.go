package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

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
