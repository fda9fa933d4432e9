package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/mailfleet/mailfleet/lab/internal/fenceagent"
)

// overlays are the node directories with an overlay of their own: the
// machine's directory is the lower layer, LABDIR/nodes/N/upper/<name> the
// node's disk.
var overlays = []struct{ target, name string }{
	{"/etc", "etc"},
	{"/var", "var"},
	{"/usr/local", "usr-local"},
	{"/usr/sbin", "usr-sbin"},
	{"/usr/lib/ocf/resource.d", "ocf"},
}

func (s *State) upper(node, name string) string {
	return filepath.Join(s.nodeDir(node), "upper", name)
}

// ensureNodeFiles writes the lab's own files of h into its upper dirs and
// root home, each only when missing (a node's disk is its own once made),
// and returns its SSH host key.
func (l *Lab) ensureNodeFiles(h *Host, c *ca, wsKey ssh.PublicKey, extraNames []string, extraIPs []netip.Addr, hostsFile []byte) (ssh.PublicKey, error) {
	nd := l.nodeDir(h.Name)
	for _, o := range overlays {
		for _, d := range []string{filepath.Join(nd, "upper", o.name), filepath.Join(nd, "work", o.name)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
	}
	root := filepath.Join(nd, "root")
	if err := os.MkdirAll(filepath.Join(root, ".ssh"), 0o700); err != nil {
		return nil, err
	}
	_ = os.Chmod(root, 0o700)
	etc := l.upper(h.Name, "etc")
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{filepath.Join(etc, "hostname"), []byte(h.Hostname + "\n"), 0o644},
		{filepath.Join(etc, "machine-id"), []byte(machineID() + "\n"), 0o444},
		{filepath.Join(etc, "hosts"), hostsFile, 0o644},
		{filepath.Join(etc, "ssh", "sshd_config"), []byte(sshdConfig(h.SSHPort)), 0o644},
		{filepath.Join(root, ".ssh", "authorized_keys"), ssh.MarshalAuthorizedKey(wsKey), 0o600},
		{filepath.Join(l.upper(h.Name, "usr-local"), "sbin", "systemctl"), []byte(shim("systemctl")), 0o755},
		{filepath.Join(l.upper(h.Name, "usr-local"), "sbin", "sysctl"), []byte(shim("sysctl")), 0o755},
		{filepath.Join(l.upper(h.Name, "usr-local"), "lib", "mailfleet-lab", "mailfleet"), nil, 0o755},
		{filepath.Join(l.upper(h.Name, "usr-sbin"), "fence_mailfleet_lab"), fenceagent.Script, 0o755},
		{filepath.Join(etc, "ssl", "mailfleet-lab", "ca.crt"), c.certPEM, 0o644},
	}
	for _, f := range files {
		if err := writeIfMissing(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	// A node starts clean: the services the machine enables (every
	// package installed here enabled itself) are not enabled on the node.
	// Its .wants and .requires directories are opaque in the overlay, so
	// only what the lab (ssh) and apply enable there is.
	if err := opaqueUnitDirs(filepath.Join(etc, "systemd", "system")); err != nil {
		return nil, err
	}
	wants := filepath.Join(etc, "systemd", "system", "multi-user.target.wants")
	if err := makeOpaque(wants); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(filepath.Join(wants, "ssh.service")); err != nil {
		if err := os.Symlink("/lib/systemd/system/ssh.service", filepath.Join(wants, "ssh.service")); err != nil {
			return nil, err
		}
	}
	// The node's certificate: its names and addresses, then every VIP and
	// zone name of the site.
	tls := filepath.Join(etc, "ssl", "mailfleet-lab")
	if _, err := os.Stat(filepath.Join(tls, "node.key")); err != nil {
		names := append(append([]string{}, h.Names...), extraNames...)
		names = uniq(append(names, "localhost"))
		ips := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		for _, ifc := range h.Ifaces {
			ips = append(ips, ifc.Addr.Addr())
		}
		ips = append(ips, extraIPs...)
		crt, key, err := c.issue(h.Hostname, names, uniqAddrs(ips))
		if err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(tls, "node.crt"), crt, 0o644); err != nil {
			return nil, err
		}
		// ldap.key: the same key readable by slapd's group, which may not
		// read a 0600 root file.
		if g, err := user.LookupGroup("openldap"); err == nil {
			gid, _ := strconv.Atoi(g.Gid)
			if err := writeFile(filepath.Join(tls, "ldap.key"), key, 0o640); err != nil {
				return nil, err
			}
			_ = os.Chown(filepath.Join(tls, "ldap.key"), 0, gid)
		}
		// node.key: readable by the mailfleet daemons' group, which the lab
		// makes in the node as a Debian admin would when installing the
		// certificate (apply's setup finds it and adds the user).
		gid, err := ensureGroup(etc, "mailfleet")
		if err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(tls, "node.key"), key, 0o640); err != nil {
			return nil, err
		}
		if err := os.Chown(filepath.Join(tls, "node.key"), 0, gid); err != nil {
			return nil, err
		}
	}
	return ensureSSHKey(filepath.Join(etc, "ssh", "ssh_host_ed25519_key"), "root@"+h.Hostname)
}

