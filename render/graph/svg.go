package graph

import (
	"bytes"
	"encoding/xml"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
)

// Drawing constants, in pixels.
const (
	fontFamily = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif"
	nameSize   = 12.0 // first line of a box, bold
	infoSize   = 11.0 // further lines of a box
	labelSize  = 10.0 // edge labels, group labels
	bandSize   = 13.0 // band labels, bold
	titleSize  = 16.0

	padX     = 10.0
	padY     = 6.0
	lineH    = 15.0
	minBoxW  = 84.0
	nodeGap  = 22.0 // between two boxes of a layer
	dummyW   = 6.0  // width reserved for an edge passing through a layer
	dummyGap = 8.0

	margin      = 16.0 // around the whole picture
	bandInset   = 16.0 // between a band's edge and the boxes in it
	bandLabelH  = 30.0 // above the first layer of a band
	bandBottom  = 14.0
	bandGap     = 10.0
	groupPad    = 8.0
	groupLabelH = 16.0
	gapPlain    = 46.0 // between two layers of a band, no edge labels
	gapLabel    = 90.0 // between two layers when edge labels go there
	titleH      = 40.0
)

// SVG draws t as a standalone SVG picture, laid out without Graphviz.
func SVG(t *spec.Topology) []byte {
	d := build(t)
	p := newPicture(d)
	p.layout()
	return p.draw()
}

// box is a dnode's place on the picture.
type box struct {
	n     *dnode
	w, h  float64
	x, y  float64  // top left
	rx    float64  // corner radius
	layer int      // compact layer index
	lines []string // the dnode's, and what dense edge labels left to it
}

func (b *box) cx() float64     { return b.x + b.w/2 }
func (b *box) cy() float64     { return b.y + b.h/2 }
func (b *box) bottom() float64 { return b.y + b.h }

// hop is one segment of an edge between two adjacent layers, or within one.
type hop struct {
	from, to int // layout node indices, in edge direction
	x1, y1   float64
	x2, y2   float64
}

type drawnEdge struct {
	e     *dedge
	chain []int
	hops  []*hop
	path  string
	label *placedLabel
	same  bool // within one layer
}

type placedLabel struct {
	text string
	x, y float64 // centre
	w, h float64
}

type rect struct{ x, y, w, h float64 }

func (a rect) overlaps(b rect) bool {
	return a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h
}

type picture struct {
	d         *diagram
	boxes     []*box // by dnode index
	index     map[string]int
	lay       *layout
	layerY    []float64 // top of each compact layer
	layerH    []float64
	layerBand []int
	edges     []*drawnEdge
	width     float64
	height    float64
	// Obstacles for edge labels: boxes, band and group labels, labels.
	obstacles []rect
	bandRects []bandRect
	groupRect []groupRect
	legendY   float64
	shown     map[*dedge]bool // edge labels drawn on their lines
}

type bandRect struct {
	label string
	r     rect
}

type groupRect struct {
	label string
	r     rect
}

// denseLabels is the most edge labels drawn between two layers; past it
// the labels would hide each other and the lines, so what they say goes
// into the boxes instead ("fails over to sb1, sb2", "fenced by pdu1 port 3").
const denseLabels = 16

func newPicture(d *diagram) *picture {
	p := &picture{d: d, index: map[string]int{}, shown: map[*dedge]bool{}}
	extra := p.labelsToBoxes()
	for i, n := range d.nodes {
		p.index[n.id] = i
		b := &box{n: n, lines: append(append([]string(nil), n.lines...), extra[n.id]...)}
		h := padY * 2
		w := 0.0
		for k, line := range b.lines {
			w = math.Max(w, lineWidth(k, line))
			h += lineH
		}
		ks := kindStyles[n.kind]
		b.rx = 6
		if ks.pill {
			b.rx = math.Min(h/2, 16)
		}
		w += 2*padX + b.rx*0.5
		if ks.note {
			w += 8
		}
		w = math.Max(w, minBoxW)
		b.w = 2 * math.Ceil(w/2)
		b.h = math.Ceil(h)
		p.boxes = append(p.boxes, b)
	}
	return p
}

