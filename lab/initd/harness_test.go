package initd

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the commands under test: with INITD_TEST_ROLE
// set it runs Main, Systemctl, Sysctl or a small notify daemon instead of
// the tests.
const roleEnv = "INITD_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "init":
		os.Exit(Main(os.Args[1:]))
	case "systemctl":
		os.Exit(Systemctl(os.Args[1:]))
	case "sysctl":
		os.Exit(Sysctl(os.Args[1:]))
	case "notifyd":
		os.Exit(notifyDaemon(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// notifyDaemon: `notifyd DELAY [MAINPID-CHILD]`: waits DELAY, says
// READY=1 on NOTIFY_SOCKET, then sleeps until killed. "never" never says it.
func notifyDaemon(args []string) int {
	delay := "0s"
	if len(args) > 0 {
		delay = args[0]
	}
	if delay != "never" {
		d, _ := time.ParseDuration(delay)
		time.Sleep(d)
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "notify:", err)
			return 1
		}
		fmt.Fprintf(c, "READY=1\nSTATUS=serving\nMAINPID=%d", os.Getpid())
		c.Close()
	}
	// Wait for the supervisor's signal. Not `select {}`: without cgo the
	// runtime has no other thread to wait on and calls that a deadlock.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

func testBinary(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// node is a supervisor running in its own network and mount namespace, with
// a private /etc/systemd/system, /var/log, /var/lib and /run.
type node struct {
	t       *testing.T
	dir     string // host-side directory
	units   string // host side of /etc/systemd/system
	logs    string // host side of /var/log
	sock    string
	cmd     *exec.Cmd
	pid     int
	netns   string // "net:[…]" of the node
	stderr  *bytes.Buffer
	exited  chan error
	extra   []string // extra mount lines
	stopped bool
}

func newNode(t *testing.T, extraMounts ...string) *node {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	n := &node{t: t, dir: dir, units: filepath.Join(dir, "root/etc/systemd/system"), logs: filepath.Join(dir, "varlog"),
		sock: filepath.Join(dir, "sock", "init.sock"), extra: extraMounts}
	for _, d := range []string{n.units, n.logs, filepath.Join(dir, "varlib"), filepath.Join(dir, "sock")} {
		if err := os.MkdirAll(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(n.cleanup)
	return n
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (namespaces, mounts)")
	}
}

// start boots the supervisor and waits for its socket.
func (n *node) start() {
	t := n.t
	t.Helper()
	script := strings.Join(append([]string{
		"set -e",
		"mount --bind " + n.units + " /etc/systemd/system",
		"mount --bind " + n.logs + " /var/log",
		"mount --bind " + filepath.Join(n.dir, "varlib") + " /var/lib",
		"mount -t tmpfs tmpfs /run",
		"ip link set lo up",
	}, append(n.extra, `exec "$0" "$@"`)...), "\n")
	n.stderr = &bytes.Buffer{}
	cmd := exec.Command("unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script,
		testBinary(t), "-node", "test", "-socket", n.sock)
	cmd.Env = append(os.Environ(), roleEnv+"=init")
	cmd.Stdout = n.stderr
	cmd.Stderr = n.stderr
	os.Remove(n.sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.pid, n.stopped = cmd, cmd.Process.Pid, false
	n.exited = make(chan error, 1)
	go func() { n.exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", n.sock); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-n.exited:
			n.stopped = true
			t.Fatalf("supervisor exited: %v\n%s", err, n.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket after 20s\n%s", n.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", n.pid))
	if err != nil {
		t.Fatal(err)
	}
	n.netns = ns
}

// stop sends SIGTERM and waits for the supervisor to exit.
func (n *node) stop() error {
	if n.cmd == nil || n.stopped {
		return nil
	}
	n.stopped = true
	syscall.Kill(n.pid, syscall.SIGTERM)
	select {
	case err := <-n.exited:
		return err
	case <-time.After(60 * time.Second):
		syscall.Kill(n.pid, syscall.SIGKILL)
		<-n.exited
		return fmt.Errorf("supervisor did not exit within 60s")
	}
}

// nsPIDs lists the processes in the node's network namespace.
func (n *node) nsPIDs() []int {
	var out []int
	if n.netns == "" {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pid == os.Getpid() {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil && ns == n.netns {
			out = append(out, pid)
		}
	}
	return out
}

func (n *node) cleanup() {
	if err := n.stop(); err != nil {
		n.t.Logf("stop: %v", err)
	}
	// anything left in the namespace: by PID
	for i := 0; i < 50; i++ {
		left := n.nsPIDs()
		if len(left) == 0 {
			break
		}
		for _, p := range left {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n.stderr != nil && strings.Contains(n.stderr.String(), "DATA RACE") {
		n.t.Errorf("the supervisor reported a data race")
	}
	if n.t.Failed() && n.stderr != nil {
		n.t.Logf("supervisor log:\n%s", n.stderr)
		logs, _ := filepath.Glob(filepath.Join(n.logs, "mailfleet-lab", "*.log"))
		for _, l := range logs {
			n.t.Logf("%s:\n%s", filepath.Base(l), tailLines(readFile(n.t, l), 30))
		}
	}
}

func (n *node) writeUnit(name, content string) {
	n.t.Helper()
	p := filepath.Join(n.units, name)
	if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0644); err != nil {
		n.t.Fatal(err)
	}
}

// ctl runs the systemctl client against the node.
func (n *node) ctl(args ...string) (string, string, int) {
	n.t.Helper()
	cmd := exec.Command(testBinary(n.t), args...)
	cmd.Env = append(os.Environ(), roleEnv+"=systemctl", SocketEnv+"="+n.sock)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// must runs systemctl and fails the test on a non-zero exit.
func (n *node) must(args ...string) string {
	n.t.Helper()
	out, errOut, code := n.ctl(args...)
	if code != 0 {
		n.t.Fatalf("systemctl %s: exit %d\n%s%s\nsupervisor:\n%s", strings.Join(args, " "), code, out, errOut, n.stderr)
	}
	return out
}

func (n *node) prop(unit, p string) string {
	n.t.Helper()
	return strings.TrimSpace(n.must("show", "-p", p, "--value", unit))
}

func (n *node) mainPID(unit string) int {
	n.t.Helper()
	pid, _ := strconv.Atoi(n.prop(unit, "MainPID"))
	return pid
}

func pidAlive(pid int) bool { return pid > 0 && alive(pid) }

// inNetns runs f on a thread in the node's network namespace, then puts
// the thread back into the test's own namespace.
func (n *node) inNetns(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", n.pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = f()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and ends with the goroutine
		errc <- err
	}()
	return <-errc
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, _ := os.ReadFile(p)
	return string(b)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
