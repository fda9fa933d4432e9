package graph

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"github.com/mailfleet/mailfleet/internal/programs"
	"io"
	"net/netip"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// dotEdges maps "from -> to" to the attribute list of every edge in a DOT
// text as DOT writes them (one per line). An edge written with dir=back
// (the fencing arrows, which point up) is keyed the way its arrow points.
func dotEdges(t *testing.T, dot []byte) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`^\t"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[(.*)\];$`)
	edges := map[string]string{}
	for _, line := range strings.Split(string(dot), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[3], "style=invis") {
			continue
		}
		key := m[1] + " -> " + m[2]
		if strings.Contains(m[3], "dir=back") {
			key = m[2] + " -> " + m[1]
		}
		if _, dup := edges[key]; dup {
			t.Errorf("edge %s written twice", key)
		}
		edges[key] = m[3]
	}
	return edges
}

// dotRaw lists the edges of a DOT text as written: "tail -> head".
func dotRaw(dot string) []string {
	var out []string
	for _, line := range strings.Split(dot, "\n") {
		if strings.HasPrefix(line, "\t\"") && strings.Contains(line, "\" -> \"") && !strings.Contains(line, "style=invis") {
			out = append(out, line[:strings.Index(line, " [")])
		}
	}
	return out
}

func TestDOTReference(t *testing.T) {
	topo := spectest.Reference()
	dot := string(DOT(topo))

	// Clusters per tier.
	for _, c := range []string{
		`subgraph "cluster_internet"`,
		`subgraph "cluster_balancer" {` + "\n\t\tgraph [label=\"load balancer tier · network frontend 198.51.100.0/24\"",
		`subgraph "cluster_frontend" {` + "\n\t\tgraph [label=\"front-end tier · network frontend 198.51.100.0/24\"",
		`subgraph "cluster_backend" {` + "\n\t\tgraph [label=\"backend tier · network backend 10.0.0.0/24\"",
		`subgraph "cluster_balancer:lvs"`,
	} {
		if !strings.Contains(dot, c) {
			t.Errorf("DOT lacks %q", c)
		}
	}
	// Boxes.
	for _, n := range []string{
		`"clients" [label="Internet clients"`,
		`"router:router" [label="router\nfrontend 198.51.100.1\nbackend 10.0.0.1`,
		`"vip:lvs/smtp" [label="smtp 198.51.100.200:25\n`,
		`"vip:lvs/pop3" [label="pop3 198.51.100.201:110\n`,
		`"vip:lvs/imap" [label="imap 198.51.100.202:143\n`,
		`"node:proxy1" [label="proxy1\n198.51.100.101\nimap 143 · pop3 110 · smtp 25"`,
		`"directory:ldap" [label="ldap\nLDAP directory starttls\nldap.backend.cluster 10.0.0.210:389"`,
		`"instance:AXIGEN1" [label="AXIGEN1\naxigen1.backend.cluster\n10.0.0.201"`,
		`"instance:AXIGEN2" [label="AXIGEN2\naxigen2.backend.cluster\n10.0.0.202"`,
		`"node:standby" [label="standby\n10.0.0.13\nhot standby", shape=box, style="rounded,filled,dashed"`,
		`"fence:apc1" [label="apc1\nfence_apc power\n10.0.0.250"`,
		`"routing:proxies" [label="proxies\nroutes by mailHost`,
	} {
		if !strings.Contains(dot, n) {
			t.Errorf("DOT lacks box %s", n)
		}
	}
	for _, n := range topo.Nodes {
		if !strings.Contains(dot, fmt.Sprintf("%s [label=\"%s\\n", quote(nodeID(n)), n.Name)) {
			t.Errorf("DOT lacks node %s", n.Name)
		}
	}

	edges := dotEdges(t, []byte(dot))
	want := map[string][]string{
		`clients -> vip:lvs/smtp`:                 {"style=solid"},
		`clients -> vip:lvs/pop3`:                 {"style=solid"},
		`clients -> vip:lvs/imap`:                 {"style=solid"},
		`routing:proxies -> instance:AXIGEN1`:     {`label="routes (default)"`},
		`routing:proxies -> instance:AXIGEN2`:     {`label="routes"`},
		`routing:proxies -> directory:ldap`:       {`label="lookups"`},
		`instance:AXIGEN1 -> node:axigenode1`:     {`label="runs on"`, "style=solid"},
		`instance:AXIGEN1 -> node:standby`:        {`label="fails over to #1"`, "style=dashed"},
		`instance:AXIGEN2 -> node:axigenode2`:     {`label="runs on"`, "style=solid"},
		`instance:AXIGEN2 -> node:standby`:        {`label="fails over to #1"`, "style=dashed"},
		`directory:ldap -> node:ldapnode`:         {`label="runs on"`, "style=solid"},
		`directory:ldap -> node:standby`:          {`label="fails over to #1"`, "style=dashed"},
		`fence:apc1 -> node:ldapnode`:             {`label="port 1"`, "style=dotted"},
		`fence:apc1 -> node:axigenode1`:           {`label="port 2"`, "style=dotted"},
		`fence:apc1 -> node:axigenode2`:           {`label="port 3"`, "style=dotted"},
		`fence:apc1 -> node:standby`:              {`label="port 4"`, "style=dotted"},
		`node:loadbalancer -> node:loadbalancer2`: {`label="fails over to #1 (VRRP)"`, "style=dashed"},
	}
	for _, s := range []string{"smtp", "pop3", "imap"} {
		for _, p := range []string{"proxy1", "proxy2", "proxy3"} {
			want["vip:lvs/"+s+" -> node:"+p] = []string{"style=solid"}
		}
	}
	for _, p := range []string{"proxy1", "proxy2", "proxy3"} {
		want["node:"+p+" -> routing:proxies"] = []string{"style=solid"}
	}
	for k, attrs := range want {
		got, ok := edges[k]
		if !ok {
			t.Errorf("DOT lacks edge %s", k)
			continue
		}
		for _, a := range attrs {
			if !strings.Contains(got, a) {
				t.Errorf("edge %s: attributes %q lack %q", k, got, a)
			}
		}
	}
	if len(edges) != len(want) {
		var extra []string
		for k := range edges {
			if _, ok := want[k]; !ok {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		t.Errorf("DOT has %d edges, want %d; unexpected: %v", len(edges), len(want), extra)
	}
	if raw := dotRaw(dot); !sort.StringsAreSorted(raw) {
		t.Errorf("edges are not written in sorted order: %v", raw)
	}
	if !strings.Contains(dot, "\t\"node:standby\" -> \"fence:apc1\" [label=\"port 4\", style=dotted") {
		t.Error("the fencing edge is not written node -> device with dir=back")
	}
	checkDot(t, []byte(dot))
}

// checkDot runs Graphviz on the DOT text: it must accept it without a
// word of complaint. Graphviz is part of the development and CI setup, so
// its absence is a failure.
func checkDot(t *testing.T, dot []byte) {
	t.Helper()
	path := programs.Require(t, "dot")
	cmd := exec.Command(path, "-Tsvg")
	cmd.Stdin = bytes.NewReader(dot)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dot -Tsvg: %v\n%s\n%s", err, stderr.String(), dot)
	}
	if stderr.Len() > 0 {
		t.Errorf("dot -Tsvg complained: %s", stderr.String())
	}
	if !bytes.Contains(stdout.Bytes(), []byte("<svg")) {
		t.Errorf("dot -Tsvg wrote no SVG")
	}
}

// svgDoc is what the tests read back from an SVG.
type svgDoc struct {
	width, height float64
	texts         []string
	nodes         map[string]rect // rect.node by data-id
	nodeOrder     []string
	labels        []rect // edge label backgrounds
	bands         map[string]rect
	edges         map[string]map[string]string // "from -> to" → attributes
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func fattr(t *testing.T, se xml.StartElement, name string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(attr(se, name), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", se.Name.Local, name, attr(se, name), err)
	}
	return f
}

func rectOf(t *testing.T, se xml.StartElement) rect {
	return rect{fattr(t, se, "x"), fattr(t, se, "y"), fattr(t, se, "width"), fattr(t, se, "height")}
}

// parseSVG reads an SVG with encoding/xml, failing on anything that is not
// well-formed XML.
func parseSVG(t *testing.T, svg []byte) *svgDoc {
	t.Helper()
	doc := &svgDoc{nodes: map[string]rect{}, bands: map[string]rect{}, edges: map[string]map[string]string{}}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	dec.Strict = true
	var stack []string
	var text *strings.Builder
	var lastBand *rect
	root := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tok.Name.Local)
			switch tok.Name.Local {
			case "svg":
				if len(stack) == 1 {
					root = true
					if tok.Name.Space != "http://www.w3.org/2000/svg" {
						t.Errorf("root namespace %q", tok.Name.Space)
					}
					doc.width, doc.height = fattr(t, tok, "width"), fattr(t, tok, "height")
				}
			case "text":
				text = &strings.Builder{}
			case "rect":
				switch attr(tok, "class") {
				case "node":
					id := attr(tok, "data-id")
					if _, dup := doc.nodes[id]; dup {
						t.Errorf("two boxes for %s", id)
					}
					doc.nodes[id] = rectOf(t, tok)
					doc.nodeOrder = append(doc.nodeOrder, id)
				case "edge-label-bg":
					doc.labels = append(doc.labels, rectOf(t, tok))
				case "band":
					r := rectOf(t, tok)
					lastBand = &r
				}
			case "path":
				if strings.HasPrefix(attr(tok, "class"), "edge ") {
					m := map[string]string{}
					for _, a := range tok.Attr {
						m[a.Name.Local] = a.Value
					}
					doc.edges[attr(tok, "data-from")+" -> "+attr(tok, "data-to")] = m
				}
			}
		case xml.CharData:
			if text != nil {
				text.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "text" && text != nil {
				s := text.String()
				doc.texts = append(doc.texts, s)
				if lastBand != nil {
					doc.bands[s] = *lastBand
					lastBand = nil
				}
				text = nil
			}
			stack = stack[:len(stack)-1]
		}
	}
	if !root {
		t.Fatal("no <svg> root")
	}
	return doc
}

