package session

import (
	"container/list"
	"net/netip"
	"sync"
)

// PreAuth holds a node's connections that have not logged in yet, across
// its services. It keeps at most Max of them, and at most PerClient of one
// client address: a new connection beyond either closes the oldest one
// (of the node, or of that address) rather than being refused, as
// Dovecot's login processes do when full. Idle connections opened to
// fill the node thus make room for a client that logs in, instead of
// keeping it out until their timeout. Zero limits keep everything; a nil
// PreAuth does nothing.
type PreAuth struct {
	Max, PerClient int
	// Dropped, if set, is told of each connection closed to make room
	// (metrics), with "node" or "client" for the limit that did it.
	Dropped func(limit string)

	mu        sync.Mutex
	order     *list.List // *preAuthConn, oldest first
	perClient map[netip.Addr]int
}

type preAuthConn struct {
	addr  netip.Addr
	close func()
}

// Enter registers a connection of client address addr that has not logged
// in; close ends it. The returned leave (idempotent) removes it: call it
// once the client has logged in, and when the connection ends.
func (p *PreAuth) Enter(addr netip.Addr, close func()) (leave func()) {
	if p == nil {
		return func() {}
	}
	addr = addr.Unmap()
	var evict []*preAuthConn
	var why []string
	p.mu.Lock()
	if p.order == nil {
		p.order, p.perClient = list.New(), map[netip.Addr]int{}
	}
	if p.PerClient > 0 && p.perClient[addr] >= p.PerClient {
		for e := p.order.Front(); e != nil; e = e.Next() {
			if c := e.Value.(*preAuthConn); c.addr == addr {
				p.removeLocked(e)
				evict, why = append(evict, c), append(why, "client")
				break
			}
		}
	}
	if p.Max > 0 && p.order.Len() >= p.Max {
		e := p.order.Front()
		c := e.Value.(*preAuthConn)
		p.removeLocked(e)
		evict, why = append(evict, c), append(why, "node")
	}
	me := p.order.PushBack(&preAuthConn{addr: addr, close: close})
	p.perClient[addr]++
	p.mu.Unlock()
	for i, c := range evict {
		if p.Dropped != nil {
			p.Dropped(why[i])
		}
		c.close()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if me.Value != nil {
				p.removeLocked(me)
			}
		})
	}
}

// removeLocked takes e out (once: its Value is cleared).
func (p *PreAuth) removeLocked(e *list.Element) {
	c := e.Value.(*preAuthConn)
	p.order.Remove(e)
	e.Value = nil
	if p.perClient[c.addr]--; p.perClient[c.addr] <= 0 {
		delete(p.perClient, c.addr)
	}
}

// Len is the number of connections held.
func (p *PreAuth) Len() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.order == nil {
		return 0
	}
	return p.order.Len()
}
