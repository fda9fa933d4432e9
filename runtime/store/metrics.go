package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

// metrics are the instance's counters, gauges and histograms, served in
// the Prometheus text format (0.0.4) on the admin listener's /metrics.
// prometheus/client_golang is not a dependency of mailfleet, and this
// handful of series does not need it.
type metrics struct {
	mu     sync.Mutex
	series map[string]map[string]float64    // metric → label set → value
	hists  map[string]map[string]*histogram // metric → label set → histogram
}

// metricDesc describes one metric family; families are written in this
// order.
type metricDesc struct {
	name, kind, help string
}

var metricDescs = []metricDesc{
	{"mailfleet_store_sessions", "gauge", "Open sessions by listener."},
	{"mailfleet_store_sessions_total", "counter", "Sessions accepted by listener."},
	{"mailfleet_store_deliveries_total", "counter", "Local deliveries by result (ok, quota, too_big, error)."},
	{"mailfleet_store_delivered_bytes_total", "counter", "Bytes stored by successful local deliveries."},
	{"mailfleet_store_delivery_seconds", "histogram", "Time to store a message durably (write, fsync, rename, fsync dir)."},
	{"mailfleet_store_logins_total", "counter", "Logins by protocol and result (ok, failed: wrong credentials, error: directory unavailable)."},
	{"mailfleet_store_login_seconds", "histogram", "Time the directory took to check a password, by protocol."},
	{"mailfleet_store_refusals_total", "counter", "Refused recipients, logins and admin requests by protocol and reason."},
	{"mailfleet_store_outbound_total", "counter", "Outbound delivery attempts per recipient by outcome (sent, deferred, failed)."},
	{"mailfleet_store_outbound_seconds", "histogram", "Time of one outbound attempt for a domain (DNS, connection, transaction)."},
	{"mailfleet_store_bounces_total", "counter", "Delivery status notifications given to local senders."},
	{"mailfleet_store_queue_messages", "gauge", "Messages in the outbound queue."},
	{"mailfleet_store_up_seconds", "gauge", "Seconds since the instance started serving."},
}

// Bucket bounds in seconds: deliveries and logins take milliseconds, an
// outbound attempt up to the SMTP timeouts.
var (
	latencyBuckets  = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5}
	outboundBuckets = []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300}
)

type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v
	h.counts[i]++
	h.sum += v
}

// labels renders label pairs ("k", "v", ...) in the given order.
func labels(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", kv[i], kv[i+1])
	}
	return b.String()
}

func (m *metrics) add(name, lset string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked(name, lset, v)
}

func (m *metrics) addLocked(name, lset string, v float64) {
	if m.series == nil {
		m.series = map[string]map[string]float64{}
	}
	if m.series[name] == nil {
		m.series[name] = map[string]float64{}
	}
	m.series[name][lset] += v
}

func (m *metrics) observeLocked(name, lset string, bounds []float64, v float64) {
	m.histLocked(name, lset, bounds).observe(v)
}

// histLocked returns the histogram of a label set, creating it empty.
func (m *metrics) histLocked(name, lset string, bounds []float64) *histogram {
	if m.hists == nil {
		m.hists = map[string]map[string]*histogram{}
	}
	if m.hists[name] == nil {
		m.hists[name] = map[string]*histogram{}
	}
	h := m.hists[name][lset]
	if h == nil {
		h = &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
		m.hists[name][lset] = h
	}
	return h
}

func (m *metrics) setLocked(name, lset string, v float64) {
	m.addLocked(name, lset, 0)
	m.series[name][lset] = v
}

