package balancer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the balancer's Prometheus series, on a registry of its own.
// Per-backend counters live in the backends (atomics on the connection
// path) and are read at scrape time by the collector.
type metrics struct {
	reg          *prometheus.Registry
	refused      *prometheus.CounterVec
	checkSeconds *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
}

var (
	descActive = prometheus.NewDesc("mailfleet_balancer_backend_connections_active",
		"Client connections open to the backend.", []string{"service", "backend"}, nil)
	descTotal = prometheus.NewDesc("mailfleet_balancer_backend_connections_total",
		"Client connections forwarded to the backend.", []string{"service", "backend"}, nil)
	descConnectFailed = prometheus.NewDesc("mailfleet_balancer_backend_connect_failures_total",
		"Connects to the backend for a client that failed (the client was sent to another backend).", []string{"service", "backend"}, nil)
	descBytes = prometheus.NewDesc("mailfleet_balancer_backend_bytes_total",
		"Bytes forwarded, by direction (to_backend, to_client).", []string{"service", "backend", "direction"}, nil)
	descUp = prometheus.NewDesc("mailfleet_balancer_backend_up",
		"1 when the backend passed its health checks, 0 when it is down or not checked yet.", []string{"service", "backend"}, nil)
	descDraining = prometheus.NewDesc("mailfleet_balancer_backend_draining",
		"1 for a backend removed by a reload that still carries connections.", []string{"service", "backend"}, nil)
	descChecks = prometheus.NewDesc("mailfleet_balancer_health_checks_total",
		"Health checks by result (ok, failed).", []string{"service", "backend", "result"}, nil)
	descConns = prometheus.NewDesc("mailfleet_balancer_connections_active",
		"Client connections open on the balancer.", nil, nil)
)

func newMetrics(b *Balancer) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_balancer_refused_total",
			Help: "Client connections refused, by reason (max_connections, max_per_client, no_backend)."},
			[]string{"service", "reason"}),
		checkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailfleet_balancer_health_check_seconds",
			Help:    "Time a health check took (connect and greeting, or until it failed).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}},
			[]string{"service", "backend"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_balancer_reloads_total",
			Help: "Config reloads by result (ok, failed)."}, []string{"result"}),
	}
	m.reg.MustRegister(m.refused, m.checkSeconds, m.reloads, (*collector)(b),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// collector reads the backends' counters at scrape time.
type collector Balancer

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActive, descTotal, descConnectFailed, descBytes, descUp, descDraining, descChecks, descConns} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	b := (*Balancer)(c)
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descConns, gauge, float64(b.limiter.open()))
	for _, e := range b.backendEntries() {
		be, svc := e.be, e.service
		ch <- prometheus.MustNewConstMetric(descActive, gauge, float64(be.active.Load()), svc, be.name)
		ch <- prometheus.MustNewConstMetric(descTotal, counter, float64(be.total.Load()), svc, be.name)
		ch <- prometheus.MustNewConstMetric(descConnectFailed, counter, float64(be.connectFailed.Load()), svc, be.name)
		ch <- prometheus.MustNewConstMetric(descBytes, counter, float64(be.bytesToBackend.Load()), svc, be.name, "to_backend")
		ch <- prometheus.MustNewConstMetric(descBytes, counter, float64(be.bytesToClient.Load()), svc, be.name, "to_client")
		ch <- prometheus.MustNewConstMetric(descChecks, counter, float64(be.checksOK.Load()), svc, be.name, "ok")
		ch <- prometheus.MustNewConstMetric(descChecks, counter, float64(be.checksFailed.Load()), svc, be.name, "failed")
		up, draining := 0.0, 0.0
		if be.state() == stateUp {
			up = 1
		}
		if be.removed.Load() {
			draining = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, gauge, up, svc, be.name)
		ch <- prometheus.MustNewConstMetric(descDraining, gauge, draining, svc, be.name)
	}
}
