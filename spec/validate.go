package spec

import (
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// Validate checks a decoded topology for every mistake an integrator can
// make before anything touches a host. It is pure and fast: no I/O. A
// topology that is merely not highly available gets warnings; contradictions
// are errors.
func Validate(t *Topology) Diagnostics {
	v := &validator{t: t}
	v.names()
	v.addresses()
	v.dns()
	v.resolvers()
	v.fencing()
	v.storage()
	v.balancers()
	v.directory()
	v.connectors()
	v.frontends()
	v.instances()
	v.listeners()
	v.provisioning()
	v.availability()
	v.ds.Sort()
	return v.ds
}

type validator struct {
	t  *Topology
	ds Diagnostics
}

// backendNodes are the nodes that run clustered services.
func (t *Topology) BackendNodes() []*Node {
	seen := map[*Node]bool{}
	var out []*Node
	add := func(ns []*Node) {
		for _, n := range ns {
			if n != nil && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, in := range t.Instances {
		add(in.Nodes)
	}
	if t.Directory != nil {
		add(t.Directory.Nodes)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

func (v *validator) names() {
	for _, n := range v.t.Nodes {
		if !isDNSLabel(n.Name) {
			v.ds.errorf(n.Range, "Invalid node name", "node %q: node names are DNS labels (letters, digits, '-'), so that files are written under a directory of that name and nowhere else.", n.Name)
		}
		if n.Hostname != n.Name && !isDNSLabel(n.Hostname) {
			v.ds.errorf(n.At("hostname"), "Invalid hostname", "hostname %q of node %q is not a DNS label.", n.Hostname, n.Name)
		}
	}
	for _, r := range v.t.Routers {
		if !isDNSLabel(r.Name) {
			v.ds.errorf(r.Range, "Invalid router name", "router %q: router names are DNS labels.", r.Name)
		}
	}
	for _, n := range v.t.Networks {
		if n.Zone != "" && !isDomain(n.Zone) {
			v.ds.errorf(n.At("zone"), "Invalid DNS zone", "zone %q of network %q is not a domain name.", n.Zone, n.Name)
		}
		for _, r := range n.Records {
			if !isDNSLabel(r.Name) {
				v.ds.errorf(r.Range, "Invalid record name", "record %q in network %q is not a DNS label.", r.Name, n.Name)
			}
		}
	}
	for _, in := range v.t.Instances {
		if !isDNSLabel(in.Hostname) {
			v.ds.errorf(in.At("hostname"), "Invalid hostname", "hostname %q of mail_instance %q is not a DNS label.", in.Hostname, in.Name)
		}
		if strings.ContainsAny(in.LogName, "/\\ \t\n") || in.LogName == "." || in.LogName == ".." {
			v.ds.errorf(in.At("log_name"), "Invalid log name", "log_name %q must not contain slashes or spaces.", in.LogName)
		}
	}
	for _, b := range v.t.Balancers {
		for _, s := range b.Services {
			if !isDNSLabel(s.Name) {
				v.ds.errorf(s.Range, "Invalid service name", "service %q of balancer %q: service names become DNS names (smtp.<zone>), so they are DNS labels.", s.Name, b.Name)
			}
		}
	}
	if d := v.t.Directory; d != nil && !isDNSLabel(d.Hostname) {
		v.ds.errorf(d.At("hostname"), "Invalid hostname", "hostname %q of the directory is not a DNS label.", d.Hostname)
	}
}

// networkOf returns the network containing a.
func (t *Topology) networkOf(a netip.Addr) *Network {
	for _, n := range t.Networks {
		if n.CIDR.IsValid() && n.CIDR.Contains(a) {
			return n
		}
	}
	return nil
}

var (
	privateRanges = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("100.64.0.0/10"), // RFC 1918, RFC 6598
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"), // RFC 5737
		netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("2001:db8::/32"),
	}
)

func isPrivateOrDoc(a netip.Addr) bool {
	for _, p := range privateRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// owner is something that holds an IP address.
type owner struct {
	what string
	rng  Range
}

func (v *validator) addresses() {
	t := v.t
	for _, n := range t.Networks {
		if !n.CIDR.IsValid() {
			continue
		}
		if n.Gateway.IsValid() && !n.CIDR.Contains(n.Gateway) {
			v.ds.errorf(n.At("gateway"), "Address outside its network", "gateway %s is not inside %s.", n.Gateway, n.CIDR)
		}
		if !n.Public && (!isPrivateOrDoc(n.CIDR.Addr()) || !isPrivateOrDoc(lastAddr(n.CIDR))) {
			v.ds.warnf(n.At("cidr"), "Public address range", "network %q uses %s, which is neither private (RFC 1918, RFC 6598) nor documentation (RFC 5737). Say public = true if this range is really yours.", n.Name, n.CIDR)
		}
		for _, m := range t.Networks {
			if m != n && m.CIDR.IsValid() && n.Name < m.Name && m.CIDR.Overlaps(n.CIDR) {
				v.ds.errorf(m.At("cidr"), "Overlapping networks", "network %q (%s) overlaps network %q (%s).", m.Name, m.CIDR, n.Name, n.CIDR)
			}
		}
	}
	seen := map[netip.Addr]owner{}
	claim := func(a netip.Addr, what string, r Range, net *Network) {
		if !a.IsValid() {
			return
		}
		if net != nil && net.CIDR.IsValid() && !net.CIDR.Contains(a) {
			v.ds.errorf(r, "Address outside its network", "%s address %s is not inside network %q (%s).", what, a, net.Name, net.CIDR)
		}
		if net != nil && net.CIDR.IsValid() && net.CIDR.Contains(a) && (a == net.CIDR.Addr() || isBroadcast(net.CIDR, a)) {
			v.ds.errorf(r, "Unusable address", "%s address %s is the network or broadcast address of %s.", what, a, net.CIDR)
		}
		if first, dup := seen[a]; dup {
			d := Diagnostic{Severity: Error, Summary: "Duplicate address",
				Detail: fmt.Sprintf("%s uses %s, which %s already uses (%s:%d). Every node, interface and VIP needs its own address.", what, a, first.what, first.rng.File, first.rng.Line)}
			rr, fr := r, first.rng
			d.Subject, d.Related = &rr, &fr
			v.ds = append(v.ds, d)
			return
		}
		seen[a] = owner{what, r}
	}
	for _, r := range t.Routers {
		for i, it := range r.Interfaces {
			if it.Network != nil {
				claim(it.Address, fmt.Sprintf("router %q interface %d", r.Name, i+1), it.At("address"), it.Network)
			}
		}
	}
	for _, n := range t.Nodes {
		claim(n.Address, fmt.Sprintf("node %q", n.Name), n.At("address"), n.Network)
		if n.Network != nil && n.Address.IsValid() && !n.Network.Public && !isPrivateOrDoc(n.Address) && n.Network.CIDR.Contains(n.Address) {
			v.ds.warnf(n.At("address"), "Public address", "node %q has %s, outside the private and documentation ranges; say public = true on network %q if that is intended.", n.Name, n.Address, n.Network.Name)
		}
	}
	for _, f := range t.Fences {
		if f.Address.IsValid() && t.networkOf(f.Address) == nil {
			v.ds.errorf(f.At("address"), "Address outside every network", "fence device %q has %s, in none of the topology's networks; the cluster nodes must reach it.", f.Name, f.Address)
		}
		claim(f.Address, fmt.Sprintf("fence device %q", f.Name), f.At("address"), t.networkOf(f.Address))
	}
	// nodeVIP reports a VIP that is a node's own address.
	nodeVIP := func(a netip.Addr, what string, r Range) bool {
		for _, n := range t.Nodes {
			if n.Address == a {
				v.ds.errorf(r, "VIP is a node address", "%s VIP %s is the address of node %q. A virtual IP moves between nodes; it must be an address of its own.", what, a, n.Name)
				return true
			}
		}
		return false
	}
	vip := func(a netip.Addr, what string, r Range) {
		if !a.IsValid() {
			return
		}
		net := t.networkOf(a)
		if net == nil {
			v.ds.errorf(r, "Address outside every network", "%s VIP %s is in none of the topology's networks.", what, a)
		}
		if !nodeVIP(a, what, r) {
			claim(a, what, r, net)
		}
	}
	// The services of one balancer may share a VIP on different ports.
	vipOwner := map[netip.Addr]*Balancer{}
	for _, b := range t.Balancers {
		for _, s := range b.Services {
			what := fmt.Sprintf("balancer service %q", s.Name)
			if owner, ok := vipOwner[s.VIP]; ok && owner == b {
				nodeVIP(s.VIP, what, s.At("vip"))
				continue
			}
			vipOwner[s.VIP] = b
			vip(s.VIP, what, s.At("vip"))
		}
	}
	if d := t.Directory; d != nil {
		vip(d.VIP, "directory", d.At("vip"))
	}
	for _, in := range t.Instances {
		vip(in.VIP, fmt.Sprintf("mail_instance %q", in.Name), in.At("vip"))
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

// orRange is r, or def when r was never written.
func orRange(r, def Range) Range {
	if r.Line == 0 {
		return def
	}
	return r
}

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || p.Bits() >= 31 {
		return false
	}
	b := p.Addr().As4()
	host := 32 - p.Bits()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= (1 << host) - 1
	x := a.As4()
	return n == uint32(x[0])<<24|uint32(x[1])<<16|uint32(x[2])<<8|uint32(x[3])
}

// dns checks that every name in every zone is unique and that static
// records do not contradict the addresses of what mailfleet manages.
func (v *validator) dns() {
	type entry struct {
		addr netip.Addr
		what string
		rng  Range
	}
	names := map[string]entry{}
	add := func(fqdn string, a netip.Addr, what string, r Range) {
		if !a.IsValid() {
			return
		}
		fqdn = strings.ToLower(fqdn)
		if first, ok := names[fqdn]; ok {
			rr, fr := r, first.rng
			isRecord := strings.HasPrefix(what, "record ") || strings.HasPrefix(first.what, "record ")
			if first.addr != a && isRecord {
				v.ds = append(v.ds, Diagnostic{Severity: Error, Summary: "Conflicting DNS name", Subject: &rr, Related: &fr,
					Detail: fmt.Sprintf("%s gives %s the address %s, but %s gives it %s (%s:%d).", what, fqdn, a, first.what, first.addr, first.rng.File, first.rng.Line)})
			} else if isRecord {
				v.ds = append(v.ds, Diagnostic{Severity: Warning, Summary: "Redundant DNS record", Subject: &rr, Related: &fr,
					Detail: fmt.Sprintf("%s repeats %s = %s, which %s already gives it; remove the record.", what, fqdn, a, first.what)})
			} else {
				v.ds = append(v.ds, Diagnostic{Severity: Error, Summary: "Duplicate FQDN", Subject: &rr, Related: &fr,
					Detail: fmt.Sprintf("%s and %s (%s:%d) are both named %s.", what, first.what, first.rng.File, first.rng.Line, fqdn)})
			}
			return
		}
		names[fqdn] = entry{a, what, r}
	}
	for _, r := range v.t.Routers {
		for _, it := range r.Interfaces {
			if it.Network != nil {
				add(r.Name+"."+it.Network.Zone, it.Address, fmt.Sprintf("router %q", r.Name), it.At("address"))
			}
		}
	}
	for _, n := range v.t.Nodes {
		if n.Network != nil {
			add(n.FQDN(), n.Address, fmt.Sprintf("node %q", n.Name), n.At("hostname"))
		}
	}
	for _, b := range v.t.Balancers {
		for _, s := range b.Services {
			if net := v.t.networkOf(s.VIP); net != nil {
				add(s.Name+"."+net.Zone, s.VIP, fmt.Sprintf("balancer service %q", s.Name), s.Range)
			}
		}
	}
	if d := v.t.Directory; d != nil {
		if net := v.t.networkOf(d.VIP); net != nil {
			add(d.Hostname+"."+net.Zone, d.VIP, "the directory", d.At("vip"))
		}
	}
	for _, in := range v.t.Instances {
		if net := v.t.networkOf(in.VIP); net != nil {
			add(in.Hostname+"."+net.Zone, in.VIP, fmt.Sprintf("mail_instance %q", in.Name), in.At("vip"))
		}
	}
	for _, n := range v.t.Networks {
		for _, r := range n.Records {
			if n.CIDR.IsValid() && r.Address.IsValid() && v.t.networkOf(r.Address) == nil {
				v.ds.warnf(r.At("address"), "Record outside every network", "record %q points at %s, outside the topology's networks.", r.Name, r.Address)
			}
			add(r.Name+"."+n.Zone, r.Address, fmt.Sprintf("record %q of zone %s", r.Name, n.Zone), r.At("address"))
		}
	}
}

// resolvers checks that every node resolves through the DNS router, with its
// own zone first, and that a tier's services use the same server as its
// hosts (the reference: "all the machines must use the same DNS server").
func (v *validator) resolvers() {
	dnsAddrs := map[netip.Addr]bool{}
	hasDNS := false
	for _, r := range v.t.Routers {
		if r.DNS {
			hasDNS = true
			for _, i := range r.Interfaces {
				dnsAddrs[i.Address] = true
			}
		}
	}
	for _, n := range v.t.Networks {
		for _, ns := range n.Resolver.Nameservers {
			if hasDNS && !dnsAddrs[ns.Address] {
				v.ds.errorf(ns.At("address"), "Nameserver is not the DNS router", "network %q resolves through %s, which is not an address of a router with dns = true; the zones are served there.", n.Name, ns.Address)
			}
		}
		if len(n.Resolver.Search) > 0 && n.Zone != "" && !strings.EqualFold(n.Resolver.Search[0], n.Zone) {
			v.ds.errorf(n.Resolver.At("search"), "Search list not led by the network's zone", "nodes of network %q would look up short names in %s first, but their own zone is %s; put %s first.", n.Name, n.Resolver.Search[0], n.Zone, n.Zone)
		}
	}
	same := func(a, b []Nameserver) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i].Address != b[i].Address {
				return false
			}
		}
		return true
	}
	list := func(ns []Nameserver) string {
		var s []string
		for _, n := range ns {
			s = append(s, n.Address.String())
		}
		return strings.Join(s, ", ")
	}
	for _, f := range v.t.Frontends {
		if len(f.Resolver.Nameservers) == 0 {
			continue
		}
		for _, n := range f.Nodes {
			if n != nil && n.Network != nil && !same(f.Resolver.Nameservers, n.Network.Resolver.Nameservers) {
				v.ds.errorf(orRange(f.Resolver.Range, f.Range), "Inconsistent nameservers", "frontend %q resolves through %s, but its node %q (network %q) resolves through %s. Every host and service of a tier must use the same DNS server.", f.Name, list(f.Resolver.Nameservers), n.Name, n.Network.Name, list(n.Network.Resolver.Nameservers))
				break
			}
		}
	}
	for _, in := range v.t.Instances {
		for _, n := range in.Nodes {
			if n != nil && n.Network != nil && len(in.Resolver.Nameservers) > 0 && !same(in.Resolver.Nameservers, n.Network.Resolver.Nameservers) {
				v.ds.errorf(orRange(in.Resolver.Range, in.Range), "Inconsistent nameservers", "mail_instance %q resolves through %s, but its node %q resolves through %s.", in.Name, list(in.Resolver.Nameservers), n.Name, list(n.Network.Resolver.Nameservers))
				break
			}
		}
	}
}

func (v *validator) fencing() {
	for _, f := range v.t.Fences {
		if f.Agent == "" {
			v.ds.errorf(f.Range, "Missing fence agent", "fence %q needs agent, the Pacemaker fence agent that drives it (for example \"fence_apc\" or \"fence_ipmilan\").", f.Name)
		} else if !strings.HasPrefix(f.Agent, "fence_") {
			v.ds.errorf(f.At("agent"), "Invalid fence agent", "agent %q is not a fence agent name (fence_*).", f.Agent)
		}
		used := map[int]*Node{}
		count := 0
		for _, n := range v.t.Nodes {
			if n.Fence == nil || n.Fence.Device != f {
				continue
			}
			count++
			p := n.Fence.Port
			if p == 0 || f.Ports == 0 {
				continue // not decoded: already reported
			}
			if p < 1 || p > f.Ports {
				v.ds.errorf(n.At("fence.port"), "Fence port out of range", "node %q uses port %d of fence %q, which has ports 1 to %d.", n.Name, p, f.Name, f.Ports)
			}
			if other, ok := used[p]; ok {
				v.ds.errorf(n.At("fence.port"), "Fence port shared", "nodes %q and %q both use port %d of fence %q; fencing one would cut the other.", other.Name, n.Name, p, f.Name)
			}
			used[p] = n
		}
		if f.Ports > 0 && count > f.Ports {
			v.ds.errorf(f.At("ports"), "Too many nodes on a fence device", "fence %q has %d ports but %d nodes use it; add a fence device.", f.Name, f.Ports, count)
		}
	}
}

func (v *validator) storage() {
	type use struct {
		what string
		rng  Range
	}
	uses := map[*Partition][]use{}
	note := func(p *Partition, what string, r Range) {
		if p != nil {
			uses[p] = append(uses[p], use{what, r})
		}
	}
	if d := v.t.Directory; d != nil {
		note(d.Data, "the directory's data", d.At("data"))
	}
	for _, in := range v.t.Instances {
		note(in.Storage, fmt.Sprintf("mail_instance %q storage", in.Name), in.At("storage"))
		note(in.Queue, fmt.Sprintf("mail_instance %q queue", in.Name), in.At("queue"))
		note(in.Run, fmt.Sprintf("mail_instance %q run", in.Name), in.At("run"))
	}
	mounts := map[string]*Partition{}
	devices := map[string]*Partition{}
	for _, s := range v.t.Storages {
		for _, d := range s.Disks {
			for _, p := range d.Partitions {
				u := uses[p]
				switch {
				case len(u) == 0:
					v.ds.errorf(p.Range, "Unused partition", "partition %q of disk %q belongs to no service; every partition belongs to exactly one (the directory's data, or an instance's storage, queue or run).", p.Name, d.Name)
				case len(u) > 1:
					for _, extra := range u[1:] {
						v.ds.errorf(extra.rng, "Partition used twice", "partition %q is used as %s and as %s; each partition belongs to exactly one service and purpose.", p.Name, u[0].what, extra.what)
					}
				}
				bind := p.FSType == "none"
				switch {
				case p.Device == "":
				case bind && (!strings.HasPrefix(p.Device, "/") || strings.Contains(p.Device, "..")):
					v.ds.errorf(p.At("device"), "Invalid device", "device %q of partition %q must be an absolute path without '..' (the directory it bind-mounts).", p.Device, p.Name)
				case !bind && !strings.HasPrefix(p.Device, "/dev/"):
					v.ds.errorf(p.At("device"), "Invalid device", "device %q of partition %q must be a path under /dev.", p.Device, p.Name)
				}
				if p.Options != "" && strings.ContainsAny(p.Options, "\"'`\\ \t\r\n") {
					v.ds.errorf(p.At("options"), "Invalid mount options", "options %q of partition %q must be mount -o options: comma separated, without spaces, quotes or backslashes.", p.Options, p.Name)
				} else if bind && !hasMountOption(p.Options, "bind", "rbind") {
					v.ds.errorf(p.At("fstype"), "Bind mount without bind", "partition %q has fstype \"none\", which only a bind mount uses: set options = \"bind\" (or rbind).", p.Name)
				}
				if first, ok := devices[p.Device]; ok && p.Device != "" {
					v.ds.errorf(p.At("device"), "Duplicate device", "partitions %q and %q are both %s.", first.Name, p.Name, p.Device)
				}
				devices[p.Device] = p
				if p.Mountpoint != "" {
					if !strings.HasPrefix(p.Mountpoint, "/") || strings.Contains(p.Mountpoint, "..") {
						v.ds.errorf(p.At("mountpoint"), "Invalid mount point", "mountpoint %q must be an absolute path without '..'.", p.Mountpoint)
					}
					if first, ok := mounts[p.Mountpoint]; ok {
						v.ds.errorf(p.At("mountpoint"), "Duplicate mount point", "partitions %q and %q are both mounted on %s; one would hide the other.", first.Name, p.Name, p.Mountpoint)
					}
					mounts[p.Mountpoint] = p
				}
				switch p.FSType {
				case "ext4", "ext3", "xfs", "gfs2", "ocfs2", "btrfs", "none":
				default:
					v.ds.errorf(p.At("fstype"), "Unsupported filesystem", "fstype %q of partition %q is not one of ext4, ext3, xfs, gfs2, ocfs2, btrfs, none (a bind mount).", p.FSType, p.Name)
				}
			}
		}
	}
	// A service may only run on nodes that reach the disks of its partitions.
	reach := func(svc string, nodes []*Node, parts []*Partition, r Range) {
		for _, p := range parts {
			if p == nil || len(p.Disk.Nodes) == 0 {
				continue
			}
			for _, n := range nodes {
				ok := false
				for _, m := range p.Disk.Nodes {
					if m == n {
						ok = true
					}
				}
				if !ok && n != nil {
					v.ds.errorf(r, "Node cannot reach storage", "%s may run on node %q, but its partition %q is on disk %q, which only %s can reach.", svc, n.Name, p.Name, p.Disk.Name, nodeNames(p.Disk.Nodes))
				}
			}
		}
	}
	if d := v.t.Directory; d != nil {
		reach("the directory", d.Nodes, []*Partition{d.Data}, d.At("nodes"))
	}
	for _, in := range v.t.Instances {
		reach(fmt.Sprintf("mail_instance %q", in.Name), in.Nodes, []*Partition{in.Storage, in.Queue, in.Run}, in.At("nodes"))
	}
}

func nodeNames(ns []*Node) string {
	var s []string
	for _, n := range ns {
		if n != nil {
			s = append(s, n.Name)
		}
	}
	return strings.Join(s, ", ")
}

func (v *validator) balancers() {
	frontNodes := map[*Node]bool{}
	for _, f := range v.t.Frontends {
		for _, n := range f.Nodes {
			frontNodes[n] = true
		}
	}
	for _, b := range v.t.Balancers {
		if len(b.Nodes) > 2 {
			v.ds.errorf(b.At("nodes"), "Too many balancer nodes", "balancer %q has %d nodes; a VRRP pair has two.", b.Name, len(b.Nodes))
		}
		if a := b.VRRP.Advert; a > 0 {
			switch {
			case b.VRRP.HasPassword() && (a%time.Second != 0 || a > 255*time.Second):
				v.ds.errorf(b.VRRP.At("advert_interval"), "Invalid advert interval", "balancer %q: with a password the pair speaks VRRPv2, whose advert interval is whole seconds from 1s to 255s, not %s.", b.Name, a)
			case a%(10*time.Millisecond) != 0 || a > 40950*time.Millisecond:
				v.ds.errorf(b.VRRP.At("advert_interval"), "Invalid advert interval", "balancer %q: the VRRPv3 advert interval is a multiple of 10ms up to 40.95s, not %s.", b.Name, a)
			}
		}
		for _, s := range b.Services {
			switch s.Protocol {
			case "smtp", "imap", "pop3":
			default:
				v.ds.errorf(s.At("protocol"), "Unknown protocol", "service %q: protocol %q is not smtp, imap or pop3 (it decides the health check's greeting); set protocol when the name is not one of them.", s.Name, s.Protocol)
			}
			switch s.Scheduler {
			case LeastConn, WeightedLeastConn, RoundRobin:
			default:
				v.ds.errorf(s.At("scheduler"), "Unknown scheduler", "scheduler %q is not least_conn, weighted_least_conn or round_robin.", s.Scheduler)
			}
			if len(s.Backends) == 0 {
				v.ds.errorf(s.Range, "No real servers", "service %q has no backends.", s.Name)
			}
			seen := map[*Node]bool{}
			weighted := false
			for _, rs := range s.Backends {
				if rs.Node == nil {
					continue
				}
				if !frontNodes[rs.Node] {
					v.ds.errorf(rs.Range, "Real server is not a front-end node", "service %q balances onto node %q, which is not a node of any frontend; the balancer only sends clients to front-end nodes.", s.Name, rs.Node.Name)
				}
				if seen[rs.Node] {
					v.ds.errorf(rs.Range, "Duplicate real server", "node %q is listed twice in service %q.", rs.Node.Name, s.Name)
				}
				seen[rs.Node] = true
				if rs.Weight != 1 {
					weighted = true
				}
			}
			if weighted && s.Scheduler != WeightedLeastConn {
				v.ds.errorf(s.At("scheduler"), "Weights without a weighted scheduler", "service %q gives its backends weights, but scheduler %q ignores them; use weighted_least_conn.", s.Name, s.Scheduler)
			}
			if s.Health.Timeout > s.Health.Interval {
				v.ds.errorf(s.Health.At("timeout"), "Health check timeout too long", "timeout %s is longer than the interval %s.", s.Health.Timeout, s.Health.Interval)
			}
		}
	}
}

func (v *validator) directory() {
	d := v.t.Directory
	if d == nil {
		if len(v.t.Frontends) > 0 || len(v.t.Instances) > 0 {
			v.ds = append(v.ds, Diagnostic{Severity: Error, Summary: "Missing directory", Detail: "Front-ends and instances find accounts in the location directory; add a directory block."})
		}
		return
	}
	if d.TLSMode != LDAPTLSNone && d.TLS == nil {
		v.ds.errorf(d.At("tls_mode"), "TLS without certificate", "tls_mode %q needs a tls block with cert and key.", d.TLSMode)
	}
	if d.AdminDN == d.ServiceDN && d.AdminDN != "" {
		v.ds.errorf(d.At("service_dn"), "Service DN is the admin DN", "the read-only service DN must not be the admin DN: the front-ends hold its password.")
	}
	if d.AdminPassword.Known && d.ServicePassword.Known && d.AdminPassword.Value == d.ServicePassword.Value {
		v.ds.errorf(d.At("service_password"), "Service password is the admin password", "the service DN must have its own password; front-ends hold it.")
	}
	v.ldapChecks(d)
}

func (v *validator) connectors() {
	d := v.t.Directory
	for _, c := range v.t.Connectors {
		if d == nil {
			continue
		}
		if c.BindDN != "" && c.BindDN == d.AdminDN {
			v.ds.errorf(c.At("bind_dn"), "Connector binds as the directory admin", "ldap_connector %q binds as %s, the admin DN. Front-ends and stores must not hold the admin password; bind as the read-only service DN (%s).", c.Name, c.BindDN, d.ServiceDN)
		}
		if c.URL != "" && d.VIP.IsValid() {
			v.connectorURL(c, d)
		}
		if c.Base != "" && d.Base != "" && !withinBase(c.Base, d.Base) {
			v.ds.errorf(c.At("base"), "Search base outside the directory", "base %q is not inside the directory's suffix %q.", c.Base, d.Base)
		}
		if c.BindDN != d.AdminDN && c.BindDN != d.ServiceDN && !c.BindPassword.Known && c.BindPassword.Source == "" {
			v.ds.errorf(c.At("bind_dn"), "Missing bind password", "ldap_connector %q binds as %s; give bind_password.", c.Name, c.BindDN)
		}
	}
}

// connectorURL checks that a connector reaches the directory at its VIP
// (or its name), on its port, with its TLS mode: never a node, which the
// directory leaves when it fails over.
func (v *validator) connectorURL(c *LDAPConnector, d *Directory) {
	r := c.At("url")
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		v.ds.errorf(r, "Invalid LDAP URL", "url %q must be ldap://HOST[:PORT] or ldaps://HOST[:PORT], with nothing after the host.", c.URL)
		return
	}
	if (u.Scheme == "ldaps") != (d.TLSMode == LDAPTLSLDAPS) {
		v.ds.errorf(r, "Connector URL does not match the directory", "url %q uses %s, but the directory's tls_mode is %q; use %s.", c.URL, u.Scheme, d.TLSMode, d.URL())
		return
	}
	var port int
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			v.ds.errorf(r, "Invalid LDAP URL", "url %q has an invalid port.", c.URL)
			return
		}
		port = n
	} else if u.Scheme == "ldap" {
		port = 389
	} else {
		port = 636
	}
	host := u.Hostname()
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		if fqdn := v.directoryFQDN(d); !strings.EqualFold(strings.TrimSuffix(host, "."), fqdn) {
			v.ds.errorf(r, "Connector does not name the directory", "url %q names %s; use the directory's VIP (%s) or its name %s.", c.URL, host, d.URL(), fqdn)
			return
		}
	case a != d.VIP:
		what := "an address that is not the directory's VIP"
		for _, n := range v.t.Nodes {
			if n.Address == a {
				what = fmt.Sprintf("node %q, not the directory's service VIP", n.Name)
			}
		}
		v.ds.errorf(r, "Connector points at a node, not the directory VIP", "url %q names %s (%s). When that node fails the directory moves and the connector loses it; use %s.", c.URL, what, a, d.URL())
		return
	}
	if port != d.Port {
		v.ds.errorf(r, "Connector URL does not match the directory", "url %q uses port %d, but the directory listens on %d.", c.URL, port, d.Port)
	}
}