// labelsToBoxes decides which edge labels are drawn (p.shown) and returns
// the extra box lines that stand for those left out where they are dense.
// A label that one box repeats on many arrows ("routes" to every instance)
// is left to the box's own text.
func (p *picture) labelsToBoxes() map[string][]string {
	d := p.d
	repeats := map[[2]string]int{}
	for _, e := range d.edges {
		if e.label != "" {
			repeats[[2]string{e.from, e.label}]++
		}
	}
	gapKey := func(e *dedge) [2]int {
		a, b := d.byID[e.from].layer, d.byID[e.to].layer
		return [2]int{min(a, b), max(a, b)}
	}
	perGap := map[[2]int]int{}
	for _, e := range d.edges {
		if e.label != "" && repeats[[2]string{e.from, e.label}] <= 4 {
			perGap[gapKey(e)]++
		}
	}
	name := func(id string) string { return d.byID[id].lines[0] }
	extra := map[string][]string{}
	failover := map[string][]string{}
	var failoverOrder []string
	for _, e := range d.edges {
		if e.label == "" || repeats[[2]string{e.from, e.label}] > 4 {
			continue
		}
		if k := gapKey(e); k[0] == k[1] || perGap[k] <= denseLabels {
			p.shown[e] = true
			continue
		}
		switch e.class {
		case edgeRunsOn:
			extra[e.from] = append(extra[e.from], "runs on "+name(e.to))
		case edgeFailover:
			if failover[e.from] == nil {
				failoverOrder = append(failoverOrder, e.from)
			}
			failover[e.from] = append(failover[e.from], name(e.to))
		case edgeFences:
			extra[e.to] = append(extra[e.to], "fenced by "+name(e.from)+" "+e.label)
		}
	}
	for _, id := range failoverOrder {
		extra[id] = append(extra[id], "fails over to "+strings.Join(failover[id], ", "))
	}
	return extra
}

func lineWidth(k int, line string) float64 {
	if k == 0 {
		return textWidth(line, nameSize, true)
	}
	return textWidth(line, infoSize, false)
}

// showLabel says whether an edge's label is drawn on its line.
func (p *picture) showLabel(e *dedge) bool { return p.shown[e] }

