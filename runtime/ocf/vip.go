package ocf

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The vip agent: ocf:mailfleet:vip, a service's address. Its parameters are
// those of ocf:heartbeat:IPaddr2 that a mailfleet site uses.
func init() {
	register(&Agent{
		Name:  "vip",
		Short: "mailfleet service address",
		Long: "Adds a service's address (VIP) to the interface of this node that is on its network, " +
			"and announces it at once: gratuitous ARP for IPv4 (resource-agents' send_arp), an unsolicited " +
			"neighbour advertisement for IPv6 (send_ua), repeated in the background. Duplicate address " +
			"detection is not run: fencing guarantees the address is up on one node at most.",
		Params: []Param{
			{Name: "ip", Desc: "The address.", Required: true, Unique: true},
			{Name: "cidr_netmask", Desc: "Its prefix length; by default that of the interface's address on its network.", Integer: true},
			{Name: "nic", Desc: "The interface; by default the one with an address on the VIP's network."},
			{Name: "arp_count", Desc: "Announcements to send.", Default: "5", Integer: true},
			{Name: "arp_interval", Desc: "Milliseconds between announcements.", Default: "200", Integer: true},
		},
		Start: vipStart, Stop: vipStop, Monitor: vipMonitor, Validate: vipValidate,
		MonitorInterval: "10s",
	})
}

// haBin is where resource-agents installs send_arp and send_ua (a
// variable for tests).
var haBin = "/usr/libexec/heartbeat"

// vipPlace is where the address goes: interface and prefix length.
type vipPlace struct {
	ip   netip.Addr
	nic  string
	bits int
}

func (p vipPlace) prefix() string { return p.ip.String() + "/" + strconv.Itoa(p.bits) }

func vipParse(e *Env) (netip.Addr, int) {
	ip, err := netip.ParseAddr(e.Param("ip"))
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, e.Fail(ErrConfigured, "ip %q is not an address", e.Param("ip"))
	}
	return ip.Unmap(), Success
}

// vipFind finds where ip goes: the nic parameter, or the interface with
// an address on ip's network.
func vipFind(e *Env, ip netip.Addr) (vipPlace, int) {
	place := vipPlace{ip: ip, nic: e.Param("nic"), bits: -1}
	if s := e.Param("cidr_netmask"); s != "" {
		place.bits, _ = strconv.Atoi(s)
		if place.bits < 0 || place.bits > ip.BitLen() {
			return place, e.Fail(ErrConfigured, "cidr_netmask %s is out of range for %s", s, ip)
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return place, e.Fail(ErrGeneric, "%v", err)
	}
	for _, ifc := range ifaces {
		if place.nic != "" && ifc.Name != place.nic {
			continue
		}
		if ifc.Flags&net.FlagLoopback != 0 && place.nic == "" {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			pfx, ok := netipPrefix(n)
			if !ok || pfx.Addr() == ip || !pfx.Contains(ip) {
				continue
			}
			if place.bits < 0 {
				place.bits = pfx.Bits()
			}
			place.nic = ifc.Name
			return place, Success
		}
	}
	if place.nic != "" && place.bits >= 0 {
		if _, err := net.InterfaceByName(place.nic); err != nil {
			return place, e.Fail(ErrInstalled, "interface %s: %v", place.nic, err)
		}
		return place, Success
	}
	// No interface of this node is on the VIP's network: it cannot run
	// here.
	return place, e.Fail(ErrInstalled, "no interface of this node has an address on the network of %s", ip)
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	a = a.Unmap()
	if a.Is4() && bits > 32 {
		bits -= 96
	}
	return netip.PrefixFrom(a, bits), true
}

// vipUp says where ip is an address of this node: the interface and the
// prefix length it has there (nic "" when it is none of this node's).
func vipUp(ip netip.Addr) (place vipPlace, err error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return place, err
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if pfx, ok := netipPrefix(n); ok && pfx.Addr() == ip {
					return vipPlace{ip: ip, nic: ifc.Name, bits: pfx.Bits()}, nil
				}
			}
		}
	}
	return place, nil
}

func vipValidate(e *Env) int {
	ip, rc := vipParse(e)
	if rc != Success {
		return rc
	}
	_, rc = vipFind(e, ip)
	return rc
}

func vipMonitor(e *Env) int {
	ip, rc := vipParse(e)
	if rc != Success {
		return rc
	}
	up, err := vipUp(ip)
	if err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	}
	if up.nic == "" {
		return NotRunning
	}
	return Success
}

func vipStart(e *Env) int {
	ip, rc := vipParse(e)
	if rc != Success {
		return rc
	}
	if up, err := vipUp(ip); err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	} else if up.nic != "" {
		return Success
	}
	place, rc := vipFind(e, ip)
	if rc != Success {
		return rc
	}
	args := []string{"addr", "add", place.prefix(), "dev", place.nic}
	if ip.Is4() {
		args = append(args, "brd", "+")
	} else {
		// No duplicate address detection: fencing makes the address
		// unique, and DAD would hold it tentative for a second or more.
		args = append(args, "nodad")
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return e.Fail(ErrGeneric, "ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	e.Log("info", "added %s to %s", place.prefix(), place.nic)
	vipAnnounce(e, place)
	return Success
}

// sendPIDFile is where the announcer of ip writes its pid: a stop ends it.
func sendPIDFile(ip netip.Addr) string {
	return filepath.Join("/run/mailfleet-vip", "send-"+ip.String()+".pid")
}

// vipAnnounce tells the network where the address now is, in the
// background (the start does not wait for the repeats): send_arp sends
// its first pair of ARP request and reply at once.
func vipAnnounce(e *Env, p vipPlace) {
	count, interval := e.Param("arp_count"), e.Param("arp_interval")
	if count == "0" {
		return
	}
	var cmd *exec.Cmd
	if p.ip.Is4() {
		os.MkdirAll(filepath.Dir(sendPIDFile(p.ip)), 0o755)
		cmd = exec.Command(filepath.Join(haBin, "send_arp"), "-i", interval, "-r", count, "-p", sendPIDFile(p.ip),
			p.nic, p.ip.String(), "auto", "not_used", "not_used")
	} else {
		cmd = exec.Command(filepath.Join(haBin, "send_ua"), "-i", interval, "-c", count, p.ip.String(), strconv.Itoa(p.bits), p.nic)
	}
	// Its own session, and no pipe of the agent's: Pacemaker waits for
	// the agent's output to close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		e.Log("warning", "announcing %s: %v", p.ip, err)
		return
	}
	cmd.Process.Release()
}

func vipStop(e *Env) int {
	ip, rc := vipParse(e)
	if rc != Success {
		return rc
	}
	stopAnnouncer(ip)
	up, err := vipUp(ip)
	if err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	}
	if up.nic == "" {
		return Success
	}
	if out, err := exec.Command("ip", "addr", "del", up.prefix(), "dev", up.nic).CombinedOutput(); err != nil {
		if again, _ := vipUp(ip); again.nic == "" {
			return Success
		}
		return e.Fail(ErrGeneric, "ip addr del %s dev %s: %v: %s", up.prefix(), up.nic, err, bytes.TrimSpace(out))
	}
	e.Log("info", "removed %s from %s", up.prefix(), up.nic)
	return Success
}

// stopAnnouncer ends a send_arp still announcing ip (after a quick
// stop), so that it does not claim the address for a node that gave it up.
func stopAnnouncer(ip netip.Addr) {
	b, err := os.ReadFile(sendPIDFile(ip))
	if err != nil {
		return
	}
	defer os.Remove(sendPIDFile(ip))
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "send_arp" {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}
