package initd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
)

// TestDebianSSHService runs Debian's own /lib/systemd/system/ssh.service
// (Type=notify, ExecStartPre, EnvironmentFile, $SSHD_OPTS, ExecReload with
// $MAINPID, RuntimeDirectory, KillMode=process, Alias=sshd.service) with a
// private /etc/ssh, and logs in through it.
func TestDebianSSHService(t *testing.T) {
	testutil.Long(t)
	if _, err := os.Stat("/lib/systemd/system/ssh.service"); err != nil {
		t.Fatalf("openssh-server is not installed: %v", err)
	}
	n := newNode(t)
	etcSSH := filepath.Join(n.dir, "etc-ssh")
	if err := os.MkdirAll(etcSSH, 0755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(etcSSH, "ssh_host_ed25519_key")},
		{"-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(n.dir, "id_ed25519")},
	} {
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(n.dir, "id_ed25519.pub"))
	os.WriteFile(filepath.Join(etcSSH, "authorized_keys"), pub, 0644)
	os.WriteFile(filepath.Join(etcSSH, "sshd_config"), []byte(`Port 22
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile /etc/ssh/authorized_keys
StrictModes no
Subsystem sftp internal-sftp
`), 0644)
	n.extra = []string{"mount --bind " + etcSSH + " /etc/ssh"}
	n.start()

	_, errOut, code := n.ctl("enable", "ssh")
	if code != 0 {
		t.Fatalf("enable ssh: %d %s", code, errOut)
	}
	if dst, _ := os.Readlink(filepath.Join(n.units, "sshd.service")); dst != "/lib/systemd/system/ssh.service" {
		t.Errorf("alias link: %q", dst)
	}
	if dst, _ := os.Readlink(filepath.Join(n.units, "multi-user.target.wants", "ssh.service")); dst != "/lib/systemd/system/ssh.service" {
		t.Errorf("wants link: %q", dst)
	}
	n.must("start", "sshd") // by its alias
	if st := n.prop("ssh.service", "ActiveState"); st != "active" {
		t.Fatalf("ssh: %s", st)
	}
	pid := n.mainPID("ssh")
	if pid == 0 || procComm(pid) != "sshd" {
		t.Fatalf("main PID %d (%s)", pid, procComm(pid))
	}
	banner := func() string {
		var line string
		err := n.inNetns(func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:22", 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err != nil {
			t.Fatalf("connect to sshd in the node: %v", err)
		}
		return line
	}
	if b := banner(); !strings.HasPrefix(b, "SSH-2.0-OpenSSH") {
		t.Fatalf("banner %q", b)
	}
	// a real login, inside the node's network namespace
	ssh := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", n.pid), "ssh", "-i", filepath.Join(n.dir, "id_ed25519"),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR", "root@127.0.0.1", "echo logged-in")
	ssh.Env = append(os.Environ(), "HOME="+n.dir)
	out, err := ssh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "logged-in") {
		t.Fatalf("ssh login: %v %s", err, out)
	}
	n.must("reload", "ssh")
	if st, p := n.prop("ssh", "ActiveState"), n.mainPID("ssh"); st != "active" || p != pid {
		t.Errorf("after reload: %s pid %d (was %d)", st, p, pid)
	}
	// sshd re-executes itself on SIGHUP: its listener answers again soon.
	testutil.Eventually(t, 10*time.Second, "the banner after reload", func() error {
		if b := banner(); !strings.HasPrefix(b, "SSH-2.0-OpenSSH") {
			return fmt.Errorf("banner %q", b)
		}
		return nil
	})
	n.must("restart", "sshd.service")
	p2 := n.mainPID("ssh")
	if p2 == pid || pidAlive(pid) {
		t.Errorf("restart: %d -> %d", pid, p2)
	}
	if out, _, code := n.ctl("status", "ssh"); code != 0 || !strings.Contains(out, "Active: active (running)") ||
		!strings.Contains(out, "Loaded: loaded (/lib/systemd/system/ssh.service; enabled)") {
		t.Errorf("status: %d\n%s", code, out)
	}
	// a session outlives `systemctl stop ssh` (KillMode=process), not the
	// supervisor's shutdown
	session := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", n.pid), "ssh", "-i", filepath.Join(n.dir, "id_ed25519"),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR", "root@127.0.0.1", "exec sleep 1234")
	session.Env = append(os.Environ(), "HOME="+n.dir)
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	sessionDone := make(chan struct{})
	go func() { session.Wait(); close(sessionDone) }()
	t.Cleanup(func() { session.Process.Kill(); <-sessionDone })
	var remote int
	testutil.Until(t, 10*time.Second, "remote sleep", func() bool {
		for _, p := range n.nsPIDs() {
			if procCmdline(p) == "sleep 1234" {
				remote = p
				return true
			}
		}
		return false
	})
	n.must("stop", "ssh")
	if pidAlive(p2) {
		t.Errorf("sshd %d survived stop", p2)
	}
	if out, _, code := n.ctl("status", "ssh"); code != 3 || !strings.Contains(out, "Active: inactive (dead)") {
		t.Errorf("status after stop: %d\n%s", code, out)
	}
	if !pidAlive(remote) {
		t.Errorf("the session died with the stop of ssh.service (KillMode=process)")
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sessionDone:
	case <-time.After(10 * time.Second):
		t.Errorf("the ssh client did not end with the supervisor")
	}
	if pidAlive(remote) {
		t.Errorf("session process %d survived the supervisor's shutdown", remote)
	}
	if left := n.nsPIDs(); len(left) != 0 {
		t.Errorf("left in the node after shutdown: %v", left)
	}
}