func (p *picture) layout() {
	d := p.d
	// Compact the layers that have boxes.
	var used []int
	seen := map[int]bool{}
	for _, n := range d.nodes {
		if !seen[n.layer] {
			seen[n.layer] = true
			used = append(used, n.layer)
		}
	}
	sort.Ints(used)
	compact := map[int]int{}
	for i, l := range used {
		compact[l] = i
	}
	p.layerBand = make([]int, len(used))
	for _, n := range d.nodes {
		p.layerBand[compact[n.layer]] = n.band
	}
	groupIndex := map[string]int{}
	for i, g := range d.groups {
		groupIndex[g.id] = i
	}

	l := newLayout(len(used))
	for i, b := range p.boxes {
		b.layer = compact[b.n.layer]
		g := -1
		if b.n.group != "" {
			g = groupIndex[b.n.group]
		}
		if id := l.addNode(b.w, b.layer, g, false); id != i {
			panic("graph: layout index mismatch")
		}
	}
	// Same-layer labelled edges need room between their boxes.
	sameGap := map[[2]int]float64{}
	for _, e := range d.edges {
		de := &drawnEdge{e: e}
		from, to := p.index[e.from], p.index[e.to]
		de.chain = l.addEdge(from, to, dummyW)
		if p.boxes[from].layer == p.boxes[to].layer {
			de.same = true
			w := 24.0
			if p.showLabel(e) {
				w = math.Max(w, textWidth(e.label, labelSize, false)+24)
			}
			k := [2]int{min(from, to), max(from, to)}
			sameGap[k] = math.Max(sameGap[k], w)
		}
		p.edges = append(p.edges, de)
	}
	l.gap = func(a, b int) float64 {
		na, nb := l.nodes[a], l.nodes[b]
		g := nodeGap
		if na.dummy || nb.dummy {
			g = dummyGap
		}
		if na.group != nb.group {
			if na.group >= 0 {
				g += groupPad
			}
			if nb.group >= 0 {
				g += groupPad
			}
		}
		if w, ok := sameGap[[2]int{min(a, b), max(a, b)}]; ok {
			g = math.Max(g, w)
		}
		return g
	}
	l.run()
	p.lay = l

	// Heights and tops of the layers.
	nl := len(used)
	p.layerH = make([]float64, nl)
	hasGroup := make([]bool, nl)
	for _, b := range p.boxes {
		p.layerH[b.layer] = math.Max(p.layerH[b.layer], b.h)
		if b.n.group != "" {
			hasGroup[b.layer] = true
		}
	}
	labelled := make([]bool, nl) // labels between layer k and k+1
	for _, de := range p.edges {
		if !p.showLabel(de.e) || de.same {
			continue
		}
		a, b := l.nodes[de.chain[0]].layer, l.nodes[de.chain[len(de.chain)-1]].layer
		labelled[min(a, b)] = true
	}
	p.layerY = make([]float64, nl)
	y := margin + titleH
	type span struct{ top, bottom float64 }
	bandSpan := map[int]*span{}
	for k := 0; k < nl; k++ {
		bd := p.layerBand[k]
		first := k == 0 || p.layerBand[k-1] != bd
		if first {
			if k > 0 {
				y += bandBottom
				bandSpan[p.layerBand[k-1]].bottom = y
				y += bandGap
				if labelled[k-1] {
					y += gapLabel - (bandBottom + bandGap + bandLabelH)
				}
			}
			bandSpan[bd] = &span{top: y}
			y += bandLabelH
		} else {
			if labelled[k-1] {
				y += gapLabel
			} else {
				y += gapPlain
			}
		}
		if hasGroup[k] {
			y += groupLabelH + groupPad
		}
		p.layerY[k] = y
		y += p.layerH[k]
		if hasGroup[k] {
			y += groupPad
		}
	}
	y += bandBottom
	if nl > 0 {
		bandSpan[p.layerBand[nl-1]].bottom = y
	}

	// x: shift the layout so that it starts inside the bands.
	minX, maxX := math.Inf(1), math.Inf(-1)
	for i, n := range l.nodes {
		pad := 0.0
		if n.group >= 0 {
			pad = groupPad
		}
		w := n.w
		if i < len(p.boxes) {
			w = p.boxes[i].w
		}
		minX = math.Min(minX, n.x-w/2-pad)
		maxX = math.Max(maxX, n.x+w/2+pad)
	}
	if len(l.nodes) == 0 {
		minX, maxX = 0, 0
	}
	contentW := maxX - minX
	p.width = contentW + 2*(margin+bandInset)
	p.width = math.Max(p.width, textWidth(d.title, titleSize, true)+2*margin)
	p.width = math.Max(p.width, 640)
	shift := margin + bandInset - minX + math.Floor((p.width-2*(margin+bandInset)-contentW)/2)
	for _, n := range l.nodes {
		n.x += shift
	}
	for i, b := range p.boxes {
		n := l.nodes[i]
		b.x = n.x - b.w/2
		b.y = p.layerY[b.layer] + (p.layerH[b.layer]-b.h)/2
		p.obstacles = append(p.obstacles, rect{b.x, b.y, b.w, b.h})
	}

	// Bands and groups.
	for bi, bd := range d.bands {
		s := bandSpan[bi]
		if s == nil {
			continue
		}
		r := rect{margin, s.top, p.width - 2*margin, s.bottom - s.top}
		p.bandRects = append(p.bandRects, bandRect{label: bd.label, r: r})
		p.obstacles = append(p.obstacles, rect{r.x + 8, r.y + 4, textWidth(bd.label, bandSize, true) + 8, 20})
	}
	for gi, g := range d.groups {
		gr := rect{}
		first := true
		for i, b := range p.boxes {
			if l.nodes[i].group != gi {
				continue
			}
			x0, y0 := b.x-groupPad, p.layerY[b.layer]-groupPad-groupLabelH
			x1, y1 := b.x+b.w+groupPad, p.layerY[b.layer]+p.layerH[b.layer]+groupPad
			if first {
				gr = rect{x0, y0, x1 - x0, y1 - y0}
				first = false
				continue
			}
			nx0, ny0 := math.Min(gr.x, x0), math.Min(gr.y, y0)
			nx1, ny1 := math.Max(gr.x+gr.w, x1), math.Max(gr.y+gr.h, y1)
			gr = rect{nx0, ny0, nx1 - nx0, ny1 - ny0}
		}
		if first {
			continue
		}
		p.groupRect = append(p.groupRect, groupRect{label: g.label, r: gr})
		p.obstacles = append(p.obstacles, rect{gr.x + 4, gr.y + 2, textWidth(g.label, labelSize, false) + 8, groupLabelH})
	}

	p.routeEdges()
	p.placeLabels()
	p.legendY = y + 12
	p.height = p.legendY + p.legendHeight() + margin
}

