// Package router is the front-end's SMTP router: an SMTP server (go-smtp)
// that looks each recipient up in the directory and relays the message to
// the SMTP or LMTP listener of the recipient's home instance with go-smtp's
// client, answering 250 only once that instance accepted the message. One
// transaction carries recipients of one home instance: a recipient homed
// elsewhere gets 452 4.5.3 and is sent again in another transaction (RFC
// 5321 §4.5.3.1.10), so every 250 is exact. Mail for outside domains is
// relayed only for authenticated clients, through their own home instance,
// whose queue delivers it.
//
// It must not import spec, render or remote.
package router
