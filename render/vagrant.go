package render

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/templates"
)

const (
	vagrantfilePath = "/Vagrantfile"
	vagrantBox      = "debian/bookworm64"
	vagrantMemory   = 1024
)

// The Vagrantfile view holds Ruby literals, quoted here (vagrantRuby).
type vagrantView struct {
	Site     string // for the header comment
	Box      string
	Memory   int
	Machines []vagrantMachine
}

type vagrantMachine struct {
	Name     string
	Roles    string // for people: a comment
	Hostname string
	Networks []vagrantNetwork
	Packages string // an array literal
}

type vagrantNetwork struct {
	IP, Netmask string
	Network     string // libvirt's name for it
	HostIP      string // the workstation's address on it; "" when none is free
}

// renderVagrant writes a Vagrantfile for the admin's workstation: one VM per
// router and node, with the topology's addresses on private networks, each
// provisioned with mailfleetd and the Debian packages of its roles. It reads
// the hosts' packages, so it runs after every other renderer.
func renderVagrant(b *builder) error {
	v := vagrantView{Site: b.t.Site.Name, Box: vagrantRuby(b.t.Vagrant.Box), Memory: b.t.Vagrant.Memory}
	if b.t.Vagrant.Box == "" {
		v.Box = vagrantRuby(vagrantBox)
	}
	if v.Memory <= 0 {
		v.Memory = vagrantMemory
	}
	hostIPs := vagrantHostIPs(b.t)
	network := func(a netip.Addr, n *spec.Network) vagrantNetwork {
		bits := a.BitLen()
		if n != nil {
			bits = n.CIDR.Bits()
		}
		mask := strconv.Itoa(bits) // Vagrant takes a prefix length for IPv6
		if a.Is4() {
			mask = net.IP(net.CIDRMask(bits, 32)).String()
		}
		vn := vagrantNetwork{IP: vagrantRuby(a.String()), Netmask: vagrantRuby(mask)}
		if n != nil {
			vn.Network = vagrantRuby(b.t.Site.Name + "-" + n.Name)
			if h, ok := hostIPs[n]; ok {
				vn.HostIP = vagrantRuby(h.String())
			}
		}
		return vn
	}
	for _, r := range b.t.Routers {
		m := b.vagrantMachine(r.Name, r.Name)
		for _, i := range r.Interfaces {
			m.Networks = append(m.Networks, network(i.Address, i.Network))
		}
		v.Machines = append(v.Machines, m)
	}
	for _, n := range b.t.Nodes {
		m := b.vagrantMachine(n.Name, n.FQDN())
		m.Networks = []vagrantNetwork{network(n.Address, n.Network)}
		v.Machines = append(v.Machines, m)
	}
	content, err := templates.Execute("Vagrantfile.tmpl", v)
	if err != nil {
		return err
	}
	return b.add(WorkstationHost, &File{Path: vagrantfilePath, Mode: 0o644, Content: content})
}

func (b *builder) vagrantMachine(name, hostname string) vagrantMachine {
	h := b.host(name)
	pkgs := make([]string, len(h.Packages))
	for i, p := range h.Packages {
		pkgs[i] = vagrantRuby(p)
	}
	roles := "roles: none"
	if len(h.Roles) > 0 {
		roles = "roles: " + strings.Join(h.Roles, ", ")
	}
	return vagrantMachine{Name: vagrantRuby(name), Roles: roles, Hostname: vagrantRuby(hostname),
		Packages: "[" + strings.Join(pkgs, ", ") + "]"}
}

// vagrantHostIPs picks the workstation's address on each network: libvirt
// gives the host the first address of a network unless told otherwise, and
// that is usually the router's. The highest address that no node, router,
// VIP, fence device, gateway or record of the topology uses is free.
func vagrantHostIPs(t *spec.Topology) map[*spec.Network]netip.Addr {
	used := map[netip.Addr]bool{}
	for _, n := range t.Networks {
		used[n.Gateway] = true
		for _, r := range n.Records {
			used[r.Address] = true
		}
	}
	for _, r := range t.Routers {
		for _, i := range r.Interfaces {
			used[i.Address] = true
		}
	}
	for _, n := range t.Nodes {
		used[n.Address] = true
	}
	for _, f := range t.Fences {
		used[f.Address] = true
	}
	for _, bl := range t.Balancers {
		for _, s := range bl.Services {
			used[s.VIP] = true
		}
	}
	for _, i := range t.Instances {
		used[i.VIP] = true
	}
	if t.Directory != nil {
		used[t.Directory.VIP] = true
	}
	out := map[*spec.Network]netip.Addr{}
	for _, n := range t.Networks {
		p := n.CIDR.Masked()
		last := vagrantLastAddr(p)
		if p.Addr().Is4() && p.Bits() < 31 {
			last = last.Prev() // the broadcast address
		}
		for a := last; a.IsValid() && p.Contains(a) && a != p.Addr(); a = a.Prev() {
			if !used[a] {
				out[n] = a
				break
			}
		}
	}
	return out
}

// vagrantLastAddr is the highest address of p.
func vagrantLastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		switch host := p.Bits() - 8*i; {
		case host <= 0:
			b[i] = 0xff
		case host < 8:
			b[i] |= 0xff >> host
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// vagrantRubyEscaper escapes what a single-quoted Ruby literal must. It is
// made once: a Replacer builds its tables on first use, a cost that was
// paid again for every literal of the Vagrantfile.
var vagrantRubyEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// vagrantRuby is s as a single-quoted Ruby literal, in which nothing is
// interpolated.
func vagrantRuby(s string) string {
	return "'" + vagrantRubyEscaper.Replace(s) + "'"
}