// end is where an edge meets layout node v: the middle of its top or bottom
// side (a dummy's side is the top or bottom of its layer).
func (p *picture) end(v int, top bool) (float64, float64) {
	n := p.lay.nodes[v]
	if v < len(p.boxes) {
		b := p.boxes[v]
		if top {
			return n.x, b.y
		}
		return n.x, b.bottom()
	}
	if top {
		return n.x, p.layerY[n.layer]
	}
	return n.x, p.layerY[n.layer] + p.layerH[n.layer]
}

// routeEdges computes every edge's path: cubic Béziers with vertical
// tangents between layers, straight through the layers it passes, arrows
// spread along the side of a box in the order of their other ends.
func (p *picture) routeEdges() {
	l := p.lay
	type attach struct {
		h     *hop
		start bool // the hop starts here
		other int
	}
	sides := map[[2]int][]attach{} // (node, 0 top / 1 bottom)
	for _, de := range p.edges {
		if de.same {
			continue
		}
		for i := 0; i+1 < len(de.chain); i++ {
			a, b := de.chain[i], de.chain[i+1]
			h := &hop{from: a, to: b}
			de.hops = append(de.hops, h)
			down := l.nodes[b].layer > l.nodes[a].layer
			sa, sb := 1, 0
			if !down {
				sa, sb = 0, 1
			}
			sides[[2]int{a, sa}] = append(sides[[2]int{a, sa}], attach{h, true, b})
			sides[[2]int{b, sb}] = append(sides[[2]int{b, sb}], attach{h, false, a})
		}
	}
	keys := make([][2]int, 0, len(sides))
	for k := range sides {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		as := sides[k]
		v, top := k[0], k[1] == 0
		sort.SliceStable(as, func(i, j int) bool {
			return l.nodes[as[i].other].x < l.nodes[as[j].other].x
		})
		x, y := p.end(v, top)
		spacing := 0.0
		if v < len(p.boxes) && len(as) > 1 {
			b := p.boxes[v]
			usable := b.w - 2*math.Max(b.rx, 10)
			spacing = math.Min(22, usable/float64(len(as)-1))
		}
		for i, a := range as {
			px := x + (float64(i)-float64(len(as)-1)/2)*spacing
			if a.start {
				a.h.x1, a.h.y1 = px, y
			} else {
				a.h.x2, a.h.y2 = px, y
			}
		}
	}
	for _, de := range p.edges {
		var b strings.Builder
		if de.same {
			fa, fb := p.boxes[p.index[de.e.from]], p.boxes[p.index[de.e.to]]
			na, nb := l.nodes[p.index[de.e.from]], l.nodes[p.index[de.e.to]]
			if d := na.pos - nb.pos; d == 1 || d == -1 {
				y := math.Min(fa.cy(), fb.cy())
				x1, x2 := fa.x+fa.w, fb.x
				if na.pos > nb.pos {
					x1, x2 = fa.x, fb.x+fb.w
				}
				de.hops = []*hop{{from: p.index[de.e.from], to: p.index[de.e.to], x1: x1, y1: y, x2: x2, y2: y}}
				b.WriteString("M" + num(x1) + "," + num(y) + " L" + num(x2) + "," + num(y))
			} else {
				top := p.layerY[fa.layer] - 34
				de.hops = []*hop{{from: p.index[de.e.from], to: p.index[de.e.to], x1: fa.cx(), y1: fa.y, x2: fb.cx(), y2: fb.y}}
				b.WriteString("M" + num(fa.cx()) + "," + num(fa.y) + " C" + num(fa.cx()) + "," + num(top) + " " +
					num(fb.cx()) + "," + num(top) + " " + num(fb.cx()) + "," + num(fb.y))
			}
			de.path = b.String()
			continue
		}
		for i, h := range de.hops {
			if i == 0 {
				b.WriteString("M" + num(h.x1) + "," + num(h.y1))
			} else {
				b.WriteString(" L" + num(h.x1) + "," + num(h.y1))
			}
			my := (h.y1 + h.y2) / 2
			if h.x1 == h.x2 {
				b.WriteString(" L" + num(h.x2) + "," + num(h.y2))
			} else {
				b.WriteString(" C" + num(h.x1) + "," + num(my) + " " + num(h.x2) + "," + num(my) + " " + num(h.x2) + "," + num(h.y2))
			}
		}
		de.path = b.String()
	}
}

