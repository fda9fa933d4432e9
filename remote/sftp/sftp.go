// Package sftp does remote's file operations and commands on one host over
// an established SSH connection: read a file (or learn it is absent), write
// one atomically (temporary file in the same directory, fsync, mode and
// owner, rename over the target), remove one, and run a command with its
// output and exit status.
//
// Like all of remote it knows no mail: it never imports spec, render,
// runtime, provision or lab.
package sftp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Host is one host's SFTP session plus its SSH connection for commands.
// It is safe for concurrent use.
type Host struct {
	name string
	ssh  *ssh.Client
	c    *sftp.Client

	idMu   sync.Mutex
	users  map[string]int
	groups map[string]int

	// afterTemp, in tests, runs once the temporary file is complete and
	// before it is renamed.
	afterTemp func(tmp string) error

	// realDirs are directories NoLinks found to be directories, not links.
	linkMu   sync.Mutex
	realDirs map[string]bool
}

// ErrSymlink is the error of a managed path that goes through a symbolic
// link on the host.
var ErrSymlink = errors.New("is a symbolic link; mailfleet does not follow links on the paths it manages (remove the link, or let mailfleet manage the real path)")

// NoLinks fails with ErrSymlink when root+p, or any directory between root
// and it, is a symbolic link on the host: a read through one would show
// another file than the one managed, and a write through a linked
// directory would land elsewhere. The components of root itself are not
// checked; directories found real are remembered for the connection.
func (h *Host) NoLinks(root, p string) error {
	if !path.IsAbs(p) {
		return h.errorf("check", p, errors.New("path is not absolute"))
	}
	parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	cur := root
	for i, part := range parts {
		cur += "/" + part
		last := i == len(parts)-1
		h.linkMu.Lock()
		known := h.realDirs[cur]
		h.linkMu.Unlock()
		if known {
			continue
		}
		fi, err := h.c.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the rest will be made as real directories
		}
		if err != nil {
			return h.errorf("check", cur, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return h.errorf("check", cur, ErrSymlink)
		}
		if !last && fi.IsDir() {
			h.linkMu.Lock()
			if h.realDirs == nil {
				h.realDirs = map[string]bool{}
			}
			h.realDirs[cur] = true
			h.linkMu.Unlock()
		}
	}
	return nil
}

// Open starts the SFTP subsystem on c. name is how errors name the host.
func Open(name string, c *ssh.Client) (*Host, error) {
	sc, err := sftp.NewClient(c, sftp.UseConcurrentWrites(true))
	if err != nil {
		return nil, fmt.Errorf("%s: sftp: %w", name, err)
	}
	return &Host{name: name, ssh: c, c: sc}, nil
}

// Close ends the SFTP session (not the SSH connection, which the pool owns).
func (h *Host) Close() error { return h.c.Close() }

func (h *Host) errorf(op, p string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", h.name, op, p, err)
}

// ReadFile returns the content of p; exists is false (and err nil) when
// there is no such file.
func (h *Host) ReadFile(p string) (content []byte, exists bool, err error) {
	f, err := h.c.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, h.errorf("read", p, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		return nil, false, h.errorf("read", p, err)
	}
	return buf.Bytes(), true, nil
}

// Info is what Stat reports.
type Info struct {
	Mode fs.FileMode // type and permission bits
	UID  int
	GID  int
	Size int64
	// MTime is the modification time in seconds (SFTP's resolution).
	MTime int64
}

// Stat describes p without following a final symbolic link; exists is
// false when there is nothing at p.
func (h *Host) Stat(p string) (info Info, exists bool, err error) {
	fi, err := h.c.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, false, nil
	}
	if err != nil {
		return Info{}, false, h.errorf("stat", p, err)
	}
	info = Info{Mode: fi.Mode(), Size: fi.Size(), UID: -1, GID: -1, MTime: fi.ModTime().Unix()}
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		info.UID, info.GID = int(st.UID), int(st.GID)
	}
	return info, true, nil
}

