// Package frontend wires one front-end node (`mailfleetd frontend`) from
// its config (runtime/config.Frontend): the directory client, the IMAP and
// POP3 proxies, the SMTP router, and the admin listener with /healthz and
// Prometheus /metrics. The protocol work lives in runtime/proxy/...,
// runtime/router and runtime/directory; this package owns only their
// wiring. It must not import spec, render or remote.
package frontend