// arc is the point at t on the arc of a same-layer edge that rises to top.
func (h *hop) arc(t, top float64) (float64, float64) {
	u := 1 - t
	x := u*u*u*h.x1 + 3*u*u*t*h.x1 + 3*u*t*t*h.x2 + t*t*t*h.x2
	y := u*u*u*h.y1 + 3*u*u*t*top + 3*u*t*t*top + t*t*t*h.y2
	return x, y
}

// at is the point at t on a hop's Bézier.
func (h *hop) at(t float64) (float64, float64) {
	my := (h.y1 + h.y2) / 2
	u := 1 - t
	x := u*u*u*h.x1 + 3*u*u*t*h.x1 + 3*u*t*t*h.x2 + t*t*t*h.x2
	y := u*u*u*h.y1 + 3*u*u*t*my + 3*u*t*t*my + t*t*t*h.y2
	return x, y
}

// placeLabels puts each edge label on its edge where it covers no box and
// no other label, preferring spots that hide the fewest lines of other
// edges and, among those, spots near the middle; a label that fits nowhere
// is left out (the legend still explains the line style).
func (p *picture) placeLabels() {
	// Points along every edge, to count how much of the others a label
	// would hide.
	type pt struct {
		x, y float64
		edge int
	}
	var pts []pt
	for i, de := range p.edges {
		for _, hp := range de.hops {
			for k := 0; k <= 24; k++ {
				x, y := hp.at(float64(k) / 24)
				if de.same && hp.y1 != hp.y2 {
					x, y = hp.arc(float64(k)/24, p.layerY[p.boxes[hp.from].layer]-34)
				}
				pts = append(pts, pt{x, y, i})
			}
		}
	}
	ts := []float64{0.5, 0.6, 0.4, 0.7, 0.3, 0.8, 0.2}
	for i, de := range p.edges {
		if !p.showLabel(de.e) {
			continue
		}
		w := math.Ceil(textWidth(de.e.label, labelSize, false) + 8)
		h := 14.0
		if de.same {
			hp := de.hops[0]
			x, y := (hp.x1+hp.x2)/2, hp.y1-9
			if hp.y1 != hp.y2 {
				y = p.layerY[p.boxes[hp.from].layer] - 26
			}
			de.label = &placedLabel{text: de.e.label, x: x, y: y, w: w, h: h}
			p.obstacles = append(p.obstacles, rect{x - w/2, y - h/2, w, h})
			continue
		}
		// Try the hop nearest the target first for long edges: it is the
		// one closest to what the label names.
		var best *placedLabel
		bestScore := math.Inf(1)
		for hi := len(de.hops) - 1; hi >= 0; hi-- {
			hp := de.hops[hi]
			for ti, t := range ts {
				x, y := hp.at(t)
				r := rect{x - w/2 - 1, y - h/2 - 1, w + 2, h + 2}
				if !p.free(r) {
					continue
				}
				hidden := 0
				for _, q := range pts {
					if q.edge != i && q.x >= r.x && q.x <= r.x+r.w && q.y >= r.y && q.y <= r.y+r.h {
						hidden++
					}
				}
				score := float64(hidden)*10 + float64(ti) + float64(len(de.hops)-1-hi)*3
				if score < bestScore {
					bestScore = score
					best = &placedLabel{text: de.e.label, x: x, y: y, w: w, h: h}
				}
			}
		}
		if best != nil {
			de.label = best
			p.obstacles = append(p.obstacles, rect{best.x - w/2 - 1, best.y - h/2 - 1, w + 2, h + 2})
		}
	}
}

