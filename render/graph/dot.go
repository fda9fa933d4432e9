package graph

import (
	"bytes"
	"sort"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
)

// style of one kind of box, shared by DOT and SVG.
type kindStyle struct {
	name     string // for the legend
	fill     string
	stroke   string
	dotShape string
	dotStyle string
	pill     bool // SVG: fully rounded ends (addresses, services)
	note     bool // SVG: folded corner
	dashed   bool // SVG: dashed border
}

var kindStyles = map[kind]kindStyle{
	kindClients:   {name: "Internet clients", fill: "#eeeeee", stroke: "#666666", dotShape: "ellipse", dotStyle: "filled", pill: true},
	kindRouter:    {name: "router", fill: "#e6e6e6", stroke: "#666666", dotShape: "box", dotStyle: "filled"},
	kindBalancer:  {name: "balancer node", fill: "#cfe2f3", stroke: "#3d6b99", dotShape: "box", dotStyle: "rounded,filled"},
	kindVIP:       {name: "balanced service VIP", fill: "#fff2cc", stroke: "#b08d1a", dotShape: "ellipse", dotStyle: "filled", pill: true},
	kindFrontend:  {name: "front-end node", fill: "#d9ead3", stroke: "#4f7a3a", dotShape: "box", dotStyle: "rounded,filled"},
	kindRouting:   {name: "front-end routing", fill: "#ffffff", stroke: "#4f7a3a", dotShape: "note", dotStyle: "filled", note: true},
	kindDirectory: {name: "LDAP directory VIP", fill: "#ead1dc", stroke: "#8e4466", dotShape: "cylinder", dotStyle: "filled", pill: true},
	kindInstance:  {name: "mail instance VIP", fill: "#fce5cd", stroke: "#b45f06", dotShape: "ellipse", dotStyle: "filled", pill: true},
	kindBackend:   {name: "backend node", fill: "#c9daf8", stroke: "#3c5a99", dotShape: "box", dotStyle: "rounded,filled"},
	kindStandby:   {name: "standby node", fill: "#f3f3f3", stroke: "#3c5a99", dotShape: "box", dotStyle: "rounded,filled,dashed", dashed: true},
	kindFence:     {name: "fence device", fill: "#f4cccc", stroke: "#990000", dotShape: "box", dotStyle: "filled"},
	kindOther:     {name: "other host", fill: "#ffffff", stroke: "#666666", dotShape: "box", dotStyle: "rounded,filled"},
}

// style of one kind of arrow, shared by DOT and SVG.
type classStyle struct {
	name  string // for the legend
	color string
	width float64
}

var classStyles = map[edgeClass]classStyle{
	edgeTraffic:  {name: "client traffic → real servers", color: "#3c78d8", width: 1.2},
	edgeMember:   {name: "front-end node → its routing", color: "#888888", width: 1},
	edgeRoutes:   {name: "routes to instance", color: "#38761d", width: 1.2},
	edgeLookups:  {name: "account lookups", color: "#8e4466", width: 1.2},
	edgeRunsOn:   {name: "runs on (preferred node)", color: "#222222", width: 1.6},
	edgeFailover: {name: "fails over to #n (in order)", color: "#222222", width: 1.3},
	edgeFences:   {name: "fences (power port n)", color: "#cc0000", width: 1.3},
}

