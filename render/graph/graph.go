// Package graph draws the picture behind `mailfleet graph`: the tiers of a
// topology (Internet, load balancer, front-end, backend), the hosts and
// virtual addresses in them, and how traffic, routing, failover and fencing
// connect them.
//
// DOT writes Graphviz input; SVG lays the same diagram out itself (a layered,
// Sugiyama-style layout) so that no Graphviz is needed. Both are pure
// functions of the topology: the same topology gives the same bytes.
// Like all of render it imports only spec (and runtime/config's
// constants): no network, no programs, no daemons.
package graph

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
)

// Render draws t in format "svg" or "dot".
func Render(t *spec.Topology, format string) ([]byte, error) {
	switch format {
	case "svg":
		return SVG(t), nil
	case "dot":
		return DOT(t), nil
	}
	return nil, fmt.Errorf("graph: unknown format %q: want svg or dot", format)
}

// kind is what a box in the diagram stands for; it decides its shape and
// colour.
type kind int

const (
	kindClients kind = iota
	kindRouter
	kindBalancer
	kindVIP
	kindFrontend
	kindRouting // a front-end group's "routes by mailHost" note
	kindDirectory
	kindInstance
	kindBackend
	kindStandby
	kindFence
	kindOther
)

// edgeClass is what an arrow means; it decides its line style and colour.
type edgeClass int

const (
	edgeTraffic  edgeClass = iota // clients → VIP → real server
	edgeMember                    // front-end node → its group's routing note
	edgeRoutes                    // routing note → instance
	edgeLookups                   // routing note → directory
	edgeRunsOn                    // instance/directory → preferred node
	edgeFailover                  // → failover node, VRRP master → backup
	edgeFences                    // fence device → node
)

type lineStyle int

const (
	styleSolid lineStyle = iota
	styleDashed
	styleDotted
)

func (c edgeClass) style() lineStyle {
	switch c {
	case edgeFailover:
		return styleDashed
	case edgeFences:
		return styleDotted
	}
	return styleSolid
}

// dnode is one box of the diagram.
type dnode struct {
	id    string   // stable and unique: "node:proxy1", "vip:lvs/smtp"
	kind  kind     //
	lines []string // lines[0] is the name
	band  int      // index into diagram.bands
	layer int      // global layer, top to bottom
	group string   // id of the diagram.groups entry it sits in, or ""
}

// dedge is one arrow of the diagram.
type dedge struct {
	from, to string
	label    string
	class    edgeClass
}

// band is a horizontal tier of the diagram.
type band struct {
	id    string
	label string
}

// group is a box around some boxes of one layer (a balancer and its VIPs).
type group struct {
	id    string
	label string
}

type diagram struct {
	title  string
	bands  []band
	groups []group
	nodes  []*dnode // in initial left-to-right order within each layer
	edges  []*dedge
	byID   map[string]*dnode
}

// Layers, top to bottom. Empty ones are dropped by the layout.
const (
	layerClients = iota
	layerBalancer
	layerFrontend
	layerRouting
	layerInstance
	layerBackend
	layerFence
	layerOther
)

// Bands, top to bottom.
const (
	bandInternet = iota
	bandBalancer
	bandFrontend
	bandBackend
	bandOther
)

func nodeID(n *spec.Node) string { return "node:" + n.Name }