func (d *svgDoc) hasText(s string) int {
	n := 0
	for _, x := range d.texts {
		if x == s {
			n++
		}
	}
	return n
}

// checkSVG asserts what must hold for any topology: well-formed, every
// box named by a <text>, no two boxes overlapping, no edge label on a box
// or on another label, everything inside the picture.
func checkSVG(t *testing.T, topo *spec.Topology, svg []byte) *svgDoc {
	t.Helper()
	doc := parseSVG(t, svg)
	var names []string
	for _, n := range topo.Nodes {
		names = append(names, n.Name)
	}
	for _, i := range topo.Instances {
		names = append(names, i.Name)
	}
	for _, f := range topo.Fences {
		names = append(names, f.Name)
	}
	for _, r := range topo.Routers {
		names = append(names, r.Name)
	}
	if topo.Directory != nil {
		names = append(names, topo.Directory.Name)
	}
	for _, n := range names {
		if doc.hasText(n) == 0 {
			t.Errorf("no <text> reads %q", n)
		}
	}
	ids := doc.nodeOrder
	for i := 0; i < len(ids); i++ {
		a := doc.nodes[ids[i]]
		if a.x < 0 || a.y < 0 || a.x+a.w > doc.width || a.y+a.h > doc.height {
			t.Errorf("box %s %+v is outside the %gx%g picture", ids[i], a, doc.width, doc.height)
		}
		for j := i + 1; j < len(ids); j++ {
			if b := doc.nodes[ids[j]]; a.overlaps(b) {
				t.Errorf("boxes %s %+v and %s %+v overlap", ids[i], a, ids[j], b)
			}
		}
		for _, l := range doc.labels {
			if a.overlaps(l) {
				t.Errorf("an edge label %+v covers box %s", l, ids[i])
			}
		}
	}
	for i := 0; i < len(doc.labels); i++ {
		for j := i + 1; j < len(doc.labels); j++ {
			if doc.labels[i].overlaps(doc.labels[j]) {
				t.Errorf("edge labels %+v and %+v overlap", doc.labels[i], doc.labels[j])
			}
		}
	}
	return doc
}

