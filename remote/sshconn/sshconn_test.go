package sshconn_test

import (
	"context"
	"errors"
	"github.com/mailfleet/mailfleet/internal/programs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mailfleet/mailfleet/remote/internal/sshdtest"
	"github.com/mailfleet/mailfleet/remote/sshconn"
)

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	return string(out)
}

func target(s *sshdtest.Server, key string) sshconn.Target {
	return sshconn.Target{Name: "node-" + s.Host, Host: s.Host, Port: s.Port, User: "root", KeyFile: key}
}

func pool(t *testing.T, kh string, acceptNew bool) *sshconn.Pool {
	t.Helper()
	p, err := sshconn.New(sshconn.Config{KnownHosts: kh, AcceptNew: acceptNew, NoAgent: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func TestUnknownHostKey(t *testing.T) {
	ck := sshdtest.NewClientKey(t)
	srv := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.2"})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	ctx := context.Background()

	// Strict: refused, file untouched.
	_, err := pool(t, kh, false).Client(ctx, target(srv, ck.Private))
	var hk *sshconn.HostKeyError
	if !errors.As(err, &hk) || hk.Changed {
		t.Fatalf("strict dial to unknown host: got %v, want an unknown-host-key error", err)
	}
	if !strings.Contains(err.Error(), kh) || !strings.Contains(err.Error(), "node-127.0.0.2") {
		t.Errorf("error does not name host and file: %v", err)
	}
	if _, err := os.Stat(kh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("strict dial touched known_hosts: %v", err)
	}

	// AcceptNew: pinned with exactly one line, then the pin works strictly.
	if err := os.WriteFile(kh, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := pool(t, kh, true).Client(ctx, target(srv, ck.Private))
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, c, "echo ok"); got != "ok\n" {
		t.Errorf("echo: %q", got)
	}
	got := lines(t, kh)
	if len(got) != 2 || got[0] != "# mine" {
		t.Fatalf("known_hosts after accept-new: %q", got)
	}
	f := strings.Fields(srv.HostPub)
	want := "[127.0.0.2]:" + strconv.Itoa(srv.Port) + " " + f[0] + " " + f[1]
	if got[1] != want {
		t.Errorf("appended line %q, want %q", got[1], want)
	}
	c2, err := pool(t, kh, false).Client(ctx, target(srv, ck.Private))
	if err != nil {
		t.Fatalf("strict dial after pinning: %v", err)
	}
	run(t, c2, "true")
	// A second accept-new dial appends nothing.
	if _, err := pool(t, kh, true).Client(ctx, target(srv, ck.Private)); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, kh)); n != 2 {
		t.Errorf("known_hosts has %d lines after a second accept-new dial", n)
	}
}

func TestChangedHostKeyRefusedEvenWithAcceptNew(t *testing.T) {
	ck := sshdtest.NewClientKey(t)
	srv := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.3"})
	other := sshdtest.NewClientKey(t) // any other ed25519 key stands for the old host key
	kh := filepath.Join(t.TempDir(), "known_hosts")
	f := strings.Fields(other.Public)
	old := "[127.0.0.3]:" + strconv.Itoa(srv.Port) + " " + f[0] + " " + f[1] + "\n"
	if err := os.WriteFile(kh, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, accept := range []bool{false, true} {
		_, err := pool(t, kh, accept).Client(context.Background(), target(srv, ck.Private))
		var hk *sshconn.HostKeyError
		if !errors.As(err, &hk) || !hk.Changed {
			t.Fatalf("accept-new=%v: got %v, want a changed-host-key error", accept, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "CHANGED") || !strings.Contains(msg, kh) || !strings.Contains(msg, "node-127.0.0.3") {
			t.Errorf("unclear error: %s", msg)
		}
	}
	if b, _ := os.ReadFile(kh); string(b) != old {
		t.Errorf("known_hosts changed: %q", b)
	}
}

func TestCertAuthority(t *testing.T) {
	sshdtest.Require(t)
	ca := sshdtest.NewClientKey(t) // a key pair used as host CA
	ck := sshdtest.NewClientKey(t)
	hostKeyDir := t.TempDir()
	hk := filepath.Join(hostKeyDir, "ssh_host_ed25519_key")
	keygen(t, hk)
	sign(t, ca.Private, hk+".pub", "127.0.0.4")
	srv := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.4", HostKey: hk,
		Extra: "HostCertificate " + hk + "-cert.pub"})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	f := strings.Fields(ca.Public)
	if err := os.WriteFile(kh, []byte("@cert-authority [127.0.0.*]:"+strconv.Itoa(srv.Port)+" "+f[0]+" "+f[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := pool(t, kh, false).Client(context.Background(), target(srv, ck.Private))
	if err != nil {
		t.Fatalf("dial with @cert-authority: %v", err)
	}
	run(t, c, "true")
}

func TestKeyFileAuthRefusedWithWrongKey(t *testing.T) {
	ck := sshdtest.NewClientKey(t)
	wrong := sshdtest.NewClientKey(t)
	srv := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.5"})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	p := pool(t, kh, true)
	if _, err := p.Client(context.Background(), target(srv, wrong.Private)); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("wrong key: %v", err)
	}
	c, err := p.Client(context.Background(), target(srv, ck.Private))
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, c, "id -un"); got != "root\n" {
		t.Errorf("user %q", got)
	}
}

func TestJumpHostAndReuse(t *testing.T) {
	ck := sshdtest.NewClientKey(t)
	jump := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.6"})
	// The target listens on 127.0.0.7; the test reaches it only through the jump.
	dst := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.7"})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	p := pool(t, kh, true)
	jt := target(jump, ck.Private)
	tt := target(dst, ck.Private)
	tt.Jump = &jt
	ctx := context.Background()

	var wg sync.WaitGroup
	clients := make([]*ssh.Client, 4)
	errs := make([]error, 4)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i], errs[i] = p.Client(ctx, tt)
		}()
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if clients[i] != clients[0] {
			t.Fatal("concurrent callers got different connections")
		}
	}
	// The target is reached (its own address and port in SSH_CONNECTION);
	// that it is through the jump shows at the end, when stopping the jump
	// ends the target's connection.
	if got := run(t, clients[0], "echo $SSH_CONNECTION"); !strings.Contains(got, "127.0.0.7 "+strconv.Itoa(dst.Port)) {
		t.Errorf("SSH_CONNECTION %q", got)
	}
	jc, err := p.Client(ctx, jt)
	if err != nil {
		t.Fatal(err)
	}
	run(t, jc, "true")
	// Both host keys were pinned, one line each.
	if n := len(lines(t, kh)); n != 2 {
		t.Errorf("known_hosts has %d lines, want 2", n)
	}
	// Reuse: a later call returns the same connection.
	again, err := p.Client(ctx, tt)
	if err != nil || again != clients[0] {
		t.Errorf("second Client: %v, same=%v", err, again == clients[0])
	}
	// The jump's connection ends: the target's connection, carried by it,
	// ends too.
	jump.Stop()
	jc.Close()
	done := make(chan struct{})
	go func() { clients[0].Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the target's connection outlived its jump host's")
	}
}