// delivered counts a local delivery (smtp.Options.Delivered).
func (m *metrics) delivered(addr string, size int64, took time.Duration, err error) {
	result := "ok"
	switch {
	case errors.Is(err, maildir.ErrQuota):
		result = "quota"
	case errors.Is(err, maildir.ErrTooBig):
		result = "too_big"
	case err != nil:
		result = "error"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked("mailfleet_store_deliveries_total", labels("result", result), 1)
	if err == nil {
		m.addLocked("mailfleet_store_delivered_bytes_total", "", float64(size))
	}
	m.observeLocked("mailfleet_store_delivery_seconds", "", latencyBuckets, took.Seconds())
}

func (m *metrics) refused(proto, reason string) {
	m.add("mailfleet_store_refusals_total", labels("proto", proto, "reason", reason), 1)
}

// outbound counts one recipient's outbound attempt (queue.Options.Attempted).
func (m *metrics) outbound(outcome string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked("mailfleet_store_outbound_total", labels("outcome", outcome), 1)
	m.observeLocked("mailfleet_store_outbound_seconds", "", outboundBuckets, took.Seconds())
}

// zero makes the series that dashboards expect exist before their first
// event, so that rates start from 0 instead of being absent.
func (m *metrics) zero(listenerKinds []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range listenerKinds {
		m.addLocked("mailfleet_store_sessions", labels("listener", k), 0)
		m.addLocked("mailfleet_store_sessions_total", labels("listener", k), 0)
	}
	for _, r := range []string{"ok", "quota", "too_big", "error"} {
		m.addLocked("mailfleet_store_deliveries_total", labels("result", r), 0)
	}
	m.addLocked("mailfleet_store_delivered_bytes_total", "", 0)
	m.histLocked("mailfleet_store_delivery_seconds", "", latencyBuckets)
	for _, p := range []string{"imap", "pop3"} {
		for _, r := range []string{"ok", "failed", "elsewhere", "error"} {
			m.addLocked("mailfleet_store_logins_total", labels("proto", p, "result", r), 0)
		}
		m.histLocked("mailfleet_store_login_seconds", labels("proto", p), latencyBuckets)
	}
	for _, o := range []string{"sent", "deferred", "failed"} {
		m.addLocked("mailfleet_store_outbound_total", labels("outcome", o), 0)
	}
	m.histLocked("mailfleet_store_outbound_seconds", "", outboundBuckets)
	m.addLocked("mailfleet_store_bounces_total", "", 0)
}

// write renders every family with the instance label first.
func (m *metrics) write(w io.Writer, instance string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := labels("instance", instance)
	join := func(lset string, extra ...string) string {
		all := inst
		if lset != "" {
			all += "," + lset
		}
		if len(extra) > 0 {
			all += "," + labels(extra...)
		}
		return "{" + all + "}"
	}
	for _, d := range metricDescs {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", d.name, d.help, d.name, d.kind)
		if d.kind == "histogram" {
			hs := m.hists[d.name]
			for _, lset := range sortedKeys(hs) {
				h := hs[lset]
				var cum uint64
				for i, b := range h.bounds {
					cum += h.counts[i]
					fmt.Fprintf(w, "%s_bucket%s %d\n", d.name, join(lset, "le", fmt.Sprint(b)), cum)
				}
				cum += h.counts[len(h.bounds)]
				fmt.Fprintf(w, "%s_bucket%s %d\n", d.name, join(lset, "le", "+Inf"), cum)
				fmt.Fprintf(w, "%s_sum%s %g\n", d.name, join(lset), h.sum)
				fmt.Fprintf(w, "%s_count%s %d\n", d.name, join(lset), cum)
			}
			continue
		}
		s := m.series[d.name]
		for _, lset := range sortedKeys(s) {
			fmt.Fprintf(w, "%s%s %g\n", d.name, join(lset), s[lset])
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (in *Instance) handleMetrics(w http.ResponseWriter, r *http.Request) {
	m := &in.metrics
	m.mu.Lock()
	if n, err := in.queue.Len(); err == nil {
		m.setLocked("mailfleet_store_queue_messages", "", float64(n))
	}
	m.setLocked("mailfleet_store_up_seconds", "", time.Since(in.started).Seconds())
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.write(w, in.cfg.Instance)
}

// meteredAuth counts the logins of one protocol and times the directory.
type meteredAuth struct {
	dir   auth.Directory
	proto string
	m     *metrics
}

func (a meteredAuth) Authenticate(ctx context.Context, username, password string) (string, error) {
	start := time.Now()
	addr, err := a.dir.Authenticate(ctx, username, password)
	result := "ok"
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		result = "failed"
	case errors.Is(err, auth.ErrElsewhere):
		// The password was right, but the account lives on another
		// instance: refused for now.
		result = "elsewhere"
	case err != nil:
		result = "error"
	}
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	a.m.addLocked("mailfleet_store_logins_total", labels("proto", a.proto, "result", result), 1)
	if result == "elsewhere" {
		a.m.addLocked("mailfleet_store_refusals_total", labels("proto", a.proto, "reason", "elsewhere"), 1)
	}
	a.m.observeLocked("mailfleet_store_login_seconds", labels("proto", a.proto), latencyBuckets, time.Since(start).Seconds())
	return addr, err
}

// countedListener counts the sessions of one listener: every accepted
// connection is a session until it is closed.
type countedListener struct {
	net.Listener
	kind string
	m    *metrics
}

func (l countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.m.mu.Lock()
	l.m.addLocked("mailfleet_store_sessions", labels("listener", l.kind), 1)
	l.m.addLocked("mailfleet_store_sessions_total", labels("listener", l.kind), 1)
	l.m.mu.Unlock()
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    countedListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.m.add("mailfleet_store_sessions", labels("listener", c.l.kind), -1) })
	return c.Conn.Close()
}
