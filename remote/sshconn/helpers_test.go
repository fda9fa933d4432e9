package sshconn_test

import (
	"net"
	"os/exec"
	"testing"
)

func keygen(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

// sign makes pub's host certificate (pub minus .pub plus -cert.pub).
func sign(t *testing.T, caKey, pub, principal string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-s", caKey, "-h", "-I", "test-host", "-n", principal, pub).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -s: %v: %s", err, out)
	}
}

func netListen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c // held open, silent
		}
	}()
	return l, nil
}

func listenPort(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }
