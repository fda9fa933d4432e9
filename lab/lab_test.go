package lab

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
)

// mailfleetBin is cmd/mailfleet built for the tests: the lab copies it into
// the nodes and runs its hidden subcommands (mountns, pdu, init).
var mailfleetBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "labtest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mailfleetBin = filepath.Join(dir, "mailfleet")
	build := exec.Command("go", "build", "-o", mailfleetBin, "../cmd/mailfleet")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "lab tests: building cmd/mailfleet:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func loadTopology(t *testing.T, path string) *spec.Topology {
	t.Helper()
	top, _, ds := decode.Load(path, decode.Options{RequireSecrets: true})
	if top != nil {
		ds = append(ds, spec.Validate(top)...)
	}
	if ds.HasErrors() {
		t.Fatalf("topology %s: %v", path, ds)
	}
	return top
}

// rootSnapshot is what the machine's own namespaces look like: links,
// addresses, routes, mounts.
func rootSnapshot(t *testing.T) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, args := range [][]string{{"-o", "link"}, {"-o", "addr"}, {"route"}, {"-6", "route"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatal(err)
		}
		snap["ip "+strings.Join(args, " ")] = normalizeLinks(string(out))
	}
	// Other labs (tests of other packages running at the same time) and
	// iproute2's own /run/netns mount are not this lab's: own mounts are
	// checked under LABDIR, own namespaces by name.
	var ms []string
	for _, m := range mounts() {
		if strings.HasPrefix(m.Point, Root+"/") || strings.HasPrefix(m.Point, "/run/netns") {
			continue
		}
		ms = append(ms, m.Point+" "+m.FSType)
	}
	slices.Sort(ms)
	snap["mounts"] = strings.Join(ms, "\n")
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/fs/file-max", "/proc/sys/kernel/hostname"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		snap[f] = string(b)
	}
	return snap
}

// normalizeLinks drops counters that change by themselves.
func normalizeLinks(s string) string {
	var out []string
	for _, ln := range strings.Split(s, "\n") {
		if i := strings.Index(ln, "valid_lft"); i >= 0 {
			ln = ln[:i]
		}
		// Extra loopback addresses are other tests' (the store's add
		// 127.x.y.z/32 peers on lo, in this namespace or one a CI
		// container shares); a lab never adds any there.
		if f := strings.Fields(ln); len(f) >= 4 && f[1] == "lo" && f[2] == "inet" && strings.HasPrefix(f[3], "127.") && f[3] != "127.0.0.1/8" {
			continue
		}
		out = append(out, ln)
	}
	return strings.Join(out, "\n")
}

func compareSnapshots(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("the machine's %q changed:\nbefore:\n%s\nafter:\n%s", k, v, after[k])
		}
	}
}

// inNetNS runs f on a thread inside namespace ns; the thread dies afterwards.
func inNetNS(t *testing.T, ns string, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY, 0)
		if err != nil {
			ch <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- err
			return
		}
		ch <- f()
	}()
	return <-ch
}

// ping sends one ICMP echo from namespace ns to addr.
func ping(t *testing.T, ns, addr string) error {
	return inNetNS(t, ns, func() error {
		c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("mailfleet lab")}}
		b, _ := msg.Marshal(nil)
		if _, err := c.WriteTo(b, &net.IPAddr{IP: net.ParseIP(addr)}); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err == nil && m.Type == ipv4.ICMPTypeEchoReply && from.String() == addr {
				return nil
			}
		}
	})
}