func (p *picture) free(r rect) bool {
	for _, o := range p.obstacles {
		if r.overlaps(o) {
			return false
		}
	}
	return true
}

// legend entries: the box kinds and arrow classes that the picture uses.
func (p *picture) legendItems() (kinds []kind, classes []edgeClass) {
	hasK, hasC := map[kind]bool{}, map[edgeClass]bool{}
	for _, n := range p.d.nodes {
		hasK[n.kind] = true
	}
	for _, e := range p.d.edges {
		hasC[e.class] = true
	}
	for k := kindClients; k <= kindOther; k++ {
		if hasK[k] {
			kinds = append(kinds, k)
		}
	}
	for c := edgeTraffic; c <= edgeFences; c++ {
		if hasC[c] {
			classes = append(classes, c)
		}
	}
	return kinds, classes
}

type legendItem struct {
	x, y  float64
	text  string
	kind  kind
	class edgeClass
	edge  bool
}

// legendLayout flows the legend's items in rows across the picture.
func (p *picture) legendLayout() ([]legendItem, float64) {
	kinds, classes := p.legendItems()
	var items []legendItem
	x0 := margin + 10
	x, y := x0, 36.0
	maxX := p.width - margin - 10
	add := func(it legendItem) {
		w := 40 + 6 + textWidth(it.text, infoSize, false) + 18
		if x+w > maxX && x > x0 {
			x = x0
			y += 22
		}
		it.x, it.y = x, y
		items = append(items, it)
		x += w
	}
	for _, k := range kinds {
		add(legendItem{text: kindStyles[k].name, kind: k})
	}
	x = x0
	y += 24
	for _, c := range classes {
		add(legendItem{text: classStyles[c].name, class: c, edge: true})
	}
	return items, y + 16
}

func (p *picture) legendHeight() float64 {
	_, h := p.legendLayout()
	return h
}

var classIDs = map[edgeClass]string{
	edgeTraffic:  "traffic",
	edgeMember:   "member",
	edgeRoutes:   "routes",
	edgeLookups:  "lookups",
	edgeRunsOn:   "runs-on",
	edgeFailover: "fails-over",
	edgeFences:   "fences",
}

var kindIDs = map[kind]string{
	kindClients:   "clients",
	kindRouter:    "router",
	kindBalancer:  "balancer",
	kindVIP:       "vip",
	kindFrontend:  "frontend",
	kindRouting:   "routing",
	kindDirectory: "directory",
	kindInstance:  "instance",
	kindBackend:   "backend",
	kindStandby:   "standby",
	kindFence:     "fence",
	kindOther:     "other",
}

func dashArray(s lineStyle) string {
	switch s {
	case styleDashed:
		return ` stroke-dasharray="7 4"`
	case styleDotted:
		return ` stroke-dasharray="1.5 3.5" stroke-linecap="round"`
	}
	return ""
}

