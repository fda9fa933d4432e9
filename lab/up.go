package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/mailfleet/mailfleet/spec"
)

// Up builds topology t's lab, or converges an existing one: everything the
// lab should have exists afterwards and every node is on (a node powered
// off is booted again; its disk is kept). It returns once every node's sshd
// answers from the workstation, or fails after opts.Timeout. The state
// written on the way lets Down undo a failed Up.
func Up(t *spec.Topology, opts Options) (*Lab, error) {
	if err := CheckTools(); err != nil {
		return nil, err
	}
	s, err := Layout(t, opts.Dir)
	if err != nil {
		return nil, err
	}
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	s.Init = opts.Init
	switch {
	case opts.BootTime == 0:
		s.BootTime = Duration(DefaultBootTime)
	case opts.BootTime > 0:
		s.BootTime = Duration(opts.BootTime)
	}
	if len(s.Init) == 0 {
		s.Init = DefaultInit
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	l := &Lab{State: *s}
	l.SetLog(opts.Log)
	start := time.Now()

	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if old, err := Open(l.Dir); err == nil {
		if err := l.adopt(old); err != nil {
			return l, err
		}
	} else {
		l.NetnsMount = !isMountPoint("/run/netns")
	}
	if err := l.save(); err != nil {
		return l, err
	}
	// LABDIR/nodes is a tmpfs of its own: the nodes' mount namespace files
	// need a private mount, and an overlay upper dir may not lie inside its
	// lower dir's file system tree (/var).
	nodes := filepath.Join(l.Dir, "nodes")
	if err := os.MkdirAll(nodes, 0o700); err != nil {
		return l, err
	}
	if !isMountPoint(nodes) {
		if err := unix.Mount("mailfleet-lab", nodes, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
			return l, fmt.Errorf("lab: tmpfs on %s: %w", nodes, err)
		}
		if err := unix.Mount("", nodes, "", unix.MS_PRIVATE, ""); err != nil {
			return l, fmt.Errorf("lab: make %s private: %w", nodes, err)
		}
	}
	if err := copyExecutable(exe, l.Executable); err != nil {
		return l, err
	}
	wsKey, err := ensureSSHKey(l.Identity(), "mailfleet-lab@"+l.Site)
	if err != nil {
		return l, err
	}
	ca, err := loadOrMakeCA(l.Dir, l.Site)
	if err != nil {
		return l, err
	}
	// The workstation trusts the lab's CA where the nodes have it, as an
	// admin's machine has the site's CA installed.
	if err := writeFile(filepath.Join(l.workstationEtc(), "ssl", "mailfleet-lab", "ca.crt"), ca.certPEM, 0o644); err != nil {
		return l, err
	}
	if err := l.ensureSAN(t); err != nil {
		return l, err
	}

	if err := l.ensureSwitch(); err != nil {
		return l, err
	}
	for _, h := range l.Hosts {
		if err := l.ensureHostNet(h, true); err != nil {
			return l, err
		}
	}
	l.logf("network: %d namespaces (%.1fs)", len(l.Namespaces), time.Since(start).Seconds())

	names, ips := siteNames(t)
	hosts := l.hostsFile()
	var kh strings.Builder
	for _, h := range l.Nodes() {
		key, err := l.ensureNodeFiles(h, ca, wsKey, names, ips, hosts)
		if err != nil {
			return l, fmt.Errorf("lab: files of %s: %w", h.Name, err)
		}
		kh.WriteString(knownHostsLine(h, key) + "\n")
	}
	if err := writeFile(l.KnownHosts(), []byte(kh.String()), 0o644); err != nil {
		return l, err
	}
	for _, h := range l.Nodes() {
		if err := l.withNodeLock(h.Name, func() error { return l.boot(h) }); err != nil {
			return l, err
		}
	}
	for _, p := range l.PDUs {
		var pw string
		for _, fd := range t.Fences {
			if fd.Name == p.Fence {
				if !fd.Password.Known && fd.Password.Source != "" {
					return l, fmt.Errorf("lab: fence %s: its password (%s) cannot be read", fd.Name, fd.Password.Source)
				}
				pw = fd.Password.Value
			}
		}
		if err := l.startPDU(p, pw); err != nil {
			return l, err
		}
	}
	if err := l.save(); err != nil {
		return l, err
	}
	if err := l.waitReady(time.Now().Add(timeout)); err != nil {
		return l, err
	}
	l.logf("up: %d nodes answer ssh (%.1fs)", len(l.Nodes()), time.Since(start).Seconds())
	return l, nil
}

// adopt takes over what an earlier up recorded, and removes the namespaces
// of hosts the topology no longer has.
func (l *Lab) adopt(old *Lab) error {
	l.NetnsMount = old.NetnsMount
	for _, p := range l.PDUs {
		for _, op := range old.PDUs {
			if op.Fence == p.Fence {
				p.PID = op.PID
			}
		}
	}
	want := map[string]bool{l.Switch: true}
	for _, h := range l.Hosts {
		want[h.NS] = true
	}
	for _, h := range old.Hosts {
		if !want[h.NS] && h.Booted() {
			_ = old.PowerOff(h.Name)
		}
	}
	for _, ns := range old.Namespaces {
		if want[ns] {
			l.Namespaces = append(l.Namespaces, ns)
			continue
		}
		if ino, ok := nsInode("/run/netns/" + ns); ok {
			if err := killAll(map[uint64]bool{ino: true}, nil); err != nil {
				return err
			}
			if err := run("ip", "netns", "delete", ns); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	tmp := to + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	// A rename: nodes that run keep the inode they have bound.
	return os.Rename(tmp, to)
}

// ensureSAN makes LABDIR/san/<rest> for every partition device /srv/san/<rest>.
func (l *Lab) ensureSAN(t *spec.Topology) error {
	san := filepath.Join(l.Dir, "san")
	if err := os.MkdirAll(san, 0o755); err != nil {
		return err
	}
	for _, st := range t.Storages {
		for _, d := range st.Disks {
			for _, p := range d.Partitions {
				rest, ok := strings.CutPrefix(filepath.Clean(p.Device), "/srv/san/")
				if !ok || rest == "" || strings.HasPrefix(rest, "..") {
					continue
				}
				if err := os.MkdirAll(filepath.Join(san, rest), 0o755); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// WaitSSH waits until the sshd of each node greets the workstation.
func (l *Lab) WaitSSH(nodes []string, timeout time.Duration) error {
	return l.wait(nodes, nil, time.Now().Add(timeout))
}

// waitReady waits until every node's sshd greets the workstation and every
// power switch answers.
func (l *Lab) waitReady(deadline time.Time) error {
	var nodes []string
	for _, h := range l.Nodes() {
		nodes = append(nodes, h.Name)
	}
	return l.wait(nodes, l.PDUs, deadline)
}

func (l *Lab) wait(nodes []string, pdus []*PDU, deadline time.Time) error {
	ws := l.Host(KindWorkstation)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	check := func(name, addr, greeting string, logPath string) {
		defer wg.Done()
		for {
			c, err := l.DialFrom(ws, addr, 2*time.Second)
			if err == nil {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if strings.HasPrefix(line, greeting) {
					return
				}
			}
			if time.Now().After(deadline) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("lab: %s: nothing answers on %s (%s)%s", name, addr, greeting, logTail(logPath)))
				mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, name := range nodes {
		h := l.Host(name)
		if h == nil || !h.Booted() {
			return fmt.Errorf("lab: no node %q", name)
		}
		wg.Add(1)
		addr := net.JoinHostPort(h.Ifaces[0].Addr.Addr().String(), strconv.Itoa(h.SSHPort))
		go check(h.Name, addr, "SSH-2.0-", filepath.Join(l.nodeDir(h.Name), "init.log"))
	}
	for _, p := range pdus {
		wg.Add(1)
		h := l.Host(p.Host)
		go check(h.Name, net.JoinHostPort(h.Ifaces[0].Addr.Addr().String(), strconv.Itoa(PDUPort)), "MAILFLEET-PDU", l.pduLog(p.Fence))
	}
	wg.Wait()
	return errors.Join(errs...)
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return "; " + path + " ends:\n    " + strings.Join(lines, "\n    ")
}

// Down removes the lab whose layout is s (from the topology) and whatever
// LABDIR/lab.json recorded: every process in its namespaces (by PID), every
// mount under LABDIR, every namespace (their veths and bridges go with
// them), then LABDIR. It is idempotent and undoes a failed Up.
func Down(s *State, log io.Writer) error {
	l := &Lab{State: *s}
	l.SetLog(log)
	if old, err := Open(s.Dir); err == nil {
		l.NetnsMount = old.NetnsMount
		l.Namespaces = append(l.Namespaces, old.Namespaces...)
		l.PDUs = append(l.PDUs, old.PDUs...)
		l.Hosts = append(l.Hosts, old.Hosts...)
	}
	nss := append([]string{}, l.Namespaces...)
	for _, h := range l.Hosts {
		nss = append(nss, h.NS)
	}
	nss = append(nss, l.Switch)
	nss = uniq(nss)
	nets, mnts := map[uint64]bool{}, map[uint64]bool{}
	for _, ns := range nss {
		if ino, ok := nsInode("/run/netns/" + ns); ok && nsExists(ns) {
			nets[ino] = true
		}
	}
	for _, m := range mountsUnder(filepath.Join(l.Dir, "nodes")) {
		if strings.HasSuffix(m, "/mnt") {
			if ino, ok := nsInode(m); ok {
				mnts[ino] = true
			}
		}
	}
	var errs []error
	if err := killAll(nets, mnts); err != nil {
		errs = append(errs, err)
	}
	for _, m := range mountsUnder(l.Dir) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("lab: unmount %s: %w", m, err))
		}
	}
	for _, ns := range nss {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			if err := run("ip", "netns", "delete", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, err)
		}
		_ = os.Remove(Root)
		_ = os.Remove(filepath.Dir(Root))
	}
	if l.NetnsMount && isMountPoint("/run/netns") {
		// ip netns made /run/netns a mount point for the lab; a plain
		// (not lazy) unmount fails, harmlessly, while anyone else has a
		// namespace there.
		if ents, err := os.ReadDir("/run/netns"); err == nil && len(ents) == 0 {
			_ = unix.Unmount("/run/netns", 0)
		}
	}
	if len(errs) == 0 {
		l.logf("down: %s removed", l.Dir)
	}
	return errors.Join(errs...)
}

// Command returns the command that runs argv in node (a node, a router or
// "workstation"): inside its mount and network namespaces with a node's
// environment; for the workstation, in its network namespace only.
func (l *Lab) Command(node string, argv []string) (*exec.Cmd, error) {
	h := l.Host(node)
	if h == nil || h.Kind == KindPDU {
		return nil, fmt.Errorf("lab: no node %q (nodes: %s)", node, strings.Join(l.hostNames(), ", "))
	}
	if len(argv) == 0 {
		return nil, errors.New("lab: no command")
	}
	if !nsExists(h.NS) {
		return nil, fmt.Errorf("lab: %s has no namespace (mailfleet lab up first)", node)
	}
	if h.Kind == KindWorkstation {
		// The machine's file system, but /etc as a read-only overlay that
		// adds the workstation's own files (the lab CA) to the machine's:
		// a mount namespace per command, gone when it ends.
		script := `mount -t overlay mailfleet-ws -o lowerdir="$1":/etc /etc && shift && exec "$@"`
		args := append([]string{"--net=" + l.nsPath(h), "--", "unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", script, "sh", l.workstationEtc()}, argv...)
		return exec.Command("nsenter", args...), nil
	}
	if !isMountPoint(l.mntFile(h.Name)) {
		return nil, fmt.Errorf("lab: %s is powered off (mailfleet lab power on)", node)
	}
	cmd := exec.Command("nsenter", append(append(l.enterArgs(h), "--"), argv...)...)
	env := NodeEnv()
	if t := os.Getenv("TERM"); t != "" {
		env = append(env, "TERM="+t)
	}
	cmd.Env = env
	return cmd, nil
}

// workstationEtc holds the files the workstation's /etc adds to the
// machine's.
func (l *Lab) workstationEtc() string { return filepath.Join(l.Dir, "workstation", "etc") }

func (l *Lab) hostNames() []string {
	var out []string
	for _, h := range l.Hosts {
		if h.Kind != KindPDU {
			out = append(out, h.Name)
		}
	}
	slices.Sort(out)
	return out
}

// NodeStatus is one host in Status.
type NodeStatus struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	State     string   `json:"state"` // on, off
	Addresses []string `json:"addresses"`
}

// Status is what mailfleet lab status shows.
type Status struct {
	Site        string            `json:"site"`
	Dir         string            `json:"dir"`
	Nodes       []NodeStatus      `json:"nodes"`
	PDUs        []NodeStatus      `json:"pdus,omitempty"`
	Services    map[string]string `json:"services"`
	Workstation NodeStatus        `json:"workstation"`
	KnownHosts  string            `json:"known_hosts"`
	Identity    string            `json:"identity"`
	CA          string            `json:"ca"` // the lab CA's certificate, which every node's certificate chains to
}

// Status reports every host's state and addresses as the kernel has them.
func (l *Lab) Status() Status {
	st := Status{Site: l.Site, Dir: l.Dir, Services: l.Services, KnownHosts: l.KnownHosts(), Identity: l.Identity(),
		CA: filepath.Join(l.Dir, "ca.crt")}
	if st.Services == nil {
		st.Services = map[string]string{}
	}
	for _, h := range l.Hosts {
		ns := NodeStatus{Name: h.Name, Kind: h.Kind, Namespace: h.NS, State: "off", Addresses: l.Addresses(h)}
		if ns.Addresses == nil {
			ns.Addresses = []string{}
		}
		switch h.Kind {
		case KindWorkstation:
			if nsExists(h.NS) {
				ns.State = "on"
			}
			st.Workstation = ns
		case KindPDU:
			for _, p := range l.PDUs {
				if p.Host == h.Name && l.pduAlive(p) {
					ns.State = "on"
				}
			}
			st.PDUs = append(st.PDUs, ns)
		default:
			if l.Running(h) {
				ns.State = "on"
			}
			st.Nodes = append(st.Nodes, ns)
		}
	}
	return st
}

// HostKey returns the SSH host key of node as the lab made it.
func (l *Lab) HostKey(node string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(filepath.Join(l.upper(node, "etc"), "ssh", "ssh_host_ed25519_key.pub"))
	if err != nil {
		return nil, err
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	return k, err
}