// ensureGroup makes sure the node whose upper /etc is etc has a system group
// called name, and returns its gid: the node's /etc/group (and gshadow)
// become its own copies of the machine's, with the group added at the
// highest free system gid.
func ensureGroup(etc, name string) (int, error) {
	read := func(f string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(etc, f))
		if errors.Is(err, os.ErrNotExist) {
			b, err = os.ReadFile(filepath.Join("/etc", f))
		}
		return b, err
	}
	group, err := read("group")
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, line := range strings.Split(string(group), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		if f[0] == name {
			return gid, nil
		}
		used[gid] = true
	}
	gid := 999
	for used[gid] && gid > 100 {
		gid--
	}
	if used[gid] {
		return 0, fmt.Errorf("lab: no free system gid for group %s", name)
	}
	if len(group) > 0 && group[len(group)-1] != '\n' {
		group = append(group, '\n')
	}
	group = append(group, fmt.Sprintf("%s:x:%d:\n", name, gid)...)
	if err := writeFile(filepath.Join(etc, "group"), group, 0o644); err != nil {
		return 0, err
	}
	if gs, err := read("gshadow"); err == nil {
		if len(gs) > 0 && gs[len(gs)-1] != '\n' {
			gs = append(gs, '\n')
		}
		gs = append(gs, fmt.Sprintf("%s:!::\n", name)...)
		p := filepath.Join(etc, "gshadow")
		if err := writeFile(p, gs, 0o640); err != nil {
			return 0, err
		}
		if g, err := user.LookupGroup("shadow"); err == nil {
			sg, _ := strconv.Atoi(g.Gid)
			_ = os.Chown(p, 0, sg)
		}
	}
	return gid, nil
}

