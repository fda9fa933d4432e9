// Package imap is the front-end's IMAP proxy. It speaks the
// pre-authentication phase itself (CAPABILITY, ID, STARTTLS, LOGIN,
// AUTHENTICATE PLAIN with SASL-IR, NOOP, LOGOUT), finds the account's home
// instance in the directory (verifying the password there first when it
// authenticates on the proxy), connects to that instance's IMAP listener
// with a PROXY v2 header naming the client and the session, logs in there,
// answers the client with the instance's tagged OK and from then on copies
// bytes both ways. go-imap's client cannot hand its socket over, so the
// phase before login is spoken on the wire here. What does not depend on
// IMAP (accepting, limits, timeouts, routing, the hop, the copy) is
// runtime/proxy/server's; this package brings IMAP's words to it.
//
// It must not import spec, render or remote.
package imap
