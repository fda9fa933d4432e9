// Package balancer is the layer-4 load balancer of mailfleet (`mailfleetd
// balancer`): it listens on each service's virtual IP and port (with
// IP_FREEBIND, so the backup of a VRRP pair listens on VIPs it does not hold
// yet), picks a healthy front-end node with the service's scheduler
// (least_conn, weighted_least_conn, round_robin), optionally sends it a
// PROXY protocol v2 header with the client's address and a session id, and
// splices bytes both ways. It owns the active health checks (the protocol's
// greeting, with rise and fall counts), the connection limits and idle
// timeout, reloading (new listeners and backends; removed backends drain),
// and the admin listener's /healthz and Prometheus /metrics.
//
// It never reads what the client sends. It must not import spec, render or
// remote: its only input is a config.Balancer.
package balancer