func (v *validator) directoryFQDN(d *Directory) string {
	if n := v.t.networkOf(d.VIP); n != nil {
		return d.Hostname + "." + n.Zone
	}
	return d.Hostname
}

// withinBase reports whether dn is base or below it (at an RDN boundary).
func withinBase(dn, base string) bool {
	dn, base = strings.ToLower(strings.TrimSpace(dn)), strings.ToLower(strings.TrimSpace(base))
	return dn == base || strings.HasSuffix(dn, ","+base)
}

func (v *validator) frontends() {
	for _, f := range v.t.Frontends {
		if f.IMAP == nil && f.POP3 == nil && f.SMTP == nil {
			v.ds.errorf(f.Range, "Front-end serves nothing", "frontend %q has no imap, pop3 or smtp block.", f.Name)
		}
		for i, d := range f.Domains {
			if !isDomain(d) {
				v.ds.errorf(f.At("domains"), "Invalid mail domain", "domains[%d] = %q is not a domain name.", i, d)
			}
		}
		if f.Domains != nil && len(f.Domains) == 0 {
			v.ds.errorf(f.At("domains"), "No mail domains", "frontend %q serves no domain; mail for other domains is refused (no open relay), so list the served domains.", f.Name)
		}
		// Kernel limits: the reference counts three descriptors per proxied
		// session (client, backend, LDAP).
		if f.Sessions > 0 {
			need := 3 * f.Sessions
			for _, n := range f.Nodes {
				if n != nil && n.Kernel != nil && n.Kernel.FileMax > 0 && n.Kernel.FileMax < need {
					v.ds.errorf(n.Kernel.At("file_max"), "Kernel limit too low for the expected sessions", "frontend %q expects %d concurrent sessions per node, which take about %d descriptors (3 each: client, backend, LDAP), but kernel %q sets fs.file-max = %d on node %q.", f.Name, f.Sessions, need, n.Kernel.Name, n.Kernel.FileMax, n.Name)
					break
				}
				if n != nil && n.Kernel != nil && n.Kernel.LocalPortRange[1] > 0 {
					ports := n.Kernel.LocalPortRange[1] - n.Kernel.LocalPortRange[0] + 1
					if ports < f.Sessions {
						v.ds.errorf(n.Kernel.At("ip_local_port_range"), "Too few local ports for the expected sessions", "kernel %q allows %d local ports, fewer than the %d sessions frontend %q expects (each opens a connection to a backend).", n.Kernel.Name, ports, f.Sessions, f.Name)
						break
					}
				}
			}
		}
	}
}

