// Package remotetest lets tests outside remote (the mailfleet command's)
// start real OpenSSH sshd servers: it re-exports remote/internal/sshdtest.
// A test harness: only tests import it.
package remotetest

import (
	"testing"

	"github.com/mailfleet/mailfleet/remote/internal/sshdtest"
)

type (
	// Server is one running sshd.
	Server = sshdtest.Server
	// ClientKey is a client key pair.
	ClientKey = sshdtest.ClientKey
	// Options tune a server.
	Options = sshdtest.Options
)

// Start runs an sshd for the test accepting the authorized public keys;
// it is stopped (by PID) when the test ends.
func Start(t testing.TB, authorized []string, o Options) *Server {
	t.Helper()
	return sshdtest.Start(t, authorized, o)
}

// NewClientKey makes an ed25519 client key in a temporary directory.
func NewClientKey(t testing.TB) ClientKey {
	t.Helper()
	return sshdtest.NewClientKey(t)
}
