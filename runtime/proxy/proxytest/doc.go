// Package proxytest holds what the tests of the front-end's protocol
// servers (the IMAP and POP3 proxies, the SMTP router) share: running one
// on 127.0.0.1:0 for a test, a client that speaks raw lines, an address
// where nothing listens and a balancer's PROXY v2 header. It must not
// import spec, render or remote.
package proxytest