func (v *validator) instances() {
	backendNets := map[*Network]bool{}
	for _, in := range v.t.Instances {
		if in.Network != nil {
			backendNets[in.Network] = true
		}
		for _, k := range []string{"smtp", "imap", "pop3", "admin"} {
			if _, ok := in.Listeners[k]; !ok && in.Listeners != nil {
				v.ds.errorf(in.At("listeners"), "Missing listener", "mail_instance %q needs a %s listener.", in.Name, k)
			}
		}
		seen := map[*Node]bool{}
		for i, n := range in.Nodes {
			if n == nil {
				continue
			}
			if seen[n] {
				v.ds.errorf(in.At(fmt.Sprintf("nodes[%d]", i)), "Duplicate node", "node %q appears twice in the node list of mail_instance %q.", n.Name, in.Name)
			}
			seen[n] = true
			if in.Network != nil && n.Network != nil && n.Network != in.Network {
				v.ds.errorf(in.At(fmt.Sprintf("nodes[%d]", i)), "Node outside the VIP's network", "mail_instance %q has its VIP in network %q but may run on node %q of network %q; IPaddr2 can only raise the VIP on a node of its network.", in.Name, in.Network.Name, n.Name, n.Network.Name)
			}
		}
		if in.Connector == nil && len(v.t.Connectors) > 1 {
			v.ds.errorf(in.Range, "Ambiguous connector", "mail_instance %q names no connector and the topology has several; set connector.", in.Name)
		}
	}
	if d := v.t.Directory; d != nil {
		for i, n := range d.Nodes {
			if n != nil && d.VIP.IsValid() && n.Network != nil && n.Network.CIDR.IsValid() && !n.Network.CIDR.Contains(d.VIP) {
				v.ds.errorf(d.At(fmt.Sprintf("nodes[%d]", i)), "Node outside the VIP's network", "the directory's VIP %s is not in the network of node %q.", d.VIP, n.Name)
			}
		}
	}
	for _, f := range v.t.Frontends {
		if f.DefaultRoute != nil && f.IMAP != nil && f.IMAP.AuthenticateOnProxy && (f.POP3 == nil || f.POP3.AuthenticateOnProxy) && f.SMTP == nil {
			v.ds.warnf(f.At("default_route"), "Default route never used", "frontend %q authenticates on the proxy, so unknown accounts are refused there and the default route is never taken.", f.Name)
		}
	}
}

