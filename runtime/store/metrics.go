package store

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

// metrics are the instance's counters, gauges and histograms, served in
// the Prometheus text format on the admin listener's /metrics with
// client_golang, as the balancer and the front-end serve theirs. Every
// series carries the instance's name as the label instance.
type metrics struct {
	handler         http.Handler
	sessions        *prometheus.GaugeVec
	sessionsTotal   *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliveredBytes  prometheus.Counter
	deliverySeconds prometheus.Histogram
	logins          *prometheus.CounterVec
	loginSeconds    *prometheus.HistogramVec
	refusals        *prometheus.CounterVec
	outbounds       *prometheus.CounterVec
	outboundSeconds prometheus.Histogram
	bounces         prometheus.Counter
}

// Bucket bounds in seconds: deliveries and logins take milliseconds, an
// outbound attempt up to the SMTP timeouts.
var (
	latencyBuckets  = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5}
	outboundBuckets = []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300}
)

// newMetrics registers the instance's series; queued and up are read at
// each scrape. The series that dashboards expect exist from the start
// (at 0), so that rates start from 0 instead of being absent.
func newMetrics(instance string, listenerKinds []string, queued func() (int, error), up func() time.Duration) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := prometheus.WrapRegistererWith(prometheus.Labels{"instance": instance}, reg)
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		f.MustRegister(v)
		return v
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		f.MustRegister(v)
		return v
	}
	m := &metrics{
		handler:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		sessionsTotal: counter("mailfleet_store_sessions_total", "Sessions accepted by listener.", "listener"),
		deliveries:    counter("mailfleet_store_deliveries_total", "Local deliveries by result (ok, quota, too_big, error).", "result"),
		deliveredBytes: counter("mailfleet_store_delivered_bytes_total", "Bytes stored by successful local deliveries.").
			WithLabelValues(),
		deliverySeconds: histogram("mailfleet_store_delivery_seconds", "Time to store a message durably (write, fsync, rename, fsync dir).",
			latencyBuckets).WithLabelValues().(prometheus.Histogram),
		logins: counter("mailfleet_store_logins_total",
			"Logins by protocol and result (ok, failed: wrong credentials, elsewhere: the account lives on another instance, error: directory unavailable).",
			"proto", "result"),
		loginSeconds: histogram("mailfleet_store_login_seconds", "Time the directory took to check a password, by protocol.", latencyBuckets, "proto"),
		refusals:     counter("mailfleet_store_refusals_total", "Refused recipients, logins and admin requests by protocol and reason.", "proto", "reason"),
		outbounds:    counter("mailfleet_store_outbound_total", "Outbound delivery attempts per recipient by outcome (sent, deferred, failed).", "outcome"),
		outboundSeconds: histogram("mailfleet_store_outbound_seconds", "Time of one outbound attempt for a domain (DNS, connection, transaction).",
			outboundBuckets).WithLabelValues().(prometheus.Histogram),
		bounces: counter("mailfleet_store_bounces_total", "Delivery status notifications given to local senders.").WithLabelValues(),
	}
	m.sessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailfleet_store_sessions", Help: "Open sessions by listener."}, []string{"listener"})
	f.MustRegister(m.sessions)
	f.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailfleet_store_queue_messages", Help: "Messages in the outbound queue."},
		func() float64 {
			n, err := queued()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	f.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailfleet_store_up_seconds", Help: "Seconds since the instance started serving."},
		func() float64 { return up().Seconds() }))
	for _, k := range listenerKinds {
		m.sessions.WithLabelValues(k)
		m.sessionsTotal.WithLabelValues(k)
	}
	for _, r := range []string{"ok", "quota", "too_big", "error"} {
		m.deliveries.WithLabelValues(r)
	}
	for _, p := range []string{"imap", "pop3"} {
		for _, r := range []string{"ok", "failed", "elsewhere", "error"} {
			m.logins.WithLabelValues(p, r)
		}
		m.loginSeconds.WithLabelValues(p)
	}
	for _, o := range []string{"sent", "deferred", "failed"} {
		m.outbounds.WithLabelValues(o)
	}
	return m
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
	m.deliveries.WithLabelValues(result).Inc()
	if err == nil {
		m.deliveredBytes.Add(float64(size))
	}
	m.deliverySeconds.Observe(took.Seconds())
}

func (m *metrics) refused(proto, reason string) { m.refusals.WithLabelValues(proto, reason).Inc() }

// outbound counts one recipient's outbound attempt (queue.Options.Attempted).
func (m *metrics) outbound(outcome string, took time.Duration) {
	m.outbounds.WithLabelValues(outcome).Inc()
	m.outboundSeconds.Observe(took.Seconds())
}

func (in *Instance) handleMetrics(w http.ResponseWriter, r *http.Request) {
	in.metrics.handler.ServeHTTP(w, r)
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
	a.m.logins.WithLabelValues(a.proto, result).Inc()
	if result == "elsewhere" {
		a.m.refused(a.proto, "elsewhere")
	}
	a.m.loginSeconds.WithLabelValues(a.proto).Observe(time.Since(start).Seconds())
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
	l.m.sessions.WithLabelValues(l.kind).Inc()
	l.m.sessionsTotal.WithLabelValues(l.kind).Inc()
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    countedListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.m.sessions.WithLabelValues(c.l.kind).Dec() })
	return c.Conn.Close()
}
