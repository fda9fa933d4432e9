// Package server is the part of the front-end's IMAP and POP3 proxies that
// does not depend on the protocol: the accept loop, the connection limits,
// the pre-authentication and idle timeouts, session ids and a trusted
// balancer's PROXY v2 header (runtime/proxy/session), routing a login to
// the account's home instance through the directory, the failed-login
// delay and cap, the hop to the instance (PROXY v2 header, STARTTLS), the
// byte copy once logged in (runtime/proxy/splice), metrics, and Close. A
// Protocol brings the rest: its answers, the dialogue with the client
// before login and the login dialogue with the instance.
//
// It must not import spec, render or remote, nor the protocol packages
// that use it.
package server
