package config

import "time"

// The ports and limits that both render (which writes the daemons'
// configs from a topology) and the daemons (or `mailfleetd dev`) know live
// here, once, beside the fields they set; render fills a config only from
// these and the topology.

// Admin (health and metrics) ports that render gives the balancer and
// front-end roles on their node addresses.
const (
	BalancerAdminPort = 9100
	FrontendAdminPort = 9101
)

// DefaultSessions is a front-end node's concurrent sessions when the
// topology does not say.
const DefaultSessions = 10000

// DefaultMaxPerClient is the connections one client address may hold at a
// role that sees client addresses (the balancer, a front-end behind the
// PROXY protocol).
const DefaultMaxPerClient = 256

// DefaultFailedLoginDelay is waited before answering a failed login, on
// every protocol of every role (Dovecot's auth_failure_delay is 2 s too).
const DefaultFailedLoginDelay = 2 * time.Second

// DefaultMaxMessageBytes bounds one message (SMTP DATA, IMAP APPEND).
const DefaultMaxMessageBytes = 50 << 20

// DefaultLDAPTimeout bounds one directory operation of a front-end or a
// store.
const DefaultLDAPTimeout = 5 * time.Second

// DefaultLimits are the limits of every role's client listeners, apart
// from the connection counts, which depend on the site. IMAP clients may
// stay silent for 29 minutes in IDLE and RFC 3501 §5.4 asks for an
// autologout timer of at least 30 minutes, so idle connections are cut
// after 31. Five minutes before login is RFC 5321 §4.5.3.2.7's server
// timeout, the tightest bound that still lets every MX deliver.
func DefaultLimits() Limits {
	return Limits{
		PreAuthTimeout:   Duration(5 * time.Minute),
		IdleTimeout:      Duration(31 * time.Minute),
		FailedLoginDelay: Duration(DefaultFailedLoginDelay),
		MaxMessageBytes:  DefaultMaxMessageBytes,
		MaxRecipients:    1000,
	}
}

// LoginTimeout bounds the phase before login of IMAP and POP3 sessions:
// their clients log in at once, and an idle connection before login is
// what a flood of them is made of. SMTP keeps PreAuthTimeout, RFC 5321's
// five minutes, which every MX relies on.
const LoginTimeout = 30 * time.Second
