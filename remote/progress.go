package remote

import (
	"fmt"
	"io"
	"strings"
)

// Progress shows Engine events: on a terminal one line per host, redrawn
// in place as the hosts move on; elsewhere a plain line per event.
type Progress struct {
	w     io.Writer
	tty   bool
	nodes []string
	state map[string]string
	drawn int
}

// NewProgress writes to w; tty selects the redrawn display.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, state: map[string]string{}}
}

// Event is an Options.Progress function.
func (p *Progress) Event(ev Event) {
	if _, ok := p.state[ev.Node]; !ok {
		p.nodes = append(p.nodes, ev.Node)
	}
	st := ev.Status
	if i := strings.IndexByte(st, '\n'); i >= 0 {
		st = st[:i] + " …"
	}
	p.state[ev.Node] = st
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", ev.Node, st)
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, n := range p.nodes {
		line := fmt.Sprintf("%-16s %s", n, p.state[n])
		if len(line) > 120 {
			line = line[:119] + "…"
		}
		fmt.Fprintf(&b, "\r\x1b[2K%s\n", line)
	}
	p.drawn = len(p.nodes)
	io.WriteString(p.w, b.String())
}
