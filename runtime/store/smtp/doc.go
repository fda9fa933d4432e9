// Package smtp is the delivery listener of a store instance: SMTP or LMTP
// (github.com/emersion/go-smtp) accepting mail only for the instance's own
// accounts and answering 250 only once the message is durable in their
// maildir. It must not import spec, render or remote.
package smtp
