// Package sshdtest starts real OpenSSH sshd servers for tests: generated
// host and client keys in a temporary directory, a free port on a loopback
// address, stopped by PID when the test ends.
// A test harness of remote; it imports nothing of mailfleet but
// internal/programs.
package sshdtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/programs"
	"github.com/mailfleet/mailfleet/internal/testutil"
)

// Server is one running sshd.
type Server struct {
	Dir     string // its keys, config, log
	Host    string // 127.0.0.x
	Port    int
	HostKey string // path of the private host key (ed25519)
	HostPub string // its public key line
	Log     string // sshd's log file
	cmd     *exec.Cmd
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// ClientKey is a client key pair.
type ClientKey struct {
	Private string // path
	Public  string // the authorized_keys line
}

// Require fails the test when sshd or ssh-keygen is missing, naming the
// Debian package, or when not running as root (sshd needs root to log
// anybody in).
func Require(t testing.TB) {
	t.Helper()
	programs.Require(t, "/usr/sbin/sshd", "ssh-keygen")
	if os.Geteuid() != 0 {
		t.Fatal("real-sshd tests need root")
	}
}

// NewClientKey makes an ed25519 client key in a temporary directory.
func NewClientKey(t testing.TB) ClientKey {
	t.Helper()
	p := filepath.Join(t.TempDir(), "id_ed25519")
	keygen(t, p)
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return ClientKey{Private: p, Public: strings.TrimSpace(string(pub))}
}

func keygen(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshdtest", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

// Options tune a server.
type Options struct {
	Host    string // loopback address, default 127.0.0.1
	HostKey string // reuse this private host key instead of a new one
	Extra   string // more sshd_config lines
	// Env are more NAME=VALUE pairs for every session (sshd takes one
	// SetEnv line only), e.g. PATH=/nowhere for a host lacking a tool.
	Env []string
}

// Start runs sshd -D -e with a config of its own; authorized lists the
// client public keys it accepts (for any user). It is stopped at the end
// of the test.
func Start(t testing.TB, authorized []string, o Options) *Server {
	t.Helper()
	Require(t)
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, Host: o.Host, Log: filepath.Join(dir, "sshd.log")}
	s.HostKey = filepath.Join(dir, "ssh_host_ed25519_key")
	if o.HostKey != "" {
		b, err := os.ReadFile(o.HostKey)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := os.ReadFile(o.HostKey + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(s.HostKey, b, 0o600))
		must(t, os.WriteFile(s.HostKey+".pub", pub, 0o644))
	} else {
		keygen(t, s.HostKey)
	}
	pub, err := os.ReadFile(s.HostKey + ".pub")
	must(t, err)
	s.HostPub = strings.TrimSpace(string(pub))
	ak := filepath.Join(dir, "authorized_keys")
	must(t, os.WriteFile(ak, []byte(strings.Join(authorized, "\n")+"\n"), 0o644))
	// An empty home for every session: root's own start-up files may be slow.
	home := filepath.Join(dir, "home")
	must(t, os.Mkdir(home, 0o755))

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = testutil.FreePort(t, o.Host)
		cfg := filepath.Join(dir, "sshd_config")
		conf := fmt.Sprintf(`ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
PrintMotd no
PrintLastLog no
UseDNS no
SetEnv HOME=%s ENV=/dev/null %s
Subsystem sftp internal-sftp
%s
`, s.Addr(), s.HostKey, filepath.Join(dir, "sshd.pid"), ak, home, strings.Join(o.Env, " "), o.Extra)
		must(t, os.WriteFile(cfg, []byte(conf), 0o644))
		if out, err := exec.Command("/usr/sbin/sshd", "-t", "-f", cfg).CombinedOutput(); err != nil {
			t.Fatalf("sshd -t: %v: %s", err, out)
		}
		var stderr bytes.Buffer
		cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg, "-E", s.Log)
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if waitListen(s.Addr(), exited) {
			s.cmd = cmd
			t.Cleanup(func() {
				if cmd.Process != nil {
					cmd.Process.Signal(syscall.SIGTERM)
				}
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
				if t.Failed() {
					if b, err := os.ReadFile(s.Log); err == nil {
						t.Logf("sshd %s log:\n%s", s.Addr(), b)
					}
				}
			})
			return s
		}
		cmd.Process.Kill()
		log, _ := os.ReadFile(s.Log)
		lastErr = fmt.Errorf("sshd on %s did not start: %s %s", s.Addr(), stderr.String(), log)
	}
	t.Fatal(lastErr)
	return nil
}

// Stop ends the server now (by PID).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
	}
}

func waitListen(addr string, exited chan error) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
