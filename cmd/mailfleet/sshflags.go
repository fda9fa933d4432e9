package main

import (
	"errors"
	"flag"
	"fmt"
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