// build turns a topology into the diagram both renderers draw.
func build(t *spec.Topology) *diagram {
	d := &diagram{byID: map[string]*dnode{}}
	d.title = "mailfleet topology"
	if t.Site.Name != "" {
		d.title += " · site " + t.Site.Name
	}
	if t.Site.Cluster != "" && t.Site.Cluster != t.Site.Name {
		d.title += " · cluster " + t.Site.Cluster
	}

	// Which tier each node belongs to: the first of balancer, front-end,
	// backend that names it; the rest go to a band of their own.
	tier := map[*spec.Node]int{}
	setTier := func(n *spec.Node, b int) {
		if n == nil {
			return
		}
		if cur, ok := tier[n]; !ok || b < cur {
			tier[n] = b
		}
	}
	for _, b := range t.Balancers {
		for _, n := range b.Nodes {
			setTier(n, bandBalancer)
		}
	}
	for _, f := range t.Frontends {
		for _, n := range f.Nodes {
			setTier(n, bandFrontend)
		}
	}
	for _, i := range t.Instances {
		for _, n := range i.Nodes {
			setTier(n, bandBackend)
		}
	}
	if t.Directory != nil {
		for _, n := range t.Directory.Nodes {
			setTier(n, bandBackend)
		}
	}
	for _, n := range t.Nodes {
		if n.Standby {
			setTier(n, bandBackend)
		}
	}
	for _, n := range t.Nodes {
		if _, ok := tier[n]; !ok {
			tier[n] = bandOther
		}
	}

	// Band labels name the networks their boxes sit on.
	nets := make([]map[string]*spec.Network, bandOther+1)
	for i := range nets {
		nets[i] = map[string]*spec.Network{}
	}
	addNet := func(b int, n *spec.Network) {
		if n != nil {
			nets[b][n.Name] = n
		}
	}
	for n, b := range tier {
		addNet(b, n.Network)
	}
	for _, i := range t.Instances {
		addNet(bandBackend, i.Network)
	}
	if t.Directory != nil {
		addNet(bandBackend, networkOf(t, t.Directory.VIP))
	}
	for _, b := range t.Balancers {
		for _, s := range b.Services {
			addNet(bandBalancer, networkOf(t, s.VIP))
		}
	}
	bandLabel := func(b int, name string) string {
		var names []string
		for k := range nets[b] {
			names = append(names, k)
		}
		sort.Strings(names)
		parts := []string{name}
		for _, k := range names {
			n := nets[b][k]
			s := "network " + n.Name
			if n.CIDR.IsValid() {
				s += " " + n.CIDR.String()
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " · ")
	}
	d.bands = []band{
		{"internet", "Internet"},
		{"balancer", bandLabel(bandBalancer, "load balancer tier")},
		{"frontend", bandLabel(bandFrontend, "front-end tier")},
		{"backend", bandLabel(bandBackend, "backend tier")},
		{"other", bandLabel(bandOther, "other hosts")},
	}

	add := func(n *dnode) *dnode {
		if d.byID[n.id] != nil {
			return d.byID[n.id]
		}
		d.nodes = append(d.nodes, n)
		d.byID[n.id] = n
		return n
	}
	edge := func(from, to string, class edgeClass, label string) {
		if from == to || d.byID[from] == nil || d.byID[to] == nil {
			return
		}
		for _, e := range d.edges {
			if e.from == from && e.to == to && e.class == class {
				return
			}
		}
		d.edges = append(d.edges, &dedge{from: from, to: to, class: class, label: label})
	}

	// Internet: the clients and the routers.
	add(&dnode{id: "clients", kind: kindClients, lines: []string{"Internet clients"}, band: bandInternet, layer: layerClients})
	for _, r := range t.Routers {
		lines := []string{r.Name}
		for _, ifc := range r.Interfaces {
			name := "?"
			if ifc.Network != nil {
				name = ifc.Network.Name
			}
			lines = append(lines, name+" "+addrString(ifc.Address))
		}
		if r.DNS {
			lines = append(lines, "DNS for every zone")
		}
		add(&dnode{id: "router:" + r.Name, kind: kindRouter, lines: lines, band: bandInternet, layer: layerClients})
	}

	// Front-end services per node, for their labels.
	services := map[*spec.Node]string{}
	for _, f := range t.Frontends {
		var s []string
		if f.IMAP != nil {
			s = append(s, "imap "+strconv.Itoa(f.IMAP.Port))
		}
		if f.POP3 != nil {
			s = append(s, "pop3 "+strconv.Itoa(f.POP3.Port))
		}
		if f.SMTP != nil {
			s = append(s, "smtp "+strconv.Itoa(f.SMTP.Port))
		}
		for _, n := range f.Nodes {
			if _, ok := services[n]; !ok && len(s) > 0 {
				services[n] = strings.Join(s, " · ")
			}
		}
	}
	standbyLine := "hot standby"
	addHost := func(n *spec.Node) {
		if n == nil || d.byID[nodeID(n)] != nil {
			return
		}
		b := tier[n]
		dn := &dnode{id: nodeID(n), band: b, lines: []string{n.Name, addrString(n.Address)}}
		if n.Hostname != "" && n.Hostname != n.Name {
			dn.lines[1] = n.Hostname + " " + dn.lines[1]
		}
		switch b {
		case bandBalancer:
			dn.kind, dn.layer = kindBalancer, layerBalancer
		case bandFrontend:
			dn.kind, dn.layer = kindFrontend, layerFrontend
			if s := services[n]; s != "" {
				dn.lines = append(dn.lines, s)
			}
		case bandBackend:
			dn.kind, dn.layer = kindBackend, layerBackend
		default:
			dn.kind, dn.layer = kindOther, layerOther
		}
		if n.Standby {
			dn.lines = append(dn.lines, standbyLine)
			if dn.kind == kindBackend {
				dn.kind = kindStandby
			}
		}
		add(dn)
	}

	// Load balancer tier: each balancer's nodes and VIPs in a group.
	for _, b := range t.Balancers {
		gid := "balancer:" + b.Name
		label := b.Name
		if len(b.Nodes) > 1 {
			label += " · VRRP " + strconv.Itoa(b.VRRP.RouterID)
			if b.VRRP.Interface != "" {
				label += " on " + b.VRRP.Interface
			}
		}
		d.groups = append(d.groups, group{id: gid, label: label})
		for i, n := range b.Nodes {
			addHost(n)
			dn := d.byID[nodeID(n)]
			if dn.group == "" && dn.layer == layerBalancer {
				dn.group = gid
			}
			if len(b.Nodes) > 1 && dn.kind == kindBalancer {
				if i == 0 {
					dn.lines = append(dn.lines, "VRRP master")
				} else {
					dn.lines = append(dn.lines, "VRRP backup")
				}
			}
		}
		for _, s := range b.Services {
			info := string(s.Scheduler)
			if b.ProxyProtocol {
				info += " · PROXY v2"
			}
			add(&dnode{id: vipID(b, s), kind: kindVIP, band: bandBalancer, layer: layerBalancer, group: gid,
				lines: []string{s.Name + " " + addrPort(s.VIP, s.Port), info}})
		}
	}
	for _, f := range t.Frontends {
		for _, n := range f.Nodes {
			addHost(n)
		}
	}
	for _, f := range t.Frontends {
		lines := []string{f.Name, "routes by " + hostAttribute(f)}
		if f.Connector != nil {
			lines = append(lines, "looks up via "+f.Connector.Name)
		}
		add(&dnode{id: "routing:" + f.Name, kind: kindRouting, band: bandFrontend, layer: layerRouting, lines: lines})
	}

	// Backend tier: directory and instances, then the nodes they run on,
	// preferred nodes first so the initial order is already a good one.
	if dir := t.Directory; dir != nil {
		lines := []string{dir.Name, "LDAP directory " + string(dir.TLSMode)}
		if dir.TLSMode == "" {
			lines[1] = "LDAP directory"
		}
		host := dir.Hostname
		if n := networkOf(t, dir.VIP); n != nil && host != "" && n.Zone != "" {
			host += "." + n.Zone
		}
		lines = append(lines, strings.TrimSpace(host+" "+addrPort(dir.VIP, dir.Port)))
		add(&dnode{id: "directory:" + dir.Name, kind: kindDirectory, band: bandBackend, layer: layerInstance, lines: lines})
	}
	for _, i := range t.Instances {
		host := i.Hostname
		if i.Network != nil && host != "" {
			host = i.FQDN()
		}
		lines := []string{i.Name}
		if host != "" {
			lines = append(lines, host)
		}
		lines = append(lines, addrString(i.VIP))
		add(&dnode{id: "instance:" + i.Name, kind: kindInstance, band: bandBackend, layer: layerInstance, lines: lines})
	}
	if t.Directory != nil && len(t.Directory.Nodes) > 0 {
		addHost(t.Directory.Nodes[0])
	}
	for _, i := range t.Instances {
		if len(i.Nodes) > 0 {
			addHost(i.Nodes[0])
		}
	}
	for _, n := range t.Nodes {
		addHost(n)
	}
	for _, f := range t.Fences {
		lines := []string{f.Name, strings.TrimSpace(f.Agent + " " + string(f.Kind))}
		if f.Address.IsValid() {
			lines = append(lines, f.Address.String())
		}
		add(&dnode{id: "fence:" + f.Name, kind: kindFence, band: bandBackend, layer: layerFence, lines: lines})
	}

	// Edges.
	nVIP := 0
	for _, b := range t.Balancers {
		for i := 1; i < len(b.Nodes); i++ {
			edge(nodeID(b.Nodes[0]), nodeID(b.Nodes[i]), edgeFailover, failoverLabel(i)+" (VRRP)")
		}
		for _, s := range b.Services {
			nVIP++
			edge("clients", vipID(b, s), edgeTraffic, "")
			for _, rs := range s.Backends {
				if rs.Node != nil {
					edge(vipID(b, s), nodeID(rs.Node), edgeTraffic, "")
				}
			}
		}
	}
	if nVIP == 0 {
		for _, f := range t.Frontends {
			for _, n := range f.Nodes {
				edge("clients", nodeID(n), edgeTraffic, "")
			}
		}
	}
	for _, f := range t.Frontends {
		rid := "routing:" + f.Name
		for _, n := range f.Nodes {
			edge(nodeID(n), rid, edgeMember, "")
		}
		for _, i := range t.Instances {
			label := "routes"
			if f.DefaultRoute == i {
				label = "routes (default)"
			}
			edge(rid, "instance:"+i.Name, edgeRoutes, label)
		}
		if t.Directory != nil {
			edge(rid, "directory:"+t.Directory.Name, edgeLookups, "lookups")
		}
	}
	placement := func(from string, nodes []*spec.Node) {
		for k, n := range nodes {
			if k == 0 {
				edge(from, nodeID(n), edgeRunsOn, "runs on")
			} else {
				edge(from, nodeID(n), edgeFailover, failoverLabel(k))
			}
		}
	}
	if t.Directory != nil {
		placement("directory:"+t.Directory.Name, t.Directory.Nodes)
	}
	for _, i := range t.Instances {
		placement("instance:"+i.Name, i.Nodes)
	}
	for _, n := range t.Nodes {
		if n.Fence != nil && n.Fence.Device != nil {
			edge("fence:"+n.Fence.Device.Name, nodeID(n), edgeFences, "port "+strconv.Itoa(n.Fence.Port))
		}
	}
	return d
}

func failoverLabel(order int) string { return "fails over to #" + strconv.Itoa(order) }

func vipID(b *spec.Balancer, s *spec.BalancedService) string {
	return "vip:" + b.Name + "/" + s.Name
}

func hostAttribute(f *spec.Frontend) string {
	if f.Connector != nil && f.Connector.HostAttribute != "" {
		return f.Connector.HostAttribute
	}
	return "mailHost"
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "(no address)"
	}
	return a.String()
}

func addrPort(a netip.Addr, port int) string {
	if !a.IsValid() {
		return "(no address):" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// networkOf returns the network whose prefix holds a, or nil.
func networkOf(t *spec.Topology, a netip.Addr) *spec.Network {
	if !a.IsValid() {
		return nil
	}
	for _, n := range t.Networks {
		if n.CIDR.IsValid() && n.CIDR.Contains(a) {
			return n
		}
	}
	return nil
}