// WriteFile replaces p with content, atomically: the content goes to a new
// temporary file in p's directory, which is synced to disk, given mode and
// owner:group, then renamed over p (posix-rename@openssh.com). A reader
// sees the old file or the new one, never a part; on failure the temporary
// file is removed (unless the connection itself was lost) and p is
// untouched. Missing parent directories are created (mode 0755). An empty
// owner or group leaves that id as the server creates it (the login user's).
func (h *Host) WriteFile(p string, content []byte, mode fs.FileMode, owner, group string) error {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return h.errorf("write", p, errors.New("path is not absolute and clean"))
	}
	uid, gid := -1, -1
	var err error
	if owner != "" {
		if uid, err = h.lookup("/etc/passwd", owner); err != nil {
			return h.errorf("write", p, err)
		}
	}
	if group != "" {
		if gid, err = h.lookup("/etc/group", group); err != nil {
			return h.errorf("write", p, err)
		}
	}
	dir, base := path.Split(p)
	if err := h.c.MkdirAll(dir); err != nil {
		return h.errorf("write", p, fmt.Errorf("creating its directory: %w", err))
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := path.Join(dir, ".mailfleet-tmp-"+base+"-"+hex.EncodeToString(rnd[:]))
	if err := h.writeTemp(tmp, content, mode, uid, gid); err != nil {
		h.c.Remove(tmp)
		return h.errorf("write", p, err)
	}
	if err := h.c.PosixRename(tmp, p); err != nil {
		h.c.Remove(tmp)
		return h.errorf("write", p, fmt.Errorf("rename: %w", err))
	}
	return nil
}

func (h *Host) writeTemp(tmp string, content []byte, mode fs.FileMode, uid, gid int) error {
	f, err := h.c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("temporary file: %w", err)
	}
	// Restrict the mode before any content lands, so a secret is never
	// readable under a looser umask-derived mode.
	if err := f.Chmod(mode.Perm() & 0o700); err != nil {
		f.Close()
		return fmt.Errorf("chmod: %w", err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(content)); err != nil {
		f.Close()
		return fmt.Errorf("writing: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync: %w", err)
	}
	if uid >= 0 || gid >= 0 {
		if uid < 0 || gid < 0 {
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return fmt.Errorf("stat: %w", err)
			}
			fst, _ := st.Sys().(*sftp.FileStat)
			if fst == nil {
				f.Close()
				return errors.New("stat: server gave no owner")
			}
			if uid < 0 {
				uid = int(fst.UID)
			}
			if gid < 0 {
				gid = int(fst.GID)
			}
		}
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
		}
	}
	// After chown: the kernel clears set-id bits on chown.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if h.afterTemp != nil {
		return h.afterTemp(tmp)
	}
	return nil
}

// UserID resolves a user name (or number) with the host's /etc/passwd.
func (h *Host) UserID(name string) (int, error) { return h.lookup("/etc/passwd", name) }

// GroupID resolves a group name (or number) with the host's /etc/group.
func (h *Host) GroupID(name string) (int, error) { return h.lookup("/etc/group", name) }

// lookup resolves a user or group name (or a number) with the host's
// /etc/passwd or /etc/group, read once.
func (h *Host) lookup(db, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	h.idMu.Lock()
	defer h.idMu.Unlock()
	m := h.users
	if db == "/etc/group" {
		m = h.groups
	}
	if m == nil {
		b, ok, err := h.ReadFile(db)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("%s is missing", db)
		}
		m = parseIDs(b)
		if db == "/etc/group" {
			h.groups = m
		} else {
			h.users = m
		}
	}
	id, ok := m[name]
	if !ok {
		kind := "user"
		if db == "/etc/group" {
			kind = "group"
		}
		return 0, fmt.Errorf("no %s %q in the host's %s", kind, name, db)
	}
	return id, nil
}

// parseIDs reads name:x:id:… lines.
func parseIDs(b []byte) map[string]int {
	m := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if id, err := strconv.Atoi(f[2]); err == nil {
			if _, dup := m[f[0]]; !dup {
				m[f[0]] = id
			}
		}
	}
	return m
}

// Remove deletes the file p; a file already absent is not an error.
func (h *Host) Remove(p string) error {
	err := h.c.Remove(p)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return h.errorf("remove", p, err)
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr []byte
	// ExitStatus is the command's exit status; -1 when it was ended by a
	// signal (see Signal).
	ExitStatus int
	Signal     string
}

// Err is nil for exit status 0, else an error with the status and the end
// of stderr.
func (r Result) Err() error {
	if r.ExitStatus == 0 && r.Signal == "" {
		return nil
	}
	msg := strings.TrimSpace(string(r.Stderr))
	if len(msg) > 500 {
		msg = "…" + msg[len(msg)-500:]
	}
	if r.Signal != "" {
		return fmt.Errorf("killed by signal %s: %s", r.Signal, msg)
	}
	return fmt.Errorf("exit status %d: %s", r.ExitStatus, msg)
}

