package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mailfleet/mailfleet/remote/sshconn"
	"github.com/mailfleet/mailfleet/spec"
)

// sshFlags are how every command that talks SSH (plan, apply, and the
// account commands through a jump host) finds host keys and its own keys.
type sshFlags struct {
	knownHosts string
	acceptNew  bool
	identities multiFlag
}

func (s *sshFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.knownHosts, "known-hosts", "", "known_hosts `FILE` (default ~/.ssh/known_hosts)")
	fs.BoolVar(&s.acceptNew, "accept-new", false, "add unknown host keys to known_hosts (changed keys are always refused)")
	fs.Var(&s.identities, "identity", "private key `FILE` (repeatable; ssh-agent is used too when SSH_AUTH_SOCK is set)")
}

// pool opens the connection pool these flags describe.
func (s *sshFlags) pool(e *env) (*sshconn.Pool, error) {
	kh := s.knownHosts
	if kh == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, errors.New("no home directory for ~/.ssh/known_hosts: give -known-hosts FILE")
		}
		kh = filepath.Join(home, ".ssh", "known_hosts")
	}
	if s.acceptNew {
		if err := os.MkdirAll(filepath.Dir(kh), 0o700); err != nil {
			return nil, err
		}
		if f, err := os.OpenFile(kh, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Close()
		}
	}
	_, agent := e.getenv("SSH_AUTH_SOCK")
	return sshconn.New(sshconn.Config{KnownHosts: kh, AcceptNew: s.acceptNew, KeyFiles: s.identities,
		NoAgent: !agent, KeepAlive: 30 * time.Second})
}

// nodeTarget is how to reach node n over SSH, through its jump hosts.
func nodeTarget(n *spec.Node, depth int) (sshconn.Target, error) {
	if depth > 8 {
		return sshconn.Target{}, fmt.Errorf("%s: jump hosts loop", n.Name)
	}
	t := sshconn.Target{Name: n.Name, Host: n.Address.String(), Port: n.SSH.Port, User: n.SSH.User, KeyFile: n.SSH.KeyFile}
	if n.SSH.Jump != nil {
		j, err := nodeTarget(n.SSH.Jump, depth+1)
		if err != nil {
			return t, err
		}
		t.Jump = &j
	}
	return t, nil
}

// jumpDialers says, for each group of nodes (a name → its nodes), how to
// reach an address of the group: through the jump host the first of its
// nodes that names one names, over one SSH connection per jump host from
// the pool that newPool opens (on first need); nil for a group reached
// directly. With no jump host anywhere it returns nil and opens no pool.
func jumpDialers(groups map[string][]*spec.Node, newPool func() (*sshconn.Pool, error)) (func(name string) func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	jumps := map[string]*spec.Node{}
	for name, nodes := range groups {
		for _, n := range nodes {
			if n.SSH.Jump != nil {
				jumps[name] = n.SSH.Jump
				break
			}
		}
	}
	if len(jumps) == 0 {
		return nil, nil
	}
	pool, err := newPool()
	if err != nil {
		return nil, err
	}
	return func(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
		j := jumps[name]
		if j == nil {
			return nil
		}
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			target, err := nodeTarget(j, 0)
			if err != nil {
				return nil, err
			}
			c, err := pool.Client(ctx, target)
			if err != nil {
				return nil, fmt.Errorf("jump host %s: %w", j.Name, err)
			}
			conn, err := c.DialContext(ctx, network, addr)
			if err != nil {
				return nil, fmt.Errorf("%s through jump host %s: %w", addr, j.Name, err)
			}
			return conn, nil
		}
	}, nil
}
