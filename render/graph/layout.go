package graph

import (
	"math"
	"sort"
)

// A small layered (Sugiyama-style) layout:
//
//  1. layers are given by the caller (the tiers fix them: clients, balancer,
//     front-end, routing, instances, backend nodes, fence devices);
//  2. an edge that spans several layers gets a dummy node in every layer it
//     crosses, so that every segment joins two adjacent layers;
//  3. the order within each layer is improved by barycenter sweeps, down and
//     up, keeping the order with the fewest crossings; boxes of one group
//     (a balancer with its VIPs) stay next to each other;
//  4. x coordinates come from repeatedly pulling every box towards the mean
//     x of its neighbours while keeping the order and the minimum gaps,
//     which is an isotonic regression solved exactly (pool adjacent
//     violators).
//
// Everything is deterministic: slices only, stable sorts, fixed iteration
// counts.

type lnode struct {
	w     float64
	layer int
	group int // -1: none
	dummy bool
	pos   int     // index within its layer
	x     float64 // centre
}

type layout struct {
	nodes  []*lnode
	layers [][]int // node indices, left to right
	up     [][]int // neighbours in the layer above, per node
	down   [][]int // neighbours in the layer below, per node
	// gap returns the least free space between two boxes that end up next
	// to each other in a layer, a on the left.
	gap func(a, b int) float64
}

func newLayout(nLayers int) *layout {
	return &layout{layers: make([][]int, nLayers)}
}

func (l *layout) addNode(w float64, layer, group int, dummy bool) int {
	id := len(l.nodes)
	l.nodes = append(l.nodes, &lnode{w: w, layer: layer, group: group, dummy: dummy, pos: len(l.layers[layer])})
	l.layers[layer] = append(l.layers[layer], id)
	l.up = append(l.up, nil)
	l.down = append(l.down, nil)
	return id
}

// addEdge joins from and to and returns the chain of boxes the edge passes,
// from first, to last, with a dummy in every layer between them. An edge
// within one layer gets no dummies and takes no part in the ordering.
func (l *layout) addEdge(from, to int, dummyW float64) []int {
	a, b := l.nodes[from].layer, l.nodes[to].layer
	chain := []int{from}
	if a == b {
		return append(chain, to)
	}
	step := 1
	if b < a {
		step = -1
	}
	prev := from
	for k := a + step; ; k += step {
		next := to
		if k != b {
			next = l.addNode(dummyW, k, -1, true)
		}
		if step > 0 {
			l.down[prev] = append(l.down[prev], next)
			l.up[next] = append(l.up[next], prev)
		} else {
			l.up[prev] = append(l.up[prev], next)
			l.down[next] = append(l.down[next], prev)
		}
		chain = append(chain, next)
		prev = next
		if k == b {
			break
		}
	}
	return chain
}

func (l *layout) run() {
	l.order()
	l.place()
}

// crossings counts the crossings of the segments between layer k and k+1.
func (l *layout) crossings(k int) int {
	type seg struct{ a, b int }
	var segs []seg
	for _, u := range l.layers[k] {
		for _, v := range l.down[u] {
			segs = append(segs, seg{l.nodes[u].pos, l.nodes[v].pos})
		}
	}
	sort.Slice(segs, func(i, j int) bool {
		if segs[i].a != segs[j].a {
			return segs[i].a < segs[j].a
		}
		return segs[i].b < segs[j].b
	})
	// Count inversions of b with a Fenwick tree over positions.
	size := len(l.layers[k+1]) + 1
	tree := make([]int, size+1)
	n := 0
	for i := len(segs) - 1; i >= 0; i-- {
		// The segments seen so far come after this one: a' > a, or a' = a
		// and b' >= b. Those with b' < b cross it.
		for j := segs[i].b; j > 0; j -= j & -j {
			n += tree[j]
		}
		for j := segs[i].b + 1; j <= size; j += j & -j {
			tree[j]++
		}
	}
	return n
}

func (l *layout) totalCrossings() int {
	n := 0
	for k := 0; k+1 < len(l.layers); k++ {
		n += l.crossings(k)
	}
	return n
}

func (l *layout) snapshot() [][]int {
	s := make([][]int, len(l.layers))
	for k, ly := range l.layers {
		s[k] = append([]int(nil), ly...)
	}
	return s
}

func (l *layout) restore(s [][]int) {
	for k := range s {
		l.layers[k] = append(l.layers[k][:0], s[k]...)
		for i, v := range l.layers[k] {
			l.nodes[v].pos = i
		}
	}
}

// order runs barycenter sweeps and keeps the best order seen.
func (l *layout) order() {
	best := l.totalCrossings()
	bestOrder := l.snapshot()
	for iter := 0; iter < 24 && best > 0; iter++ {
		if iter%2 == 0 {
			for k := 1; k < len(l.layers); k++ {
				l.reorder(k, l.up)
			}
		} else {
			for k := len(l.layers) - 2; k >= 0; k-- {
				l.reorder(k, l.down)
			}
		}
		if c := l.totalCrossings(); c < best {
			best, bestOrder = c, l.snapshot()
		}
	}
	l.restore(bestOrder)
}

// rel is a position within its layer scaled to [0, 1], so that layers of
// different sizes compare.
func (l *layout) rel(v int) float64 {
	n := len(l.layers[l.nodes[v].layer])
	if n <= 1 {
		return 0.5
	}
	return float64(l.nodes[v].pos) / float64(n-1)
}

