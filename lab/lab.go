package lab

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/spec"
)

// Root holds one state directory per lab, named by the site.
const Root = "/var/lib/mailfleet/lab"

// PDUPort is where a lab power switch listens, on its fence device's address.
const PDUPort = 1161

// InNodeExecutable is where every node finds the mailfleet executable (a
// read-only bind of the lab's copy): init, the systemctl and sysctl shims and
// the fence agent's PDU all run it.
const InNodeExecutable = "/usr/local/lib/mailfleet-lab/mailfleet"

// NodePATH is the PATH of every process the lab starts in a node.
const NodePATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Host kinds.
const (
	KindNode        = "node"
	KindRouter      = "router"
	KindWorkstation = "workstation"
	KindPDU         = "pdu"
)

// Iface is one interface of a lab host: a veth whose other end (Veth) is a
// port of Bridge in the switch namespace.
type Iface struct {
	Name    string       `json:"name"` // eth0, eth1, …
	Network string       `json:"network"`
	Bridge  string       `json:"bridge"`
	Veth    string       `json:"veth"`
	Addr    netip.Prefix `json:"address"`
	Zone    string       `json:"zone,omitempty"` // the network's DNS zone
}

// Host is a network namespace of the lab: a node, a router, the workstation
// or a power switch.
type Host struct {
	Name     string     `json:"name"`
	Kind     string     `json:"kind"`
	NS       string     `json:"namespace"`
	Hostname string     `json:"hostname,omitempty"`
	Names    []string   `json:"names,omitempty"` // FQDNs and host names, for known_hosts and certificates
	Ifaces   []Iface    `json:"interfaces"`
	Gateway  netip.Addr `json:"gateway,omitzero"`
	Forward  bool       `json:"forward,omitempty"`
	SSHPort  int        `json:"ssh_port,omitempty"`
}

// Booted reports whether h has a mount namespace and init: nodes and routers.
func (h *Host) Booted() bool { return h.Kind == KindNode || h.Kind == KindRouter }

// PDU is the power switch of one fence device.
type PDU struct {
	Fence string `json:"fence"`
	Host  string `json:"host"` // the Host (kind pdu) it runs in
	Login string `json:"login,omitempty"`
	// Ports maps a fence port number to the node on it.
	Ports map[int]string `json:"ports"`
	PID   int            `json:"pid,omitempty"`
}

// State is LABDIR/lab.json: what the lab is made of, written as it is made
// so that down can undo a failed up. It holds no secret.
type State struct {
	Site       string   `json:"site"`
	Dir        string   `json:"dir"`
	Prefix     string   `json:"prefix"`
	Executable string   `json:"executable"` // the lab's copy, LABDIR/bin/mailfleet
	Init       []string `json:"init"`       // argv of each node's init, %s = node name
	Switch     string   `json:"switch"`
	// Bridges maps a network (or "workstation") to its bridge in Switch.
	Bridges map[string]string `json:"bridges"`
	Hosts   []*Host           `json:"hosts"`
	PDUs    []*PDU            `json:"pdus,omitempty"`
	// Namespaces lists every network namespace made, in order.
	Namespaces []string `json:"namespaces"`
	// NetnsMount: /run/netns was no mount point before the lab made its first
	// namespace (ip netns makes it one); down unmounts it again when empty.
	NetnsMount bool `json:"netns_mount,omitempty"`
	// Services maps a balanced service (smtp, imap, pop3) to VIP:port.
	Services map[string]string `json:"services,omitempty"`
	// BootTime is how long a node powered on by its power switch (a
	// fence agent's "on", or the second half of a "reboot") stays dark
	// before its init starts, as a real server spends in firmware and
	// boot loader: the cluster then sees what it sees in production, a
	// fenced node that is gone for a while, not one that rejoins during
	// the failover. `lab power on` boots at once.
	BootTime Duration `json:"boot_time"`
}

// DefaultBootTime is a lab node's boot time behind its power switch.
const DefaultBootTime = 30 * time.Second

// Duration is a time.Duration written as "30s" in lab.json.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("lab: boot_time %q: want a duration such as 30s", b)
	}
	*d = Duration(v)
	return nil
}

// Host returns the host called name (a node, a router, "workstation").
func (s *State) Host(name string) *Host {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Options tune Up. The zero value is the product's behaviour.
type Options struct {
	// Dir is the state directory; default Root/<site name>.
	Dir string
	// Executable is the mailfleet binary copied into the lab; default the
	// running executable.
	Executable string
	// Init is the command each node boots (inside its namespaces); "%s" in
	// an argument is replaced by the node's name. Default
	// InNodeExecutable lab init -node %s.
	Init []string
	// Timeout bounds the wait for every node's sshd; default 90s.
	Timeout time.Duration
	// BootTime is State.BootTime; zero means DefaultBootTime, negative
	// none (the node boots as soon as its switch turns it on).
	BootTime time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// DefaultInit is the init a node boots.
var DefaultInit = []string{InNodeExecutable, "lab", "init", "-node", "%s"}

// Lab is a lab's state and the operations on it.
type Lab struct {
	State
	mu  sync.Mutex
	log io.Writer
}

// DirFor is the state directory of site.
func DirFor(site string) string { return filepath.Join(Root, site) }

var siteNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Open loads the lab whose state directory is dir. It fails with an error
// wrapping os.ErrNotExist when there is no lab there.
func Open(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, fmt.Errorf("lab: no lab at %s (mailfleet lab up first): %w", dir, err)
	}
	l := &Lab{log: io.Discard}
	if err := json.Unmarshal(b, &l.State); err != nil {
		return nil, fmt.Errorf("lab: %s: %w", filepath.Join(dir, "lab.json"), err)
	}
	return l, nil
}

// SetLog sends progress lines to w.
func (l *Lab) SetLog(w io.Writer) {
	if w == nil {
		w = io.Discard
	}
	l.log = w
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.log, format+"\n", args...)
}