// opaqueUnitDirs makes an opaque copy in upper (the node's
// /etc/systemd/system) of every *.wants and *.requires directory of the
// machine's /etc/systemd/system that upper does not have yet.
func opaqueUnitDirs(upper string) error {
	ents, err := os.ReadDir("/etc/systemd/system")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if e.IsDir() && (strings.HasSuffix(e.Name(), ".wants") || strings.HasSuffix(e.Name(), ".requires")) {
			if err := makeOpaque(filepath.Join(upper, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// makeOpaque creates dir, opaque to overlayfs (the lower directory of that
// name is hidden), unless it exists.
func makeOpaque(dir string) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Setxattr(dir, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("lab: make %s opaque: %w", dir, err)
	}
	return nil
}

// machineID is a new random /etc/machine-id: each node is a machine of its own.
func machineID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func uniqAddrs(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range as {
		if a.IsValid() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

func shim(cmd string) string {
	return "#!/bin/sh\n# mailfleet lab: the node has no systemd; " + cmd + " is the lab's stand-in.\nexec " +
		InNodeExecutable + " lab " + cmd + " \"$@\"\n"
}

func sshdConfig(port int) string {
	return fmt.Sprintf(`# mailfleet lab: this node's sshd, reached from the lab's workstation.
Port %d
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
UseDNS no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
`, port)
}

// hostsFile is every node's and router's /etc/hosts: loopback, then every
// host of the topology by address.
func (s *State) hostsFile() []byte {
	var b strings.Builder
	b.WriteString("# mailfleet lab\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range s.Nodes() {
		for _, ifc := range h.Ifaces {
			if ifc.Network == KindWorkstation {
				continue
			}
			names := h.Names
			if h.Kind == KindRouter {
				names = []string{h.Name}
				if ifc.Zone != "" {
					names = []string{h.Name + "." + ifc.Zone, h.Name}
				}
			}
			fmt.Fprintf(&b, "%s\t%s\n", ifc.Addr.Addr(), strings.Join(uniq(names), " "))
		}
	}
	return []byte(b.String())
}

// Running reports whether node h is on: its mount namespace exists and its
// init lives in its network namespace.
func (s *State) Running(h *Host) bool {
	if !isMountPoint(s.mntFile(h.Name)) {
		return false
	}
	pid := s.initPID(h.Name)
	if pid == 0 {
		return false
	}
	ino, ok := nsInode(s.nsPath(h))
	return ok && inNS(pid, "net", map[uint64]bool{ino: true})
}

func (s *State) initPID(node string) int {
	b, err := os.ReadFile(s.initPIDFile(node))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// boot makes h's mount namespace (unless it exists) and starts its init.
func (l *Lab) boot(h *Host) error {
	if !isMountPoint(l.mntFile(h.Name)) {
		// The overlays and binds are made by the lab's own executable run
		// inside the new namespaces (lab mountns): see MountNode.
		if err := l.persistNodeNS(h); err != nil {
			return err
		}
	}
	if l.Running(h) {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(l.nodeDir(h.Name), "init.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	argv := append(l.enterArgs(h), "setsid")
	for _, a := range l.Init {
		argv = append(argv, strings.ReplaceAll(a, "%s", h.Name))
	}
	cmd := exec.Command("nsenter", argv...)
	cmd.Env = NodeEnv()
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lab: start init of %s: %w", h.Name, err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait() // reap it if it ends while this process lives
	l.logf("%s: init started (pid %d)", h.Name, pid)
	return writeFile(l.initPIDFile(h.Name), []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// PowerOff cuts node's power: SIGKILL to every process in its network or
// mount namespace, its mount namespace unmounted, its addresses flushed
// (a VIP an agent added goes too) and its links down. Its disk (the overlay
// upper dirs) stays.
func (l *Lab) PowerOff(node string) error {
	h := l.Host(node)
	if h == nil || !h.Booted() {
		return fmt.Errorf("lab: no node or router %q", node)
	}
	return l.withNodeLock(node, func() error { return l.powerOff(h) })
}

func (l *Lab) powerOff(h *Host) error {
	node := h.Name
	// The links go down first, in one moment, as with a real power cut:
	// finding and killing every process takes a while, and the node must
	// fall silent at once, not when its last process is gone.
	cut := time.Now()
	for _, ifc := range h.Ifaces {
		if linkExists(h.NS, ifc.Name) {
			if err := run("ip", "-n", h.NS, "link", "set", ifc.Name, "down"); err != nil {
				return err
			}
		}
	}
	l.logf("%s: power cut at %s", node, cut.Format(time.RFC3339Nano))
	nets, mnts := l.nodeNamespaces(h)
	if err := killAll(nets, mnts); err != nil {
		return err
	}
	for _, f := range l.nodeNSFiles(h.Name) {
		if isMountPoint(f) {
			if err := unix.Unmount(f, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("lab: unmount %s: %w", f, err)
			}
		}
	}
	_ = os.Remove(l.initPIDFile(h.Name))
	if err := l.netDown(h); err != nil {
		return err
	}
	l.logf("%s: off", node)
	return nil
}

// nodeNamespaces are the inodes of h's network namespace and, while it
// has one, its mount namespace: every process in either is the node's.
func (l *Lab) nodeNamespaces(h *Host) (nets, mnts map[uint64]bool) {
	nets, mnts = map[uint64]bool{}, map[uint64]bool{}
	if ino, ok := nsInode(l.nsPath(h)); ok {
		nets[ino] = true
	}
	mnt := l.mntFile(h.Name)
	if isMountPoint(mnt) {
		if ino, ok := nsInode(mnt); ok {
			mnts[ino] = true
		}
	}
	return nets, mnts
}

// PowerOn boots node again: addresses, routes, mount namespace, init. A
// node that is on is left alone.
func (l *Lab) PowerOn(node string) error {
	h := l.Host(node)
	if h == nil || !h.Booted() {
		return fmt.Errorf("lab: no node or router %q", node)
	}
	return l.withNodeLock(node, func() error {
		if err := l.ensureHostNet(h, true); err != nil {
			return err
		}
		if err := l.boot(h); err != nil {
			return err
		}
		l.logf("%s: on", node)
		return nil
	})
}

// withNodeLock runs f holding node's power lock (a flock on
// LABDIR/nodes/N/power.lock), so that the PDU, the CLI and up never power
// one node on and off at once.
func (l *Lab) withNodeLock(node string, f func() error) error {
	if err := os.MkdirAll(l.nodeDir(node), 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(l.nodeDir(node), "power.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN)
	return f()
}

// MountNode runs inside a node's new mount namespace (mailfleet lab
// mountns, in namespaces of its own with private propagation; see
// HoldNodeNS) and makes the node's
// file system: overlays, tmpfs on /run and /tmp, its root home, the shared
// storage, the mailfleet executable.
func MountNode(dir, node string) error {
	// Mounts and the host name go to the node's own namespaces: refuse
	// when this process shares either with the lab process that started
	// it (the machine's).
	for _, kind := range []string{"mnt", "uts"} {
		self, err1 := os.Readlink("/proc/self/ns/" + kind)
		parent, err2 := os.Readlink("/proc/" + strconv.Itoa(os.Getppid()) + "/ns/" + kind)
		if err1 != nil || err2 != nil || self == parent {
			return fmt.Errorf("lab: mountns runs without a %s namespace of its own", kind)
		}
	}
	l, err := Open(dir)
	if err != nil {
		return err
	}
	h := l.Host(node)
	if h == nil {
		return fmt.Errorf("lab: no node %q", node)
	}
	if err := unix.Sethostname([]byte(h.Hostname)); err != nil {
		return fmt.Errorf("lab: hostname: %w", err)
	}
	// Copies of namespace files (other nodes' mnt, /run/netns/*) would keep
	// those namespaces alive for as long as this one lives.
	ms := mounts()
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].FSType == "nsfs" {
			_ = unix.Unmount(ms[i].Point, unix.MNT_DETACH)
		}
	}
	nd := l.nodeDir(node)
	overlay := func(target, name string) error {
		if _, err := os.Stat(target); err != nil {
			return nil // not on this machine: nothing to overlay
		}
		opts := "lowerdir=" + target + ",upperdir=" + filepath.Join(nd, "upper", name) + ",workdir=" + filepath.Join(nd, "work", name)
		if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
			return fmt.Errorf("lab: overlay on %s: %w", target, err)
		}
		return nil
	}
	// /var comes last: LABDIR is under it, and its overlay hides LABDIR's
	// mounts (the nodes' tmpfs) from every path resolved afterwards.
	for _, o := range overlays {
		if o.target != "/var" {
			if err := overlay(o.target, o.name); err != nil {
				return err
			}
		}
	}
	binds := [][2]string{
		{filepath.Join(nd, "root"), "/root"},
		{l.Executable, InNodeExecutable},
	}
	for _, b := range binds {
		if err := unix.Mount(b[0], b[1], "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("lab: bind %s on %s: %w", b[0], b[1], err)
		}
	}
	_ = unix.Mount("", InNodeExecutable, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	// Shared storage at /srv/san: on a tmpfs over /srv when the machine has
	// no /srv/san, so nothing is made on the machine.
	san := filepath.Join(dir, "san")
	if _, err := os.Stat("/srv/san"); err != nil {
		if _, err := os.Stat("/srv"); err != nil {
			return errors.New("lab: the machine has no /srv to hold /srv/san")
		}
		if err := unix.Mount("tmpfs", "/srv", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
			return fmt.Errorf("lab: tmpfs on /srv: %w", err)
		}
		if err := os.Mkdir("/srv/san", 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount(san, "/srv/san", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("lab: bind %s on /srv/san: %w", san, err)
	}
	if err := overlay("/var", "var"); err != nil {
		return err
	}
	for _, m := range []struct{ target, opts string }{{"/run", "mode=0755"}, {"/tmp", "mode=1777"}, {"/dev/shm", "mode=1777"}} {
		if err := unix.Mount("tmpfs", m.target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, m.opts); err != nil {
			return fmt.Errorf("lab: tmpfs on %s: %w", m.target, err)
		}
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"/run/lock", 0o1777}, {"/run/sshd", 0o755}} {
		_ = os.Mkdir(d.path, d.mode)
		_ = os.Chmod(d.path, d.mode)
	}
	// The lab's state (other nodes' disks, the workstation's key) is not
	// the node's business.
	if err := unix.Mount("tmpfs", Root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,size=64k"); err != nil {
		return fmt.Errorf("lab: hide %s: %w", Root, err)
	}
	return nil
}