// reorder sorts layer k by the mean position of each box's neighbours in nb.
// A box with no such neighbour keeps its own place; a group sorts by the
// mean of its members and keeps its members together, those without
// neighbours first.
func (l *layout) reorder(k int, nb [][]int) {
	ly := l.layers[k]
	bary := map[int]float64{}
	has := map[int]bool{}
	for _, v := range ly {
		if len(nb[v]) == 0 {
			bary[v] = l.rel(v)
			continue
		}
		s := 0.0
		for _, u := range nb[v] {
			s += l.rel(u)
		}
		bary[v] = s / float64(len(nb[v]))
		has[v] = true
	}
	gsum, gn, gall, gnAll := map[int]float64{}, map[int]int{}, map[int]float64{}, map[int]int{}
	for _, v := range ly {
		g := l.nodes[v].group
		if g < 0 {
			continue
		}
		gall[g] += bary[v]
		gnAll[g]++
		if has[v] {
			gsum[g] += bary[v]
			gn[g]++
		}
	}
	key := func(v int) float64 {
		g := l.nodes[v].group
		if g < 0 {
			return bary[v]
		}
		if gn[g] > 0 {
			return gsum[g] / float64(gn[g])
		}
		return gall[g] / float64(gnAll[g])
	}
	sorted := append([]int(nil), ly...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		ka, kb := key(a), key(b)
		if ka != kb {
			return ka < kb
		}
		ga, gb := l.nodes[a].group, l.nodes[b].group
		if ga != gb {
			return ga < gb
		}
		if ga >= 0 && has[a] != has[b] {
			return !has[a]
		}
		if ga >= 0 && !has[a] {
			return l.nodes[a].pos < l.nodes[b].pos
		}
		if bary[a] != bary[b] {
			return bary[a] < bary[b]
		}
		return l.nodes[a].pos < l.nodes[b].pos
	})
	l.layers[k] = sorted
	for i, v := range sorted {
		l.nodes[v].pos = i
	}
}

// place assigns x coordinates: packed left to right first, then pulled
// towards their neighbours.
func (l *layout) place() {
	for _, ly := range l.layers {
		x := 0.0
		for i, v := range ly {
			if i > 0 {
				x += l.sep(ly[i-1], v)
			}
			l.nodes[v].x = x
		}
	}
	for iter := 0; iter < 40; iter++ {
		switch iter % 4 {
		case 0:
			for k := 1; k < len(l.layers); k++ {
				l.pull(k, true, false)
			}
		case 1:
			for k := len(l.layers) - 2; k >= 0; k-- {
				l.pull(k, false, true)
			}
		default:
			for k := 0; k < len(l.layers); k++ {
				l.pull(k, true, true)
			}
		}
	}
	for k := range l.layers {
		l.pull(k, true, true)
	}
	// Round to whole pixels while keeping the gaps.
	for _, ly := range l.layers {
		for i, v := range ly {
			n := l.nodes[v]
			n.x = math.Round(n.x)
			if i > 0 {
				if lo := l.nodes[ly[i-1]].x + l.sep(ly[i-1], v); n.x < lo {
					n.x = math.Ceil(lo)
				}
			}
		}
	}
}

// sep is the least distance between the centres of a and b, a left of b.
func (l *layout) sep(a, b int) float64 {
	return l.nodes[a].w/2 + l.gap(a, b) + l.nodes[b].w/2
}

// pull moves the boxes of layer k towards the mean x of their neighbours
// above and/or below, as far as the order and the gaps allow.
func (l *layout) pull(k int, useUp, useDown bool) {
	ly := l.layers[k]
	n := len(ly)
	if n == 0 {
		return
	}
	target := make([]float64, n)
	weight := make([]float64, n)
	off := make([]float64, n)
	for i, v := range ly {
		if i > 0 {
			off[i] = off[i-1] + l.sep(ly[i-1], v)
		}
		s, c := 0.0, 0
		if useUp {
			for _, u := range l.up[v] {
				s += l.nodes[u].x
				c++
			}
		}
		if useDown {
			for _, u := range l.down[v] {
				s += l.nodes[u].x
				c++
			}
		}
		if c == 0 {
			target[i], weight[i] = l.nodes[v].x, 0.25
		} else {
			target[i], weight[i] = s/float64(c), float64(c)
			if l.nodes[v].dummy {
				weight[i] *= 4 // keep long edges straight
			}
		}
		target[i] -= off[i]
	}
	y := isotonic(target, weight)
	for i, v := range ly {
		l.nodes[v].x = y[i] + off[i]
	}
}

// isotonic returns the non-decreasing sequence closest to t in weighted
// least squares (pool adjacent violators).
func isotonic(t, w []float64) []float64 {
	type block struct {
		sum, weight float64
		n           int
	}
	var bs []block
	for i := range t {
		bs = append(bs, block{t[i] * w[i], w[i], 1})
		for len(bs) > 1 {
			a, b := bs[len(bs)-2], bs[len(bs)-1]
			if a.sum/a.weight <= b.sum/b.weight {
				break
			}
			bs = append(bs[:len(bs)-2], block{a.sum + b.sum, a.weight + b.weight, a.n + b.n})
		}
	}
	out := make([]float64, 0, len(t))
	for _, b := range bs {
		m := b.sum / b.weight
		for j := 0; j < b.n; j++ {
			out = append(out, m)
		}
	}
	return out
}