// sshRun runs cmd on node over SSH from the workstation with the lab's
// known_hosts and key (x/crypto/ssh, strict host keys).
func sshRun(t *testing.T, l *Lab, node, cmd string) (string, error) {
	t.Helper()
	h := l.Host(node)
	kh, err := knownhosts.New(l.KnownHosts())
	if err != nil {
		return "", err
	}
	kb, err := os.ReadFile(l.Identity())
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(kb)
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort(h.Ifaces[0].Addr.Addr().String(), "22")
	conn, err := l.DialFrom(l.Host(KindWorkstation), addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{User: "root",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: kh, Timeout: 10 * time.Second})
	if err != nil {
		conn.Close()
		return "", err
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	return string(out), err
}

func labExec(t *testing.T, l *Lab, node string, stdin string, argv ...string) (string, int) {
	t.Helper()
	cmd, err := l.Command(node, argv)
	if err != nil {
		t.Fatalf("exec on %s: %v", node, err)
	}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("exec %v on %s: %v", argv, node, err)
	}
	return string(out), 0
}

func waitSSH(t *testing.T, l *Lab, node string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := sshRun(t, l, node, "hostname")
		if err == nil {
			if strings.TrimSpace(out) != l.Host(node).Hostname {
				t.Errorf("%s: hostname %q", node, out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: ssh: %v", node, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func labNamespaces(prefix string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// assertGone checks that down left nothing of the lab.
func assertGone(t *testing.T, s *State, nets map[uint64]bool, before map[string]string) {
	t.Helper()
	if ns := labNamespaces(s.Prefix); len(ns) > 0 {
		t.Errorf("namespaces left: %v", ns)
	}
	if pids := pidsIn(nets, nil); len(pids) > 0 {
		t.Errorf("processes left in the lab's namespaces: %v", pids)
	}
	if ms := mountsUnder(s.Dir); len(ms) > 0 {
		t.Errorf("mounts left: %v", ms)
	}
	if _, err := os.Stat(s.Dir); err == nil {
		t.Errorf("%s is still there", s.Dir)
	}
	compareSnapshots(t, before, rootSnapshot(t))
}

func labNets(s *State) map[uint64]bool {
	nets := map[uint64]bool{}
	for _, h := range s.Hosts {
		if ino, ok := nsInode("/run/netns/" + h.NS); ok {
			nets[ino] = true
		}
	}
	if ino, ok := nsInode("/run/netns/" + s.Switch); ok {
		nets[ino] = true
	}
	return nets
}

// labTestBootTime is the boot time of the test lab's nodes behind their
// power switch: short, but long enough to see.
const labTestBootTime = 2 * time.Second

func TestLab(t *testing.T) {
	testutil.Long(t)
	top := loadTopology(t, "testdata/small")
	layout, err := Layout(top, "")
	if err != nil {
		t.Fatal(err)
	}
	_ = Down(layout, nil) // a lab left by an interrupted run
	before := rootSnapshot(t)

	opts := Options{Executable: mailfleetBin, Timeout: 60 * time.Second, BootTime: labTestBootTime, Log: testLog{t}}
	start := time.Now()
	l, err := Up(top, opts)
	t.Logf("lab up: %v", time.Since(start))
	t.Cleanup(func() { _ = Down(layout, nil) })
	if err != nil {
		t.Fatal(err)
	}

	t.Run("network", func(t *testing.T) {
		for _, n := range []struct{ node, addr, gw string }{
			{"web", "192.0.2.10/24", "192.0.2.1"}, {"db1", "10.77.0.11/24", "10.77.0.1"}, {"db2", "10.77.0.12/24", "10.77.0.1"},
		} {
			h := l.Host(n.node)
			if got := l.Addresses(h); !slices.Equal(got, []string{n.addr}) {
				t.Errorf("%s: addresses %v, want %s", n.node, got, n.addr)
			}
			out, err := output("ip", "-n", h.NS, "route", "show", "default")
			if err != nil || !strings.Contains(string(out), "via "+n.gw) {
				t.Errorf("%s: default route %q (%v), want via %s", n.node, out, err, n.gw)
			}
		}
		if err := ping(t, l.Host("web").NS, "10.77.0.11"); err != nil {
			t.Errorf("web → db1 through the router: %v", err)
		}
		if err := ping(t, l.Host("db2").NS, "192.0.2.10"); err != nil {
			t.Errorf("db2 → web through the router: %v", err)
		}
		compareSnapshots(t, before, rootSnapshotNoMounts(t, before))
	})

	t.Run("ssh", func(t *testing.T) {
		for _, h := range l.Nodes() {
			waitSSH(t, l, h.Name)
		}
		// The real OpenSSH client from the workstation, strict host keys.
		out, code := labExec(t, l, KindWorkstation, "", "ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+l.KnownHosts(), "-i", l.Identity(),
			"root@10.77.0.11", "hostname; echo $HOME")
		if code != 0 || !strings.Contains(out, "db1\n/root") {
			t.Errorf("ssh root@10.77.0.11: exit %d: %s", code, out)
		}
	})

	t.Run("files", func(t *testing.T) {
		if out, code := labExec(t, l, "web", "", "sh", "-c", "echo lab > /etc/mailfleet-lab-test && cat /etc/mailfleet-lab-test"); code != 0 || out != "lab\n" {
			t.Fatalf("write on web: %d %q", code, out)
		}
		if _, code := labExec(t, l, "db1", "", "test", "-e", "/etc/mailfleet-lab-test"); code == 0 {
			t.Error("db1 sees web's /etc file")
		}
		if _, err := os.Stat("/etc/mailfleet-lab-test"); err == nil {
			t.Error("the machine sees web's /etc file")
		}
		if _, code := labExec(t, l, "web", "", "test", "-e", filepath.Join(l.Dir, "lab.json")); code == 0 {
			t.Error("a node sees the lab's state directory")
		}
		// Shared storage: one directory on every node.
		if _, code := labExec(t, l, "db1", "", "sh", "-c", "echo shared > /srv/san/probe"); code != 0 {
			t.Fatal("write /srv/san on db1")
		}
		if out, _ := labExec(t, l, "db2", "", "cat", "/srv/san/probe"); out != "shared\n" {
			t.Errorf("db2 reads %q from /srv/san/probe", out)
		}
		for _, p := range []string{"/usr/local/sbin/systemctl", "/usr/local/sbin/sysctl", "/usr/sbin/fence_mailfleet_lab",
			"/etc/ssl/mailfleet-lab/node.crt", "/etc/systemd/system/multi-user.target.wants/ssh.service", InNodeExecutable} {
			if _, code := labExec(t, l, "db1", "", "test", "-e", p); code != 0 {
				t.Errorf("db1 has no %s", p)
			}
		}
		// The key: root's, readable by the node's mailfleet group (which
		// the machine does not have), never by others.
		if out, code := labExec(t, l, "db1", "", "stat", "-c", "%a %U %G", "/etc/ssl/mailfleet-lab/node.key"); code != 0 || out != "640 root mailfleet\n" {
			t.Errorf("node.key mode %q", out)
		}
		// A clean node: ssh is the only service enabled, whatever the
		// machine enables.
		if out, code := labExec(t, l, "db1", "", "sh", "-c", "ls /etc/systemd/system/*.wants/"); code != 0 || strings.Count(out, ".service") != 1 || !strings.Contains(out, "ssh.service") {
			t.Errorf("services enabled on a new node: %q", out)
		}
		if out, _ := labExec(t, l, "db1", "", "hostname"); out != "db1\n" {
			t.Errorf("hostname on db1: %q", out)
		}
	})

	t.Run("power", func(t *testing.T) {
		db2 := l.Host("db2")
		// A VIP, as IPaddr2 adds one: power off takes it too.
		if out, code := labExec(t, l, "db2", "", "ip", "addr", "add", "10.77.0.99/24", "dev", "eth0"); code != 0 {
			t.Fatalf("add a VIP on db2: %s", out)
		}
		if err := l.PowerOff("db2"); err != nil {
			t.Fatal(err)
		}
		ino, _ := nsInode(l.nsPath(db2))
		if pids := pidsIn(map[uint64]bool{ino: true}, nil); len(pids) > 0 {
			t.Errorf("processes left on db2 after power off: %v", pids)
		}
		if a := l.Addresses(db2); len(a) > 0 {
			t.Errorf("db2 keeps addresses %v", a)
		}
		if l.Running(db2) {
			t.Error("db2 still running")
		}
		if err := l.PowerOn("db2"); err != nil {
			t.Fatal(err)
		}
		waitSSH(t, l, "db2")
		// The node's disk survived.
		if out, _ := labExec(t, l, "db2", "", "cat", "/etc/hostname"); out != "db2\n" {
			t.Errorf("hostname after power on: %q", out)
		}
	})

	t.Run("fence", func(t *testing.T) {
		agent := func(stdin string, args ...string) (string, int) {
			return labExec(t, l, "db1", stdin, append([]string{"/usr/sbin/fence_mailfleet_lab"}, args...)...)
		}
		base := []string{"-a", "10.77.0.250", "-l", "lab", "-p", "pdu-secret"}
		if out, code := agent("", append([]string{"-o", "status", "-n", "2"}, base...)...); code != 0 {
			t.Fatalf("status of db2: %d %s", code, out)
		}
		if out, code := agent("", "-o", "status", "-n", "2", "-a", "10.77.0.250", "-l", "lab", "-p", "wrong"); code != 1 {
			t.Errorf("a wrong password: %d %s", code, out)
		}
		if out, code := agent("", append([]string{"-o", "off", "-n", "2"}, base...)...); code != 0 {
			t.Fatalf("off db2: %d %s", code, out)
		}
		if l.Running(l.Host("db2")) {
			t.Error("db2 runs after fence off")
		}
		stdin := "action=status\nport=2\nipaddr=10.77.0.250\nlogin=lab\npasswd=pdu-secret\n"
		if out, code := agent(stdin); code != 2 {
			t.Errorf("status (stdin) of a fenced node: %d %s", code, out)
		}
		if out, code := agent("", append([]string{"-o", "list"}, base...)...); code != 0 || !strings.Contains(out, "1,db1") || !strings.Contains(out, "2,db2") {
			t.Errorf("list: %d %s", code, out)
		}
		if out, code := agent("", append([]string{"-o", "on", "-n", "db2"}, base...)...); code != 0 {
			t.Fatalf("on db2: %d %s", code, out)
		}
		// The switch has turned the power on: the node counts as on, but
		// it boots only after the lab's boot time, as a server does.
		powered := time.Now()
		if out, code := agent("", append([]string{"-o", "status", "-n", "2"}, base...)...); code != 0 {
			t.Errorf("status right after on: %d %s, want on (powered, booting)", code, out)
		}
		if l.Running(l.Host("db2")) {
			t.Error("db2 booted at once; the switch should wait its boot time")
		}
		waitSSH(t, l, "db2")
		if d := time.Since(powered); d < labTestBootTime {
			t.Errorf("db2 answered %v after its power came on, before its boot time %v", d, labTestBootTime)
		}
		out, code := agent("", "-o", "metadata")
		var md struct {
			Name string `xml:"name,attr"`
		}
		if code != 0 || xml.Unmarshal([]byte(out), &md) != nil || md.Name != "fence_mailfleet_lab" {
			t.Errorf("metadata: %d %q", code, out)
		}
		if _, code := agent("action=validate-all\nip=10.77.0.250\n"); code != 0 {
			t.Errorf("validate-all: %d", code)
		}
	})

	t.Run("status", func(t *testing.T) {
		st := l.Status()
		if len(st.Nodes) != 4 || st.Workstation.State != "on" || len(st.PDUs) != 1 || st.PDUs[0].State != "on" {
			t.Errorf("status %+v", st)
		}
		for _, n := range st.Nodes {
			if n.State != "on" {
				t.Errorf("%s is %s", n.Name, n.State)
			}
		}
	})

	t.Run("up again", func(t *testing.T) {
		start := time.Now()
		if err := l.PowerOff("web"); err != nil {
			t.Fatal(err)
		}
		l2, err := Up(top, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("second lab up: %v", time.Since(start))
		waitSSH(t, l2, "web")
		waitSSH(t, l2, "db1")
	})

	nets := labNets(layout)
	start = time.Now()
	if err := Down(layout, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab down: %v", time.Since(start))
	assertGone(t, layout, nets, before)
	if err := Down(layout, nil); err != nil {
		t.Errorf("second down: %v", err)
	}
}

// rootSnapshotNoMounts is rootSnapshot with the mounts of before (the lab
// adds its own under LABDIR while it is up).
func rootSnapshotNoMounts(t *testing.T, before map[string]string) map[string]string {
	s := rootSnapshot(t)
	s["mounts"] = before["mounts"]
	return s
}

func TestDownAfterFailedUp(t *testing.T) {
	testutil.Long(t)
	top := loadTopology(t, "testdata/small")
	layout, err := Layout(top, "")
	if err != nil {
		t.Fatal(err)
	}
	_ = Down(layout, nil)
	before := rootSnapshot(t)
	// Nodes whose init exits at once: sshd never answers.
	_, err = Up(top, Options{Executable: mailfleetBin, Init: []string{"/bin/false"}, Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "nothing answers") {
		t.Fatalf("up with a dead init: %v", err)
	}
	if _, err := os.Stat(filepath.Join(layout.Dir, "lab.json")); err != nil {
		t.Fatalf("no lab.json after a failed up: %v", err)
	}
	nets := labNets(layout)
	if err := Down(layout, nil); err != nil {
		t.Fatal(err)
	}
	assertGone(t, layout, nets, before)
}

func TestLayout(t *testing.T) {
	top := loadTopology(t, "testdata/small")
	s, err := Layout(top, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	ws := s.Host(KindWorkstation)
	if got := ws.Ifaces[0].Addr.String(); got != "100.64.0.2/30" {
		t.Errorf("workstation %s", got)
	}
	gw := s.Host("gw")
	if len(gw.Ifaces) != 3 || gw.Ifaces[2].Addr.String() != "100.64.0.1/30" || !gw.Forward {
		t.Errorf("router %+v", gw)
	}
	for _, h := range s.Hosts {
		for _, ifc := range h.Ifaces {
			if len(ifc.Veth) > 15 {
				t.Errorf("veth name %q too long", ifc.Veth)
			}
		}
	}
	if len(s.PDUs) != 1 || s.PDUs[0].Ports[1] != "db1" || s.PDUs[0].Ports[2] != "db2" {
		t.Errorf("pdus %+v", s.PDUs)
	}
	var b bytes.Buffer
	b.Write(s.hostsFile())
	if !strings.Contains(b.String(), "10.77.0.11\tdb1.back.labtest db1") || !strings.Contains(b.String(), "192.0.2.1\tgw.front.labtest gw\n") {
		t.Errorf("hosts:\n%s", b.String())
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestCheckToolsNamesPackages(t *testing.T) {
	saved := tools
	t.Cleanup(func() { tools = saved })
	tools = append(append(tools[:0:0], saved...), struct{ path, pkg string }{"/nonexistent/mailfleet-lab-tool", "mailfleet-lab-fake"})
	err := CheckTools()
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y mailfleet-lab-fake") || !strings.Contains(err.Error(), "/nonexistent/mailfleet-lab-tool") {
		t.Errorf("CheckTools: %v", err)
	}
	tools = saved
	if err := CheckTools(); err != nil {
		t.Errorf("CheckTools on this machine: %v", err)
	}
}

// MissingPackages names exactly the packages dpkg does not have installed.
func TestMissingPackages(t *testing.T) {
	missing, err := MissingPackages([]string{"iproute2", "openssh-server", "no-such-package-mailfleet"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(missing, " ") != "no-such-package-mailfleet" {
		t.Fatalf("missing: %v", missing)
	}
}
