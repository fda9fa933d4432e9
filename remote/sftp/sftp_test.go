package sftp

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/remote/internal/sshdtest"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

// open starts an sshd and returns a Host on it logged in as u.
func open(t *testing.T, host, u string) (*Host, *sshdtest.Server) {
	t.Helper()
	ck := sshdtest.NewClientKey(t)
	srv := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: host})
	if u != "root" {
		// sshd reads authorized_keys as the user: t.TempDir's parents are 0700.
		openUp(t, srv.Dir)
	}
	p, err := sshconn.New(sshconn.Config{KnownHosts: filepath.Join(t.TempDir(), "known_hosts"), AcceptNew: true,
		NoAgent: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := p.Client(context.Background(), sshconn.Target{Name: "n1", Host: srv.Host, Port: srv.Port, User: u, KeyFile: ck.Private})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open("n1", c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, srv
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".mailfleet-tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func check(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("%s: content %q, want %q", p, b, content)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", p, st.Mode(), mode)
	}
}

func TestFiles(t *testing.T) {
	h, _ := open(t, "127.0.0.10", "root")
	dir := t.TempDir()
	p := filepath.Join(dir, "etc", "app", "conf")

	if _, ok, err := h.ReadFile(p); ok || err != nil {
		t.Fatalf("absent file: ok=%v err=%v", ok, err)
	}
	if _, ok, err := h.Stat(p); ok || err != nil {
		t.Fatalf("stat absent: ok=%v err=%v", ok, err)
	}
	if err := h.WriteFile(p, []byte("old\n"), 0o644, "root", "root"); err != nil {
		t.Fatal(err)
	}
	check(t, p, "old\n", 0o644)
	b, ok, err := h.ReadFile(p)
	if err != nil || !ok || string(b) != "old\n" {
		t.Fatalf("ReadFile: %q %v %v", b, ok, err)
	}
	// Replace: new content, new mode, owner by name resolved on the host.
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	big := strings.Repeat("0123456789abcdef", 20000) // several SFTP packets
	if err := h.WriteFile(p, []byte(big), 0o640, "nobody", "0"); err != nil {
		t.Fatal(err)
	}
	check(t, p, big, 0o640)
	info, ok, err := h.Stat(p)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if want := nobody.Uid; strconv.Itoa(info.UID) != want || info.GID != 0 || info.Mode != 0o640 || info.Size != int64(len(big)) {
		t.Errorf("stat: %+v, want uid %s gid 0", info, want)
	}
	noTemps(t, filepath.Dir(p))

	// Unknown owner: refused before anything is written.
	if err := h.WriteFile(p, []byte("x"), 0o600, "no-such-user-mf", ""); err == nil || !strings.Contains(err.Error(), "no-such-user-mf") {
		t.Errorf("unknown owner: %v", err)
	}
	check(t, p, big, 0o640)

	if err := h.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
	if err := h.Remove(p); err != nil {
		t.Errorf("removing an absent file: %v", err)
	}
	if err := h.WriteFile("relative/x", nil, 0o644, "", ""); err == nil {
		t.Error("relative path accepted")
	}
}

// A write that fails after the temporary file is complete (here: the hook
// fails, as a lost rename would) leaves the old file and no temporary file.
func TestWriteFailsMidway(t *testing.T) {
	h, _ := open(t, "127.0.0.11", "root")
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := h.WriteFile(p, []byte("old"), 0o600, "", ""); err != nil {
		t.Fatal(err)
	}
	var sawTemp bool
	h.afterTemp = func(tmp string) error {
		b, err := os.ReadFile(tmp)
		sawTemp = err == nil && string(b) == "new"
		return errors.New("injected failure")
	}
	if err := h.WriteFile(p, []byte("new"), 0o644, "", ""); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("got %v", err)
	}
	if !sawTemp {
		t.Error("the temporary file was not complete before the rename step")
	}
	h.afterTemp = nil
	check(t, p, "old", 0o600)
	noTemps(t, dir)

	// The rename itself fails: the target is a non-empty directory.
	d := filepath.Join(dir, "isdir")
	if err := os.MkdirAll(filepath.Join(d, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(d, []byte("new"), 0o644, "", ""); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	noTemps(t, dir)
}

// A directory the login user cannot write to: the old file stays, and no
// temporary file appears.
func TestWriteUnwritableDir(t *testing.T) {
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	h, _ := open(t, "127.0.0.12", "nobody")
	dir := t.TempDir()
	openUp(t, dir)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, ok, err := h.ReadFile(p)
	if err != nil || !ok || string(b) != "old" {
		t.Fatalf("read as nobody: %q %v %v", b, ok, err)
	}
	err = h.WriteFile(p, []byte("new"), 0o644, "", "")
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "n1") {
		t.Fatalf("write into an unwritable directory: %v", err)
	}
	check(t, p, "old", 0o644)
	noTemps(t, dir)
	if err := h.Remove(p); err == nil {
		t.Error("remove in an unwritable directory succeeded")
	}
}