func TestSVGReference(t *testing.T) {
	topo := spectest.Reference()
	svg := SVG(topo)
	doc := checkSVG(t, topo, svg)

	for _, s := range []string{"smtp 198.51.100.200:25", "pop3 198.51.100.201:110", "imap 198.51.100.202:143",
		"Internet clients", "proxies", "hot standby", "Legend"} {
		if doc.hasText(s) == 0 {
			t.Errorf("no <text> reads %q", s)
		}
	}
	// Every edge label of the reference has room.
	for s, n := range map[string]int{"fails over to #1": 3, "fails over to #1 (VRRP)": 1, "runs on": 3,
		"port 1": 1, "port 2": 1, "port 3": 1, "port 4": 1, "lookups": 1, "routes (default)": 1, "routes": 1} {
		if got := doc.hasText(s); got != n {
			t.Errorf("%d <text> read %q, want %d", got, s, n)
		}
	}
	if len(doc.nodes) != 1+1+2+3+3+1+1+2+4+1 {
		t.Errorf("%d boxes, want 19: %v", len(doc.nodes), doc.nodeOrder)
	}

	// Tiers top to bottom: the bands, and the boxes in them.
	var prev float64 = -1
	for _, b := range []string{"Internet", "load balancer tier · network frontend 198.51.100.0/24",
		"front-end tier · network frontend 198.51.100.0/24", "backend tier · network backend 10.0.0.0/24"} {
		r, ok := doc.bands[b]
		if !ok {
			t.Fatalf("no band %q; bands: %v", b, doc.bands)
		}
		if r.y <= prev {
			t.Errorf("band %q at y=%g is not below the one before (%g)", b, r.y, prev)
		}
		prev = r.y + r.h
	}
	inBand := func(id, b string) {
		n, r := doc.nodes[id], doc.bands[b]
		if n.y < r.y || n.y+n.h > r.y+r.h {
			t.Errorf("box %s %+v is not inside band %q %+v", id, n, b, r)
		}
	}
	inBand("clients", "Internet")
	inBand("router:router", "Internet")
	for _, id := range []string{"node:loadbalancer", "node:loadbalancer2", "vip:lvs/smtp", "vip:lvs/pop3", "vip:lvs/imap"} {
		inBand(id, "load balancer tier · network frontend 198.51.100.0/24")
	}
	for _, id := range []string{"node:proxy1", "node:proxy2", "node:proxy3", "routing:proxies"} {
		inBand(id, "front-end tier · network frontend 198.51.100.0/24")
	}
	for _, id := range []string{"directory:ldap", "instance:AXIGEN1", "instance:AXIGEN2", "node:ldapnode",
		"node:axigenode1", "node:axigenode2", "node:standby", "fence:apc1"} {
		inBand(id, "backend tier · network backend 10.0.0.0/24")
	}
	if doc.nodes["instance:AXIGEN1"].y >= doc.nodes["node:axigenode1"].y {
		t.Error("instances are not above the nodes they run on")
	}

	// Line styles as in DOT.
	styles := map[string]string{
		"instance:AXIGEN1 -> node:standby":        "7 4",
		"instance:AXIGEN2 -> node:standby":        "7 4",
		"directory:ldap -> node:standby":          "7 4",
		"node:loadbalancer -> node:loadbalancer2": "7 4",
		"fence:apc1 -> node:standby":              "1.5 3.5",
		"instance:AXIGEN1 -> node:axigenode1":     "",
		"vip:lvs/smtp -> node:proxy2":             "",
		"clients -> vip:lvs/smtp":                 "",
	}
	for k, dash := range styles {
		e, ok := doc.edges[k]
		if !ok {
			t.Errorf("no edge %s", k)
			continue
		}
		if e["stroke-dasharray"] != dash {
			t.Errorf("edge %s: stroke-dasharray %q, want %q", k, e["stroke-dasharray"], dash)
		}
		if !strings.HasPrefix(e["marker-end"], "url(#arrow-") {
			t.Errorf("edge %s has no arrowhead", k)
		}
	}
	dotEdges := dotEdges(t, DOT(topo))
	if len(doc.edges) != len(dotEdges) {
		t.Errorf("SVG has %d edges, DOT %d", len(doc.edges), len(dotEdges))
	}
	for k := range dotEdges {
		if _, ok := doc.edges[k]; !ok {
			t.Errorf("SVG lacks edge %s", k)
		}
	}
}