func (p *picture) draw() []byte {
	var b bytes.Buffer
	w := func(s ...string) {
		for _, x := range s {
			b.WriteString(x)
		}
	}
	w(`<?xml version="1.0" encoding="UTF-8"?>`, "\n")
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="`, num(p.width), `" height="`, num(p.height),
		`" viewBox="0 0 `, num(p.width), " ", num(p.height), `" font-family="`, fontFamily, `" font-size="12">`, "\n")
	w("<title>", esc(p.d.title), "</title>\n")
	w("<defs>\n")
	for c := edgeTraffic; c <= edgeFences; c++ {
		cs := classStyles[c]
		w(`<marker id="arrow-`, classIDs[c], `" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto">`,
			`<path d="M0,1 L10,5 L0,9 z" fill="`, cs.color, `"/></marker>`, "\n")
	}
	w("</defs>\n")
	w(`<rect x="0" y="0" width="`, num(p.width), `" height="`, num(p.height), `" fill="#ffffff"/>`, "\n")
	w(`<text class="title" x="`, num(margin), `" y="`, num(margin+18), `" font-size="`, num(titleSize), `" font-weight="bold" fill="#222222">`, esc(p.d.title), "</text>\n")

	w(`<g class="bands">`, "\n")
	for _, br := range p.bandRects {
		r := br.r
		w(`<rect class="band" x="`, num(r.x), `" y="`, num(r.y), `" width="`, num(r.w), `" height="`, num(r.h),
			`" rx="10" fill="#f5f8fc" stroke="#b7c3d0"/>`, "\n")
		w(`<text class="band-label" x="`, num(r.x+12), `" y="`, num(r.y+19), `" font-size="`, num(bandSize), `" font-weight="bold" fill="#33475b">`, esc(br.label), "</text>\n")
	}
	for _, gr := range p.groupRect {
		r := gr.r
		w(`<rect class="group" x="`, num(r.x), `" y="`, num(r.y), `" width="`, num(r.w), `" height="`, num(r.h),
			`" rx="8" fill="#ffffff" fill-opacity="0.6" stroke="#7f8c99" stroke-dasharray="5 3"/>`, "\n")
		w(`<text class="group-label" x="`, num(r.x+8), `" y="`, num(r.y+13), `" font-size="`, num(labelSize), `" fill="#55616d">`, esc(gr.label), "</text>\n")
	}
	w("</g>\n")

	w(`<g class="edges" fill="none">`, "\n")
	for _, de := range p.edges {
		cs := classStyles[de.e.class]
		w(`<path class="edge `, classIDs[de.e.class], `" data-from="`, esc(de.e.from), `" data-to="`, esc(de.e.to), `" d="`, de.path,
			`" stroke="`, cs.color, `" stroke-width="`, num(cs.width), `"`, dashArray(de.e.class.style()),
			` marker-end="url(#arrow-`, classIDs[de.e.class], `)"/>`, "\n")
	}
	w("</g>\n")

	w(`<g class="edge-labels" font-size="`, num(labelSize), `">`, "\n")
	for _, de := range p.edges {
		lb := de.label
		if lb == nil {
			continue
		}
		cs := classStyles[de.e.class]
		w(`<rect class="edge-label-bg" x="`, num(lb.x-lb.w/2), `" y="`, num(lb.y-lb.h/2), `" width="`, num(lb.w), `" height="`, num(lb.h),
			`" rx="3" fill="#ffffff" fill-opacity="0.9"/>`, "\n")
		w(`<text class="edge-label" x="`, num(lb.x), `" y="`, num(lb.y+3.5), `" text-anchor="middle" fill="`, cs.color, `">`, esc(lb.text), "</text>\n")
	}
	w("</g>\n")

	w(`<g class="nodes">`, "\n")
	for _, bx := range p.boxes {
		p.drawBox(w, bx)
	}
	w("</g>\n")

	p.drawLegend(w)
	w("</svg>\n")
	return b.Bytes()
}

