// Package pop3 is the front-end's POP3 proxy: it speaks the authorization
// state itself (CAPA, STLS, USER/PASS, AUTH PLAIN, QUIT), finds the
// account's home instance in the directory (binding as the account first
// when it authenticates on the proxy), connects to that instance's POP3
// listener with a PROXY v2 header naming the client and the session, logs
// in there with AUTH PLAIN, passes the instance's +OK on and from then on
// copies bytes both ways. What does not depend on POP3 is
// runtime/proxy/server's; this package brings POP3's words to it.
//
// It must not import spec, render or remote.
package pop3