func TestDeterministic(t *testing.T) {
	for name, mk := range map[string]func() *spec.Topology{"reference": spectest.Reference, "large": large} {
		if a, b := SVG(mk()), SVG(mk()); !bytes.Equal(a, b) {
			t.Errorf("%s: SVG differs between two runs", name)
		}
		if a, b := DOT(mk()), DOT(mk()); !bytes.Equal(a, b) {
			t.Errorf("%s: DOT differs between two runs", name)
		}
	}
}

func TestRender(t *testing.T) {
	topo := spectest.Reference()
	for _, f := range []string{"svg", "dot"} {
		b, err := Render(topo, f)
		if err != nil || len(b) == 0 {
			t.Errorf("Render(%q): %d bytes, %v", f, len(b), err)
		}
	}
	if b, _ := Render(topo, "svg"); !bytes.Equal(b, SVG(topo)) {
		t.Error(`Render("svg") differs from SVG`)
	}
	if b, _ := Render(topo, "dot"); !bytes.Equal(b, DOT(topo)) {
		t.Error(`Render("dot") differs from DOT`)
	}
	for _, f := range []string{"png", "", "SVG"} {
		_, err := Render(topo, f)
		if err == nil || !strings.Contains(err.Error(), "want svg or dot") {
			t.Errorf("Render(%q) error %v, want one naming svg and dot", f, err)
		}
	}
}

