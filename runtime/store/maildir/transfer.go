package maildir

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ExportAccount writes the whole account (every mailbox with its messages,
// flags, UID list and UIDVALIDITY, the subscriptions and the quota) to w as
// a tar stream. The caller stops deliveries and sessions for the account
// first (the admin API's "moving" state), so the copy is consistent.
func (s *Store) ExportAccount(addr string, w io.Writer) error {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return err
	}
	root := s.accountDir(local, domain)
	if _, err := os.Stat(filepath.Join(root, "cur")); err != nil {
		return fmt.Errorf("%w: %s", ErrNoAccount, addr)
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		base := d.Name()
		// Unfinished writes and our own temporaries are not part of the account.
		if strings.HasPrefix(base, ".tmp-") || strings.HasPrefix(base, "creating-") || strings.HasPrefix(base, "deleting-") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Base(filepath.Dir(path)) == "tmp" && !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() && !info.Mode().IsRegular() {
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("maildir: export %s: %w", addr, err)
	}
	return tw.Close()
}

// ErrAccountExists is returned by ImportAccount when the account already
// holds mail.
var ErrAccountExists = errors.New("account already has mail")

// ImportAccount unpacks an ExportAccount stream as the account addr. The
// account must not hold any message yet. The stream is unpacked into a
// staging directory, fsynced, then renamed into place, so a failed import
// leaves nothing behind.
func (s *Store) ImportAccount(addr string, r io.Reader) error {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return err
	}
	key := local + "@" + domain
	final := s.accountDir(local, domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[key]; ok {
		if u, err := a.Usage(); err != nil || u.Messages > 0 {
			return fmt.Errorf("%w: %s", ErrAccountExists, key)
		}
	} else if s.hasMessages(final) {
		return fmt.Errorf("%w: %s", ErrAccountExists, key)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(final), ".import-")
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer os.RemoveAll(stage)
	var dirs []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("maildir: import: %w", err)
		}
		name := filepath.FromSlash(hdr.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("maildir: import: unsafe path %q", hdr.Name)
		}
		path := filepath.Join(stage, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o700); err != nil {
				return fmt.Errorf("maildir: %w", err)
			}
			dirs = append(dirs, path)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("maildir: %w", err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("maildir: %w", err)
			}
			_, err = io.Copy(f, tr)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("maildir: import: %w", err)
			}
			os.Chtimes(path, hdr.ModTime, hdr.ModTime)
		default:
			return fmt.Errorf("maildir: import: %q is neither a file nor a directory", hdr.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(stage, "cur")); err != nil {
		return errors.New("maildir: import: the stream holds no maildir")
	}
	for _, sub := range []string{"new", "tmp"} {
		os.MkdirAll(filepath.Join(stage, sub), 0o700)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syncDir(dirs[i]); err != nil {
			return err
		}
	}
	if err := syncDir(stage); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := os.Rename(stage, final); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return err
	}
	delete(s.accounts, key) // the next Account call reads the imported state
	return nil
}

func (s *Store) hasMessages(dir string) bool {
	found := false
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipDir
		}
		parent := filepath.Base(filepath.Dir(path))
		if !d.IsDir() && (parent == "cur" || parent == "new") {
			found = true
		}
		return nil
	})
	return found
}
