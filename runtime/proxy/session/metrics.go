package session

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the front-end's Prometheus collectors. A nil *Metrics
// counts nothing, so the protocol packages call its methods unconditionally.
// It implements directory.Observer.
type Metrics struct {
	connections *prometheus.CounterVec
	active      *prometheus.GaugeVec
	refusals    *prometheus.CounterVec
	logins      *prometheus.CounterVec
	backendUp   *prometheus.GaugeVec
	backendErrs *prometheus.CounterVec
	lookups     *prometheus.CounterVec
	ldap        *prometheus.HistogramVec
	messages    *prometheus.CounterVec
	penalties   prometheus.Histogram
}

// NewMetrics registers the front-end's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_frontend_connections_total",
			Help: "Client connections accepted, by service."}, []string{"service"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailfleet_frontend_sessions_active",
			Help: "Client sessions open now, by service."}, []string{"service"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_frontend_refusals_total",
			Help: "Connections, logins, recipients and commands refused, by service and reason."}, []string{"service", "reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_frontend_logins_total",
			Help: "Login attempts, by service and result."}, []string{"service", "result"}),
		backendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailfleet_frontend_backend_up",
			Help: "1 when the last connection to the instance's listener succeeded, 0 when it failed."}, []string{"instance", "service"}),
		backendErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_frontend_backend_failures_total",
			Help: "Failed connections to instance listeners."}, []string{"instance", "service"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_frontend_directory_lookups_total",
			Help: "Routing lookups, by source (ldap or cache) and result."}, []string{"source", "result"}),
		ldap: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailfleet_frontend_ldap_request_seconds",
			Help:    "LDAP request latency, by operation (search, bind) and result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"op", "result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailfleet_frontend_messages_total",
			Help: "Messages relayed by the SMTP router, by result."}, []string{"result"}),
		penalties: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailfleet_frontend_login_penalty_seconds",
			Help:    "Delays given to failed logins (the node's penalty: per client address and per account).",
			Buckets: []float64{.5, 1, 2, 4, 8, 15}}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.active, m.refusals, m.logins, m.backendUp, m.backendErrs, m.lookups, m.ldap, m.messages, m.penalties)
	}
	return m
}

// Open counts a new session of service; the returned func ends it.
func (m *Metrics) Open(service string) func() {
	if m == nil {
		return func() {}
	}
	m.connections.WithLabelValues(service).Inc()
	g := m.active.WithLabelValues(service)
	g.Inc()
	return g.Dec
}

// Refused counts a refusal.
func (m *Metrics) Refused(service, reason string) {
	if m != nil {
		m.refusals.WithLabelValues(service, reason).Inc()
	}
}

// Login counts a login attempt ("ok", "invalid", "unavailable").
func (m *Metrics) Login(service, result string) {
	if m != nil {
		m.logins.WithLabelValues(service, result).Inc()
	}
}

// Backend records whether a connection to an instance's listener worked.
func (m *Metrics) Backend(instance, service string, ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.backendUp.WithLabelValues(instance, service).Set(1)
		return
	}
	m.backendUp.WithLabelValues(instance, service).Set(0)
	m.backendErrs.WithLabelValues(instance, service).Inc()
}

// Message counts a message the router relayed ("accepted", "refused",
// "failed").
func (m *Metrics) Message(result string) {
	if m != nil {
		m.messages.WithLabelValues(result).Inc()
	}
}

// LDAPRequest implements directory.Observer.
func (m *Metrics) LDAPRequest(op, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.ldap.WithLabelValues(op, result).Observe(took.Seconds())
	if op == "search" {
		m.lookups.WithLabelValues("ldap", result).Inc()
	}
}

// CacheHit implements directory.Observer.
func (m *Metrics) CacheHit(found bool) {
	if m == nil {
		return
	}
	r := "not_found"
	if found {
		r = "ok"
	}
	m.lookups.WithLabelValues("cache", r).Inc()
}

// Penalized counts a failed login's delay (Penalty.Penalized).
func (m *Metrics) Penalized(d time.Duration) {
	if m == nil {
		return
	}
	m.penalties.Observe(d.Seconds())
}
