package session

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Gate admits the connections of one service (imap, pop3, smtp): the
// total and per-client limits, a trusted balancer's PROXY header, the
// session id and the session's logger. Its zero limits admit everyone.
type Gate struct {
	// Service labels the metrics.
	Service string
	// Node prefixes the session ids made here (NewID).
	Node string
	// TrustedBalancers may send a PROXY v2 header (Accept).
	TrustedBalancers []netip.Prefix
	// Total bounds the connections (its Max), Clients those of one client
	// address (its PerClient).
	Total, Clients Limiter
	Metrics        *Metrics
	// Log is the service's logger; each session's adds its id and client.
	Log *slog.Logger
}

// Identity is who a session is for, as the logs and the store know it.
type Identity struct {
	ID     string
	Client netip.AddrPort
	Log    *slog.Logger
}

// Admit takes a slot of the total limit for a connection just accepted,
// before anything is read from it, and wraps the connection for a
// balancer's header (Accept). Over the limit it counts the refusal, sends
// refusal (one line, without its CRLF) and closes the connection.
func (g *Gate) Admit(c net.Conn, refusal string) (_ net.Conn, release func(), ok bool) {
	release, err := g.Total.Acquire(netip.Addr{})
	if err != nil {
		g.Metrics.Refused(g.Service, "max_connections")
		c.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c, refusal+"\r\n")
		c.Close()
		return nil, nil, false
	}
	return Accept(c, g.TrustedBalancers), release, true
}

// Identify names the session of a connection from Admit once its client
// has spoken (Client), and takes the client address's slot.
// ErrTooManyForClient is a refusal, already counted and logged, that the
// client should be told; any other error is the connection failing.
func (g *Gate) Identify(c net.Conn) (Identity, func(), error) {
	client, id, err := Client(c)
	if err != nil {
		return Identity{}, nil, err
	}
	if id == "" {
		id = NewID(g.Node)
	}
	who := Identity{ID: id, Client: client, Log: g.Log.With("session", id, "client", client.String())}
	release, err := g.Clients.Acquire(client.Addr())
	if err != nil {
		g.Metrics.Refused(g.Service, "max_per_client")
		who.Log.Warn("connection refused", "reason", err.Error())
		return who, nil, err
	}
	return who, release, nil
}