func TestRun(t *testing.T) {
	h, _ := open(t, "127.0.0.13", "root")
	ctx := context.Background()
	r, err := h.Run(ctx, "echo out; echo err >&2; exit 3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != 3 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
		t.Errorf("result %+v", r)
	}
	if e := r.Err(); e == nil || !strings.Contains(e.Error(), "exit status 3: err") {
		t.Errorf("Err: %v", e)
	}
	r, err = h.Run(ctx, "cat", []byte("in"))
	if err != nil || r.ExitStatus != 0 || string(r.Stdout) != "in" || r.Err() != nil {
		t.Errorf("cat: %+v %v", r, err)
	}
	r, err = h.Run(ctx, "kill -TERM $$", nil)
	if err != nil || r.Signal != "TERM" || r.ExitStatus != -1 {
		t.Errorf("signal: %+v %v", r, err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := h.Run(ctx2, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("timeout: %v after %v", err, time.Since(start))
	}
	// Commands are fast: the test sshd gives sessions an empty home.
	start = time.Now()
	for i := 0; i < 5; i++ {
		if r, err := h.Run(ctx, "true", nil); err != nil || r.Err() != nil {
			t.Fatal(err, r.Err())
		}
	}
	t.Logf("5 commands on one connection: %v", time.Since(start))
}

// openUp makes dir and its parents below the temporary directory
// traversable (t.TempDir's are 0700).
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSHA256AndLock(t *testing.T) {
	h, _ := open(t, "127.0.0.36", "root")
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if _, ok, err := h.SHA256(context.Background(), p); ok || err != nil {
		t.Errorf("absent: %v %v", ok, err)
	}
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, ok, err := h.SHA256(context.Background(), p)
	if !ok || err != nil || sum != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("sum %q %v %v", sum, ok, err)
	}
	lock := filepath.Join(dir, "sub", "apply.lock")
	release, err := h.Lock(context.Background(), lock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Lock(context.Background(), lock); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), lock) {
		t.Errorf("second lock: %v", err)
	}
	release()
	release() // twice is harmless
	r2, err := h.Lock(context.Background(), lock)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	r2()
}

// TestNoLinks: a managed path that goes through a symbolic link on the
// host (a linked directory, or the file itself) is refused, so that a
// plan never reads, nor an apply writes, another file than the managed
// one; real paths, and paths not there yet, pass.
func TestNoLinks(t *testing.T) {
	h, _ := open(t, "127.0.0.10", "root")
	root := t.TempDir()
	elsewhere := t.TempDir()
	for _, d := range []string{"etc/real", "var"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(elsewhere, "shadow"), []byte("secret\n"), 0o600)
	os.Symlink(elsewhere, filepath.Join(root, "etc", "linked"))
	os.Symlink(filepath.Join(elsewhere, "shadow"), filepath.Join(root, "etc", "real", "conf"))
	for _, p := range []string{"/etc/linked/shadow", "/etc/linked/new/file", "/etc/real/conf"} {
		if err := h.NoLinks(root, p); !errors.Is(err, ErrSymlink) {
			t.Errorf("NoLinks(%s): %v, want ErrSymlink", p, err)
		}
	}
	for _, p := range []string{"/etc/real/other", "/var/new/dir/file", "/etc/real"} {
		if err := h.NoLinks(root, p); err != nil {
			t.Errorf("NoLinks(%s): %v, want nil", p, err)
		}
	}
}
