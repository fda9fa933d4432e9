// Package session holds what the front-end's IMAP and POP3 proxies and its
// SMTP router share about one client session: its id (taken from a trusted
// balancer's PROXY v2 header or made here), the client's address, the
// connection limits in total and per client address (a Gate admits each
// connection against them), the hop to a store instance (TCP, then a
// PROXY v2 header naming the client and carrying the session id), and the
// Prometheus metrics of the front-end.
//
// It must not import spec, render or remote, nor the protocol packages
// that use it.
package session