func TestTimeout(t *testing.T) {
	// A listener that accepts and never speaks SSH.
	sshdtest.Require(t)
	l, err := netListen("127.0.0.8:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	ck := sshdtest.NewClientKey(t)
	p, err := sshconn.New(sshconn.Config{KnownHosts: kh, NoAgent: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	_, err = p.Client(context.Background(), sshconn.Target{Host: "127.0.0.8", Port: listenPort(l), KeyFile: ck.Private})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("dial to a silent server: %v after %v", err, time.Since(start))
	}
}

func TestNoCredentials(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	p, err := sshconn.New(sshconn.Config{KnownHosts: filepath.Join(t.TempDir(), "kh")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Client(context.Background(), sshconn.Target{Host: "127.0.0.1", Port: 1}); err == nil {
		t.Fatal("no error without credentials")
	}
	if _, err := sshconn.New(sshconn.Config{}); err == nil {
		t.Fatal("no error without known_hosts")
	}
}

func TestAgentAuth(t *testing.T) {
	programs.Require(t, "ssh-agent", "ssh-add")
	ck := sshdtest.NewClientKey(t)
	srv := sshdtest.Start(t, []string{ck.Public}, sshdtest.Options{Host: "127.0.0.9"})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 100 {
			t.Fatal("ssh-agent did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", ck.Private)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	p, err := sshconn.New(sshconn.Config{KnownHosts: filepath.Join(t.TempDir(), "kh"), AcceptNew: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := p.Client(context.Background(), sshconn.Target{Host: srv.Host, Port: srv.Port})
	if err != nil {
		t.Fatalf("agent auth: %v", err)
	}
	run(t, c, "true")
}