// Run runs cmd on the host (through the login user's shell, as ssh does)
// with stdin, and waits for it. A non-zero exit status is in the Result,
// not an error: err reports only what kept the command from running or
// finishing (connection lost, ctx done — then Run returns at once, see
// below).
func (h *Host) Run(ctx context.Context, cmd string, stdin []byte) (Result, error) {
	s, err := h.ssh.NewSession()
	if err != nil {
		return Result{}, fmt.Errorf("%s: session: %w", h.name, err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if stdin != nil {
		s.Stdin = bytes.NewReader(stdin)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// OpenSSH 9.2 refuses signal requests; closing the channel is all
		// the client can do. sshd may keep the command running until it
		// next writes or ends: commands that must not outlive the call
		// bound themselves (timeout(1)). The output so far is not returned:
		// the session may still be writing it.
		s.Signal(ssh.SIGKILL)
		s.Close()
		return Result{ExitStatus: -1}, fmt.Errorf("%s: %q: %w", h.name, cmd, ctx.Err())
	}
	r := Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.ExitStatus = ee.ExitStatus()
		if ee.Signal() != "" {
			r.ExitStatus, r.Signal = -1, ee.Signal()
		}
	default:
		return r, fmt.Errorf("%s: %q: %w", h.name, cmd, err)
	}
	return r, nil
}

// ForgetIDs drops the cached /etc/passwd and /etc/group, so that users and
// groups created since (by a setup command, by a package) are found.
func (h *Host) ForgetIDs() {
	h.idMu.Lock()
	h.users, h.groups = nil, nil
	h.idMu.Unlock()
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// SHA256 returns the hex SHA-256 of the file p, computed on the host by one
// sha256sum command (for large files, which are not worth downloading);
// exists is false when there is no such file.
func (h *Host) SHA256(ctx context.Context, p string) (sum string, exists bool, err error) {
	q := Quote(p)
	r, err := h.Run(ctx, "if [ -e "+q+" ]; then timeout 300 sha256sum -- "+q+"; else echo absent; fi", nil)
	if err != nil {
		return "", false, err
	}
	if err := r.Err(); err != nil {
		return "", false, h.errorf("sha256sum", p, err)
	}
	out := strings.TrimSpace(string(r.Stdout))
	if out == "absent" {
		return "", false, nil
	}
	f := strings.Fields(out)
	if len(f) < 1 || len(f[0]) != 64 {
		return "", false, h.errorf("sha256sum", p, fmt.Errorf("unexpected output %q", out))
	}
	return strings.TrimPrefix(f[0], `\`), true, nil
}

// ErrLocked is returned by Lock when another process holds the lock.
var ErrLocked = errors.New("held by another apply")

// Lock takes an exclusive flock(1) on the host file p (creating it and its
// directory) with a session that holds it until release is called or the
// connection drops: the remote flock holds the lock while its child reads
// standard input, which ends with the session. It does not wait: a lock
// held by someone else fails at once with an error wrapping ErrLocked.
func (h *Host) Lock(ctx context.Context, p string) (release func(), err error) {
	s, err := h.ssh.NewSession()
	if err != nil {
		return nil, fmt.Errorf("%s: session: %w", h.name, err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	var errb bytes.Buffer
	s.Stderr = &errb
	q := Quote(p)
	cmd := "mkdir -p \"$(dirname " + q + ")\" && exec flock -n -E 75 " + q + " -c 'echo locked; exec cat'"
	if err := s.Start(cmd); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: lock %s: %w", h.name, p, err)
	}
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := bufio.NewReader(stdout).ReadString('\n')
		ch <- res{l, err}
	}()
	fail := func(err error) (func(), error) {
		stdin.Close()
		s.Close()
		return nil, err
	}
	select {
	case r := <-ch:
		if strings.TrimSpace(r.line) == "locked" {
			var once sync.Once
			return func() {
				once.Do(func() {
					stdin.Close()
					done := make(chan struct{})
					go func() { s.Wait(); close(done) }()
					select {
					case <-done:
					case <-time.After(10 * time.Second):
					}
					s.Close()
				})
			}, nil
		}
		werr := s.Wait()
		var ee *ssh.ExitError
		if errors.As(werr, &ee) && ee.ExitStatus() == 75 {
			return fail(fmt.Errorf("%s: lock %s: %w", h.name, p, ErrLocked))
		}
		return fail(fmt.Errorf("%s: lock %s: %v: %s", h.name, p, werr, strings.TrimSpace(errb.String())))
	case <-ctx.Done():
		return fail(fmt.Errorf("%s: lock %s: %w", h.name, p, ctx.Err()))
	}
}

// Client is the SSH connection the host uses.
func (h *Host) Client() *ssh.Client { return h.ssh }
