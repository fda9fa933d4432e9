package balancer

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// service is one balanced listener and the backends behind it. The
// listener and the service outlive reloads that keep its address.
type service struct {
	ln  net.Listener
	key string // listenKey of cfg

	mu       sync.Mutex
	cfg      config.BalancedService // Backends unused; see backends
	backends []*backend             // in config order; only these take new connections
	turn     uint64                 // rotates ties between equally loaded backends
}

// backend is one front-end node of a service. A backend removed by a
// reload keeps serving its open connections (it drains) but takes no new
// ones.
type backend struct {
	name, addr string
	weight     int   // under service.mu
	current    int64 // smooth weighted round robin, under service.mu

	st      atomic.Int32 // state
	removed atomic.Bool

	active         atomic.Int64
	total          atomic.Uint64
	connectFailed  atomic.Uint64
	bytesToBackend atomic.Uint64
	bytesToClient  atomic.Uint64
	checksOK       atomic.Uint64
	checksFailed   atomic.Uint64

	checkMu   sync.Mutex
	lastCheck time.Time
	lastTook  time.Duration
	lastErr   string

	poke chan struct{} // a client could not connect: check now
	stop chan struct{} // closed when the backend leaves its service
}

func newBackend(c config.Backend) *backend {
	return &backend{name: c.Name, addr: c.Address, weight: c.Weight,
		poke: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (be *backend) state() state { return state(be.st.Load()) }

// usable reports whether be may take a new connection.
func (be *backend) usable() bool { return be.state() != stateDown && !be.removed.Load() }

func (be *backend) setLastCheck(at time.Time, took time.Duration, err error) {
	be.checkMu.Lock()
	defer be.checkMu.Unlock()
	be.lastCheck, be.lastTook, be.lastErr = at, took, ""
	if err != nil {
		be.lastErr = err.Error()
	}
}

// pokeCheck asks the checker for a check now.
func (be *backend) pokeCheck() {
	select {
	case be.poke <- struct{}{}:
	default:
	}
}

// pick chooses a backend for a new connection among the usable ones not in
// tried, and counts the connection on it (the caller must call done on it
// when the connection ends or fails). It returns nil when none is left.
func (s *service) pick(tried []*backend) *backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.backends)
	if n == 0 {
		return nil
	}
	var best *backend
	switch s.cfg.Scheduler {
	case "round_robin":
		// Smooth weighted round robin (as nginx does): with equal weights
		// it cycles in config order; with weights it interleaves.
		var sum int64
		for _, be := range s.backends {
			if !be.usable() || contains(tried, be) {
				continue
			}
			be.current += int64(be.weight)
			sum += int64(be.weight)
			if best == nil || be.current > best.current {
				best = be
			}
		}
		if best != nil {
			best.current -= sum
		}
	default:
		// least_conn and weighted_least_conn: the fewest connections
		// (per unit of weight), ties taken in turn starting one further
		// each time.
		weighted := s.cfg.Scheduler == "weighted_least_conn"
		start := int(s.turn % uint64(n))
		s.turn++
		var bestLoad, bestWeight int64
		for i := 0; i < n; i++ {
			be := s.backends[(start+i)%n]
			if !be.usable() || contains(tried, be) {
				continue
			}
			load, weight := be.active.Load(), int64(1)
			if weighted {
				// The load it would have with this connection, so that a
				// heavier backend wins a tie at zero.
				load, weight = load+1, int64(be.weight)
			}
			if best == nil || load*bestWeight < bestLoad*weight {
				best, bestLoad, bestWeight = be, load, weight
			}
		}
	}
	if best != nil {
		best.active.Add(1)
	}
	return best
}

func contains(bs []*backend, b *backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// listenKey identifies a listener across reloads: its address, or with
// port 0 (tests) the service name too, since each such listener differs.
func listenKey(s config.BalancedService) string {
	if len(s.Listen) > 2 && s.Listen[len(s.Listen)-2:] == ":0" {
		return s.Name + "@" + s.Listen
	}
	return s.Listen
}
