package server

import (
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
)

// Options configure a proxy.
type Options struct {
	// Node prefixes the session ids made here. Empty: "fe".
	Node string
	// Directory is required.
	Directory Directory
	// Instances are the home instances by FQDN; DefaultRoute names the one
	// that takes logins of names not in the directory, and only when
	// AuthenticateOnProxy is off (the instance then decides).
	Instances    map[string]config.InstanceRoute
	DefaultRoute string
	// AuthenticateOnProxy verifies the password with an LDAP bind before
	// connecting to the instance.
	AuthenticateOnProxy bool
	// TLSConfig enables STARTTLS (POP3: STLS); with it set, logins are
	// refused before it (IMAP announces LOGINDISABLED). Nil: no STARTTLS.
	TLSConfig *tls.Config
	// BackendTLS, when set, makes the hop to the instances use STARTTLS
	// (STLS) with this config.
	BackendTLS *tls.Config
	// TrustedBalancers may send a PROXY v2 header. Nil: never read.
	TrustedBalancers []netip.Prefix
	// MaxConnections and MaxPerClient bound the sessions. Zero: no limit.
	MaxConnections, MaxPerClient int
	// PreAuthTimeout bounds the phase before login. Zero: 1 minute.
	PreAuthTimeout time.Duration
	// IdleTimeout cuts a logged-in session after that long with no byte
	// either way. Zero: the protocol's, 31 minutes for IMAP (RFC 3501 §5.4
	// asks for at least 30) and 10 for POP3 (RFC 1939 §3).
	IdleTimeout time.Duration
	// BackendTimeout bounds connecting and logging in to an instance.
	// Zero: 10 seconds.
	BackendTimeout time.Duration
	// FailedLoginDelay is the first failed login's delay; after
	// MaxFailedLogins failures the session ends. Zero: no delay; 3.
	FailedLoginDelay time.Duration
	MaxFailedLogins  int
	// Penalty is the node's failed-login penalty, shared by its protocols
	// (session.Penalty). Nil: one of this server's own, from
	// FailedLoginDelay (doubling up to 15 s, forgotten after 15 minutes).
	Penalty *session.Penalty
	// PreAuth is the node's registry of connections not logged in yet,
	// shared by its protocols (session.PreAuth): beyond its limits the
	// oldest is closed. Nil: no such limit.
	PreAuth *session.PreAuth
	// Metrics, when set, counts sessions, logins, refusals.
	Metrics *session.Metrics
	// Logger receives the structured log. Nil: discarded.
	Logger *slog.Logger
}