func (p *picture) drawBox(w func(...string), bx *box) {
	n := bx.n
	ks := kindStyles[n.kind]
	w(`<g class="box `, kindIDs[n.kind], `">`)
	dash := ""
	if ks.dashed {
		dash = ` stroke-dasharray="5 3"`
	}
	w(`<rect class="node" data-id="`, esc(n.id), `" x="`, num(bx.x), `" y="`, num(bx.y), `" width="`, num(bx.w), `" height="`, num(bx.h),
		`" rx="`, num(bx.rx), `" fill="`, ks.fill, `" stroke="`, ks.stroke, `" stroke-width="1.3"`, dash, "/>")
	if ks.note {
		fx := bx.x + bx.w
		w(`<path d="M`, num(fx-10), ",", num(bx.y), " L", num(fx-10), ",", num(bx.y+10), " L", num(fx), ",", num(bx.y+10),
			`" fill="none" stroke="`, ks.stroke, `"/>`)
	}
	w("\n")
	y := bx.y + padY + 11.5
	for k, line := range bx.lines {
		attrs := ` font-size="` + num(infoSize) + `" fill="#333333"`
		if k == 0 {
			attrs = ` font-size="` + num(nameSize) + `" font-weight="bold" fill="#111111"`
		} else if n.kind == kindStandby && line == "hot standby" {
			attrs += ` font-style="italic"`
		}
		w(`<text x="`, num(bx.cx()), `" y="`, num(y), `" text-anchor="middle"`, attrs, ">", esc(line), "</text>\n")
		y += lineH
	}
	w("</g>\n")
}

func (p *picture) drawLegend(w func(...string)) {
	items, h := p.legendLayout()
	y0 := p.legendY
	w(`<g class="legend">`, "\n")
	w(`<rect x="`, num(margin), `" y="`, num(y0), `" width="`, num(p.width-2*margin), `" height="`, num(h),
		`" rx="8" fill="#ffffff" stroke="#cccccc"/>`, "\n")
	w(`<text x="`, num(margin+10), `" y="`, num(y0+16), `" font-weight="bold" fill="#33475b">Legend</text>`, "\n")
	for _, it := range items {
		y := y0 + it.y
		if it.edge {
			cs := classStyles[it.class]
			w(`<path class="legend-edge" d="M`, num(it.x), ",", num(y), " L", num(it.x+38), ",", num(y), `" fill="none" stroke="`, cs.color,
				`" stroke-width="`, num(cs.width), `"`, dashArray(it.class.style()), ` marker-end="url(#arrow-`, classIDs[it.class], `)"/>`, "\n")
		} else {
			ks := kindStyles[it.kind]
			dash := ""
			if ks.dashed {
				dash = ` stroke-dasharray="4 2"`
			}
			rx := "3"
			if ks.pill {
				rx = "8"
			}
			w(`<rect class="legend-swatch" x="`, num(it.x), `" y="`, num(y-8), `" width="40" height="16" rx="`, rx, `" fill="`, ks.fill,
				`" stroke="`, ks.stroke, `"`, dash, "/>\n")
		}
		w(`<text x="`, num(it.x+46), `" y="`, num(y+4), `" font-size="`, num(infoSize), `" fill="#333333">`, esc(it.text), "</text>\n")
	}
	w("</g>\n")
}

// num formats a coordinate with at most one decimal.
func num(x float64) string {
	x = math.Round(x*10) / 10
	if x == 0 {
		return "0"
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// textWidth estimates the width of s in DejaVu Sans (wider than most sans
// fonts, so the estimate errs on the roomy side): about 7px a character at
// 12px, narrower for i, l, dots and spaces, wider for m, w and capitals.
func textWidth(s string, size float64, bold bool) float64 {
	em := 0.0
	for _, r := range s {
		em += charEm(r)
	}
	if bold {
		em *= 1.1
	}
	return em * size
}

func charEm(r rune) float64 {
	switch {
	case strings.ContainsRune("iljI.,:;'|!", r):
		return 0.30
	case strings.ContainsRune("ftr()[]{}/\\ -·", r):
		return 0.40
	case strings.ContainsRune("mwMW@%", r):
		return 0.95
	case r == '#':
		return 0.84
	case r >= 'A' && r <= 'Z':
		return 0.72
	case r >= '0' && r <= '9':
		return 0.64
	case r < 0x80:
		return 0.62
	}
	return 0.9 // other scripts: wide
}