// listeners checks that no two services listen on one address and port.
func (v *validator) listeners() {
	type key struct {
		a netip.Addr
		p int
	}
	seen := map[key]owner{}
	claim := func(a netip.Addr, port int, what string, r Range) {
		if !a.IsValid() || port == 0 {
			return
		}
		k := key{a, port}
		if first, ok := seen[k]; ok {
			rr, fr := r, first.rng
			v.ds = append(v.ds, Diagnostic{Severity: Error, Summary: "Listener collision", Subject: &rr, Related: &fr,
				Detail: fmt.Sprintf("%s and %s both listen on %s.", what, first.what, netip.AddrPortFrom(a, uint16(port)))})
			return
		}
		seen[k] = owner{what, r}
	}
	for _, b := range v.t.Balancers {
		for _, s := range b.Services {
			claim(s.VIP, s.Port, fmt.Sprintf("balancer service %q", s.Name), s.At("port"))
		}
		for _, n := range b.Nodes {
			if n != nil {
				claim(n.Address, config.BalancerAdminPort, fmt.Sprintf("the balancer's admin listener on %q", n.Name), b.Range)
			}
		}
	}
	for _, f := range v.t.Frontends {
		for _, n := range f.Nodes {
			if n == nil {
				continue
			}
			if f.IMAP != nil {
				claim(n.Address, f.IMAP.Port, fmt.Sprintf("frontend %q imap on %q", f.Name, n.Name), f.IMAP.At("port"))
			}
			if f.POP3 != nil {
				claim(n.Address, f.POP3.Port, fmt.Sprintf("frontend %q pop3 on %q", f.Name, n.Name), f.POP3.At("port"))
			}
			if f.SMTP != nil {
				claim(n.Address, f.SMTP.Port, fmt.Sprintf("frontend %q smtp on %q", f.Name, n.Name), f.SMTP.At("port"))
			}
			claim(n.Address, config.FrontendAdminPort, fmt.Sprintf("frontend %q admin listener on %q", f.Name, n.Name), f.Range)
		}
	}
	if d := v.t.Directory; d != nil {
		claim(d.VIP, d.Port, "the directory", d.At("port"))
	}
	for _, in := range v.t.Instances {
		ports := map[int]string{}
		for _, k := range sortedKeys(in.Listeners) {
			p := in.Listeners[k]
			if other, ok := ports[p]; ok {
				v.ds.errorf(in.At("listeners"), "Listener collision", "mail_instance %q listens with %s and %s on port %d.", in.Name, other, k, p)
				continue
			}
			ports[p] = k
			claim(in.VIP, p, fmt.Sprintf("mail_instance %q %s", in.Name, k), in.At("listeners"))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (v *validator) provisioning() {
	p := v.t.Provisioning
	if p == nil {
		return
	}
	byName := map[string]*Instance{}
	for _, in := range v.t.Instances {
		byName[in.Name] = in
	}
	switch p.Policy {
	case PolicyRandom, PolicyLeastUsed:
	case PolicyWeightedRandom:
		if len(p.Weights) == 0 {
			v.ds.errorf(p.At("policy"), "Missing weights", "policy weighted_random needs weights = { INSTANCE = N, ... }.")
		}
		total := 0
		for _, w := range p.Weights {
			total += w
		}
		if len(p.Weights) > 0 && total == 0 {
			v.ds.errorf(p.At("weights"), "All weights are zero", "weighted_random needs at least one instance with a weight above zero.")
		}
	case PolicyDomain:
		if len(p.Domains) == 0 {
			v.ds.errorf(p.At("policy"), "Missing domain table", "policy domain needs domains = { \"example.com\" = mail_instance.NAME }.")
		}
	default:
		v.ds.errorf(p.At("policy"), "Unknown policy", "policy %q is not random, weighted_random, least_used or domain.", p.Policy)
	}
	for _, name := range sortedKeys(p.Weights) {
		if byName[name] == nil {
			v.ds.errorf(p.At("weights"), "Weight for an unknown instance", "weights names %q, which is not a mail_instance.", name)
		}
	}
	served := map[string]bool{}
	for _, f := range v.t.Frontends {
		for _, d := range f.Domains {
			served[d] = true
		}
	}
	for _, dom := range sortedKeys(p.Domains) {
		if !isDomain(dom) {
			v.ds.errorf(p.At("domains."+dom), "Invalid mail domain", "%q is not a domain name.", dom)
		} else if len(served) > 0 && !served[dom] {
			v.ds.errorf(p.At("domains."+dom), "Domain not served", "domain %q has a home instance but no frontend serves it.", dom)
		}
	}
}

// availability warns about what makes the site not highly available.
func (v *validator) availability() {
	t := v.t
	for _, f := range t.Frontends {
		if len(f.Nodes) < 2 {
			v.ds.warnf(f.At("nodes"), "Single front-end node", "frontend %q has %d node; with fewer than two, the failure of one stops the service.", f.Name, len(f.Nodes))
		}
	}
	if len(t.Frontends) > 0 && len(t.Balancers) == 0 {
		v.ds = append(v.ds, Diagnostic{Severity: Warning, Summary: "No balancer", Detail: "No balancer spreads clients over the front-end nodes."})
	}
	for _, b := range t.Balancers {
		if len(b.Nodes) == 1 {
			v.ds.warnf(b.At("nodes"), "Single balancer", "balancer %q has one node; a second one (a VRRP pair) removes this single point of failure.", b.Name)
		}
		if b.VRRP.HasPassword() {
			v.ds.warnf(b.VRRP.At("password"), "VRRP password",
				"balancer %q sets a VRRP password: authentication exists only in VRRPv2 (RFC 2338; RFC 3768 removed it in 2004, since the password crosses the network in clear), whose adverts come in whole seconds, so the VIPs move about %s after the master fails. Without the password the pair speaks VRRPv3, unicast between the two balancers and accepting adverts only from each other, and moves the VIPs in under a second.",
				b.Name, 3*b.VRRP.AdvertInterval()+b.VRRP.AdvertInterval()/2)
		}
	}
	for _, in := range t.Instances {
		if len(in.Nodes) == 1 {
			v.ds.warnf(in.At("nodes"), "No failover node", "mail_instance %q can run on one node only; list a standby to fail over to.", in.Name)
		}
	}
	if d := t.Directory; d != nil && len(d.Nodes) == 1 {
		v.ds.warnf(d.At("nodes"), "Single directory node", "the directory can run on one node only; list a second one.")
	}
	if members := t.BackendNodes(); len(members) == 2 {
		v.ds.warnf(members[1].Range, "Two-node cluster",
			"the backend cluster has two nodes, %s and %s: corosync runs in two-node mode (two_node, with wait_for_all), so either node keeps quorum alone. When the two lose each other both ask to fence the other; a random fence delay (up to 5 s) lets one of them win, at the price of that delay in every failover. After a full stop neither runs anything until both have been up together once. A third cluster node removes the race and the delay.",
			members[0].Name, members[1].Name)
	}
	for _, n := range t.BackendNodes() {
		if n.Fence == nil {
			v.ds.warnf(n.Range, "Node without fencing", "node %q runs clustered services but has no fence port; without fencing, a failed node's services cannot safely move.", n.Name)
		}
	}
}

// hasMountOption reports whether the comma-separated mount options opts hold
// one of names.
func hasMountOption(opts string, names ...string) bool {
	for _, o := range strings.Split(opts, ",") {
		for _, n := range names {
			if o == n {
				return true
			}
		}
	}
	return false
}
