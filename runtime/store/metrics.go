package store

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

// metrics are the instance's counters, served in the Prometheus text format
// on the admin listener's /metrics.
type metrics struct {
	mu          sync.Mutex
	results     map[string]uint64 // by result: ok, quota, too_big, error
	bytes       uint64
	latencySum  float64
	latencyHist [len(latencyBuckets) + 1]uint64
}

var latencyBuckets = [...]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5}

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
	if m.results == nil {
		m.results = map[string]uint64{}
	}
	m.results[result]++
	if err == nil {
		m.bytes += uint64(size)
	}
	s := took.Seconds()
	m.latencySum += s
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	m.latencyHist[i]++
}

func (in *Instance) handleMetrics(w http.ResponseWriter, r *http.Request) {
	m := &in.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP mailfleet_store_deliveries_total Local deliveries by result.")
	fmt.Fprintln(w, "# TYPE mailfleet_store_deliveries_total counter")
	for _, res := range []string{"ok", "quota", "too_big", "error"} {
		fmt.Fprintf(w, "mailfleet_store_deliveries_total{instance=%q,result=%q} %d\n", in.cfg.Instance, res, m.results[res])
	}
	fmt.Fprintln(w, "# HELP mailfleet_store_delivered_bytes_total Bytes stored by successful deliveries.")
	fmt.Fprintln(w, "# TYPE mailfleet_store_delivered_bytes_total counter")
	fmt.Fprintf(w, "mailfleet_store_delivered_bytes_total{instance=%q} %d\n", in.cfg.Instance, m.bytes)
	fmt.Fprintln(w, "# HELP mailfleet_store_delivery_seconds Time to store a message durably (write, fsync, rename, fsync dir).")
	fmt.Fprintln(w, "# TYPE mailfleet_store_delivery_seconds histogram")
	var cum, count uint64
	for i, b := range latencyBuckets {
		cum += m.latencyHist[i]
		fmt.Fprintf(w, "mailfleet_store_delivery_seconds_bucket{instance=%q,le=\"%g\"} %d\n", in.cfg.Instance, b, cum)
	}
	count = cum + m.latencyHist[len(latencyBuckets)]
	fmt.Fprintf(w, "mailfleet_store_delivery_seconds_bucket{instance=%q,le=\"+Inf\"} %d\n", in.cfg.Instance, count)
	fmt.Fprintf(w, "mailfleet_store_delivery_seconds_sum{instance=%q} %g\n", in.cfg.Instance, m.latencySum)
	fmt.Fprintf(w, "mailfleet_store_delivery_seconds_count{instance=%q} %d\n", in.cfg.Instance, count)
	fmt.Fprintln(w, "# HELP mailfleet_store_up_seconds Seconds since the instance started serving.")
	fmt.Fprintln(w, "# TYPE mailfleet_store_up_seconds gauge")
	fmt.Fprintf(w, "mailfleet_store_up_seconds{instance=%q} %g\n", in.cfg.Instance, time.Since(in.started).Seconds())
}
