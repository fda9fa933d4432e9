package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailfleet/mailfleet/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// nsExists: /run/netns/NAME is a mounted network namespace.
func nsExists(name string) bool {
	return isMountPoint("/run/netns/" + name)
}

func linkExists(ns, link string) bool {
	return run("ip", "-n", ns, "link", "show", "dev", link) == nil
}

// ensureNS makes network namespace name unless it exists, recording it.
func (l *Lab) ensureNS(name string) error {
	if !nsExists(name) {
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			// A file left by a namespace that died with a reboot.
			_ = run("ip", "netns", "delete", name)
		}
		if err := run("ip", "netns", "add", name); err != nil {
			return err
		}
	}
	if !slices.Contains(l.Namespaces, name) {
		l.Namespaces = append(l.Namespaces, name)
		if err := l.save(); err != nil {
			return err
		}
	}
	return run("ip", "-n", name, "link", "set", "lo", "up")
}

// ensureSwitch makes the switch namespace and a bridge per network.
func (l *Lab) ensureSwitch() error {
	if err := l.ensureNS(l.Switch); err != nil {
		return err
	}
	var brs []string
	for _, br := range l.Bridges {
		brs = append(brs, br)
	}
	slices.Sort(brs)
	for _, br := range brs {
		if !linkExists(l.Switch, br) {
			if err := run("ip", "-n", l.Switch, "link", "add", br, "type", "bridge"); err != nil {
				return err
			}
		}
		if err := run("ip", "-n", l.Switch, "link", "set", br, "up"); err != nil {
			return err
		}
	}
	return nil
}

// ensureHostNet makes h's namespace and its veths into the switch; when up,
// its addresses, links and default route too.
func (l *Lab) ensureHostNet(h *Host, up bool) error {
	if err := l.ensureNS(h.NS); err != nil {
		return err
	}
	for _, ifc := range h.Ifaces {
		if !linkExists(h.NS, ifc.Name) {
			if linkExists(l.Switch, ifc.Veth) {
				_ = run("ip", "-n", l.Switch, "link", "delete", ifc.Veth)
			}
			// Made in the switch with its peer straight in h's namespace:
			// the root namespace never holds either end.
			if err := run("ip", "-n", l.Switch, "link", "add", ifc.Veth, "type", "veth", "peer", "name", ifc.Name, "netns", h.NS); err != nil {
				return err
			}
		}
		if err := run("ip", "-n", l.Switch, "link", "set", ifc.Veth, "master", ifc.Bridge, "up"); err != nil {
			return err
		}
	}
	if h.Forward {
		if err := setForward(h.NS); err != nil {
			return err
		}
	}
	if up {
		return l.netUp(h)
	}
	return nil
}

// setForward turns on IPv4 forwarding inside namespace ns only: the write
// happens in a process that entered ns before it opened /proc/sys.
func setForward(ns string) error {
	if err := run("nsenter", "--net=/run/netns/"+ns, "/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return err
	}
	out, err := output("nsenter", "--net=/run/netns/"+ns, "cat", "/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) != "1" {
		return fmt.Errorf("lab: ip_forward stays %q in %s", strings.TrimSpace(string(out)), ns)
	}
	return nil
}

// netUp gives h its addresses, brings its links up and sets its default route.
func (l *Lab) netUp(h *Host) error {
	for _, ifc := range h.Ifaces {
		if err := run("ip", "-n", h.NS, "addr", "replace", ifc.Addr.String(), "dev", ifc.Name); err != nil {
			return err
		}
		if err := run("ip", "-n", h.NS, "link", "set", ifc.Name, "up"); err != nil {
			return err
		}
	}
	if h.Gateway.IsValid() {
		return run("ip", "-n", h.NS, "route", "replace", "default", "via", h.Gateway.String())
	}
	return nil
}

// netDown flushes every address of h (a VIP an agent added too) and takes its
// links down: a node without power answers nothing.
func (l *Lab) netDown(h *Host) error {
	var first error
	for _, ifc := range h.Ifaces {
		if !linkExists(h.NS, ifc.Name) {
			continue
		}
		if err := run("ip", "-n", h.NS, "addr", "flush", "dev", ifc.Name); err != nil && first == nil {
			first = err
		}
		if err := run("ip", "-n", h.NS, "link", "set", ifc.Name, "down"); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Addresses returns the IPv4 addresses (with prefix) on h's interfaces
// other than lo, as the kernel has them now.
func (s *State) Addresses(h *Host) []string {
	out, err := output("ip", "-j", "-4", "-n", h.NS, "addr", "show")
	if err != nil {
		return nil
	}
	var links []struct {
		IfName   string `json:"ifname"`
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if json.Unmarshal(out, &links) != nil {
		return nil
	}
	var addrs []string
	for _, ln := range links {
		if ln.IfName == "lo" {
			continue
		}
		for _, a := range ln.AddrInfo {
			addrs = append(addrs, a.Local+"/"+strconv.Itoa(a.PrefixLen))
		}
	}
	return addrs
}

// DialFrom opens a TCP connection to addr from inside h's network namespace.
// The socket is made on a thread that entered the namespace and that dies
// afterwards; when entering fails nothing is dialled.
func (s *State) DialFrom(h *Host, addr string, timeout time.Duration) (net.Conn, error) {
	return dialIn(s.nsPath(h), addr, timeout)
}

func dialIn(nsPath, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread is in another namespace and ends
		// with this goroutine.
		runtime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("lab: enter %s: %w", nsPath, err)}
			return
		}
		var d net.Dialer
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// nsInode is the inode of a namespace file (/run/netns/X, a bound mount
// namespace), which /proc/PID/ns/* links name as "net:[INODE]".
// It is false for anything but a bound namespace (a file left after a
// reboot, say), so that no ordinary inode number is ever taken for one.
func nsInode(path string) (uint64, bool) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return 0, false
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// pidsIn lists the processes whose network namespace inode is in nets or
// whose mount namespace inode is in mnts.
func pidsIn(nets, mnts map[uint64]bool) []int {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if inNS(pid, "net", nets) || inNS(pid, "mnt", mnts) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func inNS(pid int, kind string, set map[uint64]bool) bool {
	if len(set) == 0 {
		return false
	}
	link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + kind)
	if err != nil {
		return false
	}
	i := strings.IndexByte(link, '[')
	if i < 0 {
		return false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(link[i+1:], "]"), 10, 64)
	return err == nil && set[ino]
}

// killAll SIGKILLs, by PID, every process in the given namespaces until none
// is left (a process may fork while the first are killed).
func killAll(nets, mnts map[uint64]bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pidsIn(nets, mnts)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: processes %v survive SIGKILL", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mounts lists the mount points of the calling process's mount namespace,
// with their file system types.
func mounts() []mountinfo.Entry {
	es, _ := mountinfo.Read("/proc/self/mountinfo")
	return es
}

func isMountPoint(p string) bool {
	for _, m := range mounts() {
		if m.Point == p {
			return true
		}
	}
	return false
}

// mountsUnder lists mount points at or below dir, deepest (latest) first.
func mountsUnder(dir string) []string {
	var out []string
	ms := mounts()
	for i := len(ms) - 1; i >= 0; i-- {
		p := ms[i].Point
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out
}