// save writes lab.json atomically.
func (l *Lab) save() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := json.MarshalIndent(&l.State, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(l.Dir, "lab.json")
	if err := os.WriteFile(p+".tmp", append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return os.Rename(p+".tmp", p)
}

// prefix is "mf" and a short hash of the site name.
func prefix(site string) string {
	h := sha256.Sum256([]byte(site))
	return "mf" + hex.EncodeToString(h[:2])
}

// Layout computes the lab of topology t without touching anything: names of
// namespaces, bridges and veths, every address and default route.
func Layout(t *spec.Topology, dir string) (*State, error) {
	site := t.Site.Name
	if !siteNameRE.MatchString(site) {
		return nil, fmt.Errorf("lab: site name %q cannot name a state directory (letters, digits, _ . - only)", site)
	}
	if dir == "" {
		dir = DirFor(site)
	}
	p := prefix(site)
	s := &State{Site: site, Dir: dir, Prefix: p, Switch: p + ".sw", Bridges: map[string]string{},
		Executable: filepath.Join(dir, "bin", "mailfleet"), Services: map[string]string{}}
	if len(t.Routers) == 0 {
		return nil, errors.New("lab: the topology has no router block: the lab routes the workstation to the nodes through one")
	}
	for i, n := range t.Networks {
		s.Bridges[n.Name] = "br" + strconv.Itoa(i)
	}
	s.Bridges[KindWorkstation] = "brws"
	veth := 0
	nextVeth := func() string {
		veth++
		return p + strconv.Itoa(veth)
	}
	iface := func(i int, n *spec.Network, a netip.Addr) Iface {
		return Iface{Name: "eth" + strconv.Itoa(i), Network: n.Name, Bridge: s.Bridges[n.Name], Veth: nextVeth(),
			Addr: netip.PrefixFrom(a, n.CIDR.Bits()), Zone: n.Zone}
	}
	taken := map[string]string{}
	addHost := func(h *Host) error {
		if other, ok := taken[h.NS]; ok {
			return fmt.Errorf("lab: %s and %s would share the namespace %s: rename one", other, h.Name, h.NS)
		}
		taken[h.NS] = h.Name
		s.Hosts = append(s.Hosts, h)
		return nil
	}
	// gateway is a host's default route on network n: the gateway when a
	// router has that address, else the router's address there, else the
	// gateway as written (nothing in the lab answers it).
	gateway := func(n *spec.Network) netip.Addr {
		var first netip.Addr
		for _, r := range t.Routers {
			for _, ri := range r.Interfaces {
				if ri.Network != n {
					continue
				}
				if ri.Address == n.Gateway {
					return ri.Address
				}
				if !first.IsValid() {
					first = ri.Address
				}
			}
		}
		if first.IsValid() {
			return first
		}
		return n.Gateway
	}
	for _, n := range t.Nodes {
		if n.SSH.User != "" && n.SSH.User != "root" {
			return nil, fmt.Errorf("lab: node %s logs in as %q: the lab authorizes the workstation's key for root only", n.Name, n.SSH.User)
		}
		h := &Host{Name: n.Name, Kind: KindNode, NS: p + "-" + n.Name, Hostname: n.Hostname,
			Names:  uniq([]string{n.FQDN(), n.Hostname, n.Name}),
			Ifaces: []Iface{iface(0, n.Network, n.Address)}, Gateway: gateway(n.Network), SSHPort: sshPort(n.SSH)}
		if err := addHost(h); err != nil {
			return nil, err
		}
	}
	for _, r := range t.Routers {
		if r.SSH.User != "" && r.SSH.User != "root" {
			return nil, fmt.Errorf("lab: router %s logs in as %q: the lab authorizes the workstation's key for root only", r.Name, r.SSH.User)
		}
		h := &Host{Name: r.Name, Kind: KindRouter, NS: p + "-" + r.Name, Hostname: r.Name, Forward: true, SSHPort: sshPort(r.SSH)}
		for i, ri := range r.Interfaces {
			h.Ifaces = append(h.Ifaces, iface(i, ri.Network, ri.Address))
			if ri.Network.Zone != "" {
				h.Names = append(h.Names, r.Name+"."+ri.Network.Zone)
			}
		}
		h.Names = uniq(append(h.Names, r.Name))
		if err := addHost(h); err != nil {
			return nil, err
		}
	}
	// The workstation: the first /30 of 100.64.0.0/10 that overlaps no
	// network of the topology, behind the first router.
	wsNet, err := workstationNet(t)
	if err != nil {
		return nil, err
	}
	router := s.Host(t.Routers[0].Name)
	rAddr := wsNet.Addr().Next()
	wsAddr := rAddr.Next()
	router.Ifaces = append(router.Ifaces, Iface{Name: "eth" + strconv.Itoa(len(router.Ifaces)), Network: KindWorkstation,
		Bridge: s.Bridges[KindWorkstation], Veth: nextVeth(), Addr: netip.PrefixFrom(rAddr, wsNet.Bits())})
	if err := addHost(&Host{Name: KindWorkstation, Kind: KindWorkstation, NS: p + ".ws", Gateway: rAddr,
		Ifaces: []Iface{{Name: "eth0", Network: KindWorkstation, Bridge: s.Bridges[KindWorkstation], Veth: nextVeth(),
			Addr: netip.PrefixFrom(wsAddr, wsNet.Bits())}}}); err != nil {
		return nil, err
	}
	for _, fd := range t.Fences {
		if !fd.Address.IsValid() {
			continue
		}
		var net *spec.Network
		for _, n := range t.Networks {
			if n.CIDR.Contains(fd.Address) {
				net = n
				break
			}
		}
		if net == nil {
			return nil, fmt.Errorf("lab: fence %s: address %s is in no network of the topology", fd.Name, fd.Address)
		}
		h := &Host{Name: "pdu-" + fd.Name, Kind: KindPDU, NS: p + ".pdu-" + fd.Name,
			Ifaces: []Iface{iface(0, net, fd.Address)}, Gateway: gateway(net)}
		if err := addHost(h); err != nil {
			return nil, err
		}
		pdu := &PDU{Fence: fd.Name, Host: h.Name, Login: fd.Login, Ports: map[int]string{}}
		for _, n := range t.Nodes {
			if n.Fence != nil && n.Fence.Device == fd {
				pdu.Ports[n.Fence.Port] = n.Name
			}
		}
		s.PDUs = append(s.PDUs, pdu)
	}
	for _, b := range t.Balancers {
		for _, svc := range b.Services {
			if _, ok := s.Services[svc.Name]; !ok {
				s.Services[svc.Name] = netip.AddrPortFrom(svc.VIP, uint16(svc.Port)).String()
			}
		}
	}
	return s, nil
}

func sshPort(s spec.SSH) int {
	if s.Port == 0 {
		return 22
	}
	return s.Port
}

func uniq(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func workstationNet(t *spec.Topology) (netip.Prefix, error) {
	shared := netip.MustParsePrefix("100.64.0.0/10")
	for a := shared.Addr(); shared.Contains(a); {
		p := netip.PrefixFrom(a, 30)
		free := true
		for _, n := range t.Networks {
			if n.CIDR.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v += 4
		a = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return netip.Prefix{}, errors.New("lab: no free /30 for the workstation in 100.64.0.0/10")
}

// Nodes returns the hosts that boot (nodes and routers), in state order.
func (s *State) Nodes() []*Host {
	var out []*Host
	for _, h := range s.Hosts {
		if h.Booted() {
			out = append(out, h)
		}
	}
	return out
}

func (s *State) nodeDir(name string) string { return filepath.Join(s.Dir, "nodes", name) }
func (s *State) mntFile(name string) string { return filepath.Join(s.nodeDir(name), "mnt") }

// nodeNSFiles are node's bound mount, UTS and IPC namespace files: its own
// file system, host name and System V IPC while it is on.
func (s *State) nodeNSFiles(name string) []string {
	d := s.nodeDir(name)
	return []string{filepath.Join(d, "mnt"), filepath.Join(d, "uts"), filepath.Join(d, "ipc")}
}

// enterArgs are nsenter's options to enter node h.
func (s *State) enterArgs(h *Host) []string {
	f := s.nodeNSFiles(h.Name)
	return []string{"--mount=" + f[0], "--uts=" + f[1], "--ipc=" + f[2], "--net=" + s.nsPath(h)}
}
func (s *State) KnownHosts() string             { return filepath.Join(s.Dir, "known_hosts") }
func (s *State) Identity() string               { return filepath.Join(s.Dir, "id_ed25519") }
func (s *State) nsPath(h *Host) string          { return "/run/netns/" + h.NS }
func (s *State) pduLog(fence string) string     { return filepath.Join(s.Dir, "pdu-"+fence+".log") }
func (s *State) initPIDFile(node string) string { return filepath.Join(s.nodeDir(node), "init.pid") }

// run runs a tool and returns its error with its standard error.
func run(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

func output(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = toolEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("lab: %s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func toolEnv() []string {
	return []string{"PATH=" + NodePATH, "LANG=C"}
}

// NodeEnv is the environment of processes the lab starts in a node.
func NodeEnv() []string {
	return []string{"PATH=" + NodePATH, "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash", "LANG=C.UTF-8"}
}

func sortedPorts(m map[int]string) []int {
	var ps []int
	for p := range m {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	return ps
}