// DOT draws t as a Graphviz digraph: one cluster per tier, one box per
// host, VIP, instance, directory and fence device.
func DOT(t *spec.Topology) []byte {
	d := build(t)
	var b bytes.Buffer
	w := func(s ...string) {
		for _, x := range s {
			b.WriteString(x)
		}
	}
	w("// mailfleet graph: ", strings.ReplaceAll(d.title, "\n", " "), "\n")
	w("digraph \"mailfleet\" {\n")
	w("\tgraph [label=", quote(d.title), ", labelloc=t, fontname=\"Helvetica\", fontsize=16, newrank=true, rankdir=TB, nodesep=0.3, ranksep=0.55];\n")
	w("\tnode [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=11];\n")
	w("\tedge [fontname=\"Helvetica\", fontsize=9, arrowsize=0.7];\n")

	node := func(indent string, n *dnode) {
		ks := kindStyles[n.kind]
		w(indent, quote(n.id), " [label=", quote(strings.Join(n.lines, "\n")),
			", shape=", ks.dotShape, ", style=", quote(ks.dotStyle),
			", fillcolor=", quote(ks.fill), ", color=", quote(ks.stroke), "];\n")
	}
	for bi, bd := range d.bands {
		var members []*dnode
		for _, n := range d.nodes {
			if n.band == bi {
				members = append(members, n)
			}
		}
		if len(members) == 0 {
			continue
		}
		sort.Slice(members, func(i, j int) bool { return members[i].id < members[j].id })
		w("\n\tsubgraph ", quote("cluster_"+bd.id), " {\n")
		w("\t\tgraph [label=", quote(bd.label), ", labeljust=l, style=\"rounded,filled\", fillcolor=\"#f7f9fc\", color=\"#b7c3d0\", fontsize=12];\n")
		for _, g := range d.groups {
			var in []*dnode
			for _, n := range members {
				if n.group == g.id {
					in = append(in, n)
				}
			}
			if len(in) == 0 {
				continue
			}
			w("\t\tsubgraph ", quote("cluster_"+g.id), " {\n")
			w("\t\t\tgraph [label=", quote(g.label), ", style=\"rounded,dashed\", fillcolor=\"#ffffff\", color=\"#7f8c99\", fontsize=10];\n")
			for _, n := range in {
				node("\t\t\t", n)
			}
			w("\t\t}\n")
		}
		for _, n := range members {
			if n.group == "" {
				node("\t\t", n)
			}
		}
		w("\t}\n")
	}

	// One rank per layer, as the SVG layout has them; fence devices below
	// the nodes they fence (their arrows point up).
	layers := map[int][]string{}
	var layerKeys []int
	for _, n := range d.nodes {
		if _, ok := layers[n.layer]; !ok {
			layerKeys = append(layerKeys, n.layer)
		}
		layers[n.layer] = append(layers[n.layer], n.id)
	}
	sort.Ints(layerKeys)
	w("\n")
	for _, l := range layerKeys {
		ids := layers[l]
		sort.Strings(ids)
		w("\t{ rank=same;")
		for _, id := range ids {
			w(" ", quote(id), ";")
		}
		w(" }\n")
	}
	// Invisible edges stack the layers (and so the tiers) top to bottom even
	// where no arrow goes down from one to the next.
	for k := 1; k < len(layerKeys); k++ {
		w("\t", quote(layers[layerKeys[k-1]][0]), " -> ", quote(layers[layerKeys[k]][0]), " [style=invis];\n")
	}

	type line struct {
		tail, head string
		class      edgeClass
		attrs      []string
	}
	var lines []line
	for _, e := range d.edges {
		cs := classStyles[e.class]
		attrs := []string{}
		if e.label != "" {
			attrs = append(attrs, "label="+quote(e.label))
		}
		switch e.class.style() {
		case styleDashed:
			attrs = append(attrs, "style=dashed")
		case styleDotted:
			attrs = append(attrs, "style=dotted")
		default:
			attrs = append(attrs, "style=solid")
		}
		attrs = append(attrs, "color="+quote(cs.color), "fontcolor="+quote(cs.color))
		l := line{tail: e.from, head: e.to, class: e.class}
		from, to := d.byID[e.from], d.byID[e.to]
		switch {
		case from.layer == to.layer:
			// The VRRP pair: the ranks above keep both boxes in one row.
			attrs = append(attrs, "constraint=false")
		case from.layer > to.layer:
			// An arrow that points up (fence device → node) is written the
			// other way round with dir=back: Graphviz then ranks the device
			// below the node and still draws the arrowhead at the node.
			attrs = append(attrs, "dir=back")
			l.tail, l.head = e.to, e.from
		}
		l.attrs = attrs
		lines = append(lines, l)
	}
	sort.Slice(lines, func(i, j int) bool {
		a, b := lines[i], lines[j]
		if a.tail != b.tail {
			return a.tail < b.tail
		}
		if a.head != b.head {
			return a.head < b.head
		}
		return a.class < b.class
	})
	w("\n")
	for _, l := range lines {
		w("\t", quote(l.tail), " -> ", quote(l.head), " [", strings.Join(l.attrs, ", "), "];\n")
	}
	w("}\n")
	return b.Bytes()
}

// quote makes s a DOT double-quoted string. Newlines become the \n escape
// (a centred line break); backslashes and quotes are escaped so that no
// Graphviz escape (\N, \G, \l) is ever read from a name.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r', '\t':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
