// Package pop3 is the POP3 server of a store instance: RFC 1939 with CAPA
// (RFC 2449), STLS (RFC 2595) and SASL PLAIN (RFC 5034), on top of the
// maildir INBOX. It owns the command parser, the maildrop lock and the
// deferred deletion at QUIT. It must not import spec, render or remote.
package pop3