// Names a file could hold that mean something to XML or DOT.
func TestEscaping(t *testing.T) {
	topo := spectest.Reference()
	topo.Site.Name = `R&D <lab> "one" \N \l`
	topo.Frontends[0].Name = `edge"&<x>\`
	topo.Balancers[0].Name = `lvs&"b"`
	topo.Fences[0].Agent = `fence_<apc>&"x"`
	dot := DOT(topo)
	checkDot(t, dot)
	for _, s := range []string{`"routing:edge\"&<x>\\"`, `R&D <lab> \"one\" \\N \\l`} {
		if !bytes.Contains(dot, []byte(s)) {
			t.Errorf("DOT lacks escaped %s", s)
		}
	}
	svg := SVG(topo)
	doc := checkSVG(t, topo, svg)
	if doc.hasText(`edge"&<x>\`) != 1 {
		t.Error("the front-end group's name does not read back from the SVG")
	}
	if !bytes.Contains(svg, []byte("R&amp;D &lt;lab&gt;")) {
		t.Error("site name not escaped in the SVG")
	}
}

// Topologies that lack tiers, or whose nodes play two roles, still draw.
func TestOddTopologies(t *testing.T) {
	empty := &spec.Topology{}
	checkSVG(t, empty, SVG(empty))
	checkDot(t, DOT(empty))

	topo := spectest.Reference()
	// proxy1 balances too (one layer holds the VIP and its real server),
	// ldapnode has no role left, there is no directory.
	topo.Balancers[0].Nodes = append(topo.Balancers[0].Nodes, topo.Nodes[indexOf(topo, "proxy1")])
	topo.Directory = nil
	topo.Frontends[0].Connector = nil
	topo.Nodes = append(topo.Nodes, &spec.Node{Name: "monitor", Hostname: "monitor", Network: topo.Networks[0], Address: netip.MustParseAddr("10.0.0.99")})
	checkSVG(t, topo, SVG(topo))
	checkDot(t, DOT(topo))

	noBalancer := spectest.Reference()
	noBalancer.Balancers = nil
	doc := checkSVG(t, noBalancer, SVG(noBalancer))
	if _, ok := doc.edges["clients -> node:proxy2"]; !ok {
		t.Error("without a balancer, clients should reach the front-ends directly")
	}
	checkDot(t, DOT(noBalancer))
}

func indexOf(t *spec.Topology, name string) int {
	for i, n := range t.Nodes {
		if n.Name == name {
			return i
		}
	}
	panic(name)
}

// large is a site of 100 nodes: a balancer pair with four services on 36
// front-ends in two groups, 50 instances on 50 nodes failing over to 8
// standbys, a directory pair, 4 fence devices and 2 hosts with no role.
func large() *spec.Topology {
	t := &spec.Topology{Site: spec.Site{Name: "large", Cluster: "large"}}
	front := &spec.Network{Name: "frontend", CIDR: netip.MustParsePrefix("192.0.2.0/24"), Zone: "front.large"}
	back := &spec.Network{Name: "backend", CIDR: netip.MustParsePrefix("10.9.0.0/16"), Zone: "back.large"}
	t.Networks = []*spec.Network{back, front}
	t.Routers = []*spec.Router{{Name: "gw", DNS: true, Interfaces: []spec.RouterInterface{
		{Network: front, Address: netip.MustParseAddr("192.0.2.1")}, {Network: back, Address: netip.MustParseAddr("10.9.0.1")}}}}
	var fences []*spec.FenceDevice
	for i := 1; i <= 4; i++ {
		fences = append(fences, &spec.FenceDevice{Name: fmt.Sprintf("pdu%d", i), Kind: spec.FencePower, Agent: "fence_apc",
			Address: netip.MustParseAddr(fmt.Sprintf("10.9.250.%d", i)), Ports: 16})
	}
	t.Fences = fences
	fenced := 0
	mk := func(name string, n *spec.Network, a string) *spec.Node {
		nd := &spec.Node{Name: name, Hostname: name, Network: n, Address: netip.MustParseAddr(a)}
		if n == back {
			nd.Fence = &spec.FencePort{Device: fences[fenced%4], Port: fenced/4 + 1}
			fenced++
		}
		t.Nodes = append(t.Nodes, nd)
		return nd
	}
	lb1 := mk("lb1", front, "192.0.2.10")
	lb2 := mk("lb2", front, "192.0.2.11")
	var fes, bes, sbs []*spec.Node
	for i := 1; i <= 36; i++ {
		fes = append(fes, mk(fmt.Sprintf("fe%02d", i), front, fmt.Sprintf("192.0.2.%d", 100+i)))
	}
	for i := 1; i <= 50; i++ {
		bes = append(bes, mk(fmt.Sprintf("be%02d", i), back, fmt.Sprintf("10.9.1.%d", i)))
	}
	for i := 1; i <= 8; i++ {
		sb := mk(fmt.Sprintf("sb%02d", i), back, fmt.Sprintf("10.9.2.%d", i))
		sb.Standby = true
		sbs = append(sbs, sb)
	}
	ld1 := mk("ld01", back, "10.9.3.1")
	ld2 := mk("ld02", back, "10.9.3.2")
	mk("mon1", back, "10.9.4.1")
	mk("mon2", back, "10.9.4.2")
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })

	b := &spec.Balancer{Name: "lvs", Nodes: []*spec.Node{lb1, lb2}, VRRP: spec.VRRP{RouterID: 7, Interface: "eth0"}}
	for i, s := range []struct {
		name string
		port int
	}{{"smtp", 25}, {"imap", 143}, {"pop3", 110}, {"imaps", 993}} {
		svc := &spec.BalancedService{Name: s.name, Protocol: s.name, VIP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 200+i)), Port: s.port, Scheduler: spec.LeastConn}
		for _, fe := range fes {
			svc.Backends = append(svc.Backends, &spec.RealServer{Node: fe, Port: s.port, Weight: 1})
		}
		b.Services = append(b.Services, svc)
	}
	t.Balancers = []*spec.Balancer{b}
	t.Directory = &spec.Directory{Name: "ldap", Hostname: "ldap", VIP: netip.MustParseAddr("10.9.3.100"), Port: 389,
		TLSMode: spec.LDAPTLSStartTLS, Nodes: []*spec.Node{ld1, ld2}}
	conn := &spec.LDAPConnector{Name: "LDAP", HostAttribute: "mailHost"}
	for i := 1; i <= 50; i++ {
		t.Instances = append(t.Instances, &spec.Instance{Name: fmt.Sprintf("MAIL%02d", i), Hostname: fmt.Sprintf("mail%02d", i),
			VIP: netip.MustParseAddr(fmt.Sprintf("10.9.5.%d", i)), Network: back,
			Nodes: []*spec.Node{bes[i-1], sbs[i%8], sbs[(i+3)%8]}})
	}
	t.Frontends = []*spec.Frontend{
		{Name: "edge-a", Nodes: fes[:18], Connector: conn, DefaultRoute: t.Instances[0], SMTP: &spec.SMTPRouting{Port: 25}, IMAP: &spec.ProxyService{Port: 143}},
		{Name: "edge-b", Nodes: fes[18:], Connector: conn, SMTP: &spec.SMTPRouting{Port: 25}, POP3: &spec.ProxyService{Port: 110}},
	}
	return t
}

func TestSVGLarge(t *testing.T) {
	topo := large()
	if len(topo.Nodes) != 100 {
		t.Fatalf("large has %d nodes", len(topo.Nodes))
	}
	doc := checkSVG(t, topo, SVG(topo))
	// Sane: wide (a layer of 50 instances) but not absurdly so, and the
	// tiers keep their order.
	if doc.width > 20000 || doc.height > 3000 {
		t.Errorf("picture is %gx%g", doc.width, doc.height)
	}
	if doc.nodes["clients"].y >= doc.nodes["vip:lvs/smtp"].y || doc.nodes["vip:lvs/smtp"].y >= doc.nodes["node:fe01"].y ||
		doc.nodes["node:fe01"].y >= doc.nodes["instance:MAIL01"].y || doc.nodes["instance:MAIL01"].y >= doc.nodes["node:be01"].y {
		t.Error("tiers out of order")
	}
	checkDot(t, DOT(topo))
}
