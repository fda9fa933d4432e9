package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/provision/provisiontest"
	"github.com/mailfleet/mailfleet/remote/remotetest"
)

// TestAccountThroughJumpHost: when the backend nodes name a jump host, the
// account commands reach the directory and the instances' admin APIs
// through it (SSH port forwarding over a real sshd), checking its host key
// like plan and apply: refused when unknown, accepted with -accept-new.
// The jump host's sshd denies forwarding to everything but the directory and
// the instances, so a direct connection cannot pass for a tunnelled one.
func TestAccountThroughJumpHost(t *testing.T) {
	testutil.Long(t)
	dev := provisiontest.Start(t, "127.0.13.100")
	key := remotetest.NewClientKey(t)
	// Only the addresses the topology's directory and instances listen on
	// may be forwarded to; each tunnel shows in sshd's log.
	text, err := os.ReadFile(filepath.Join(dev.Topology, "cluster.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	var permit []string
	for _, m := range regexp.MustCompile(`(?m)^\s*vip\s*=\s*"([0-9.]+)"`).FindAllStringSubmatch(string(text), -1) {
		permit = append(permit, m[1]+":*")
	}
	jump := remotetest.Start(t, []string{key.Public}, remotetest.Options{Host: "127.0.13.150",
		Extra: "AllowTcpForwarding yes\nPermitOpen " + strings.Join(permit, " ") + "\nLogLevel DEBUG1\n"})

	// Every node that runs the directory or an instance is reached through
	// node "jumphost".
	jumpNode := "\nnode \"jumphost\" {\n  network = network.loopback\n  address = \"" + jump.Host + "\"\n  ssh {\n    port = " +
		strconv.Itoa(jump.Port) + "\n  }\n}\n"
	topo := dev.TopologyVariant("jump", func(s string) string {
		s = regexp.MustCompile(`(?m)^(node "[^"]+" \{\n  network = network\.loopback\n)`).
			ReplaceAllString(s, "${1}  ssh {\n    jump = node.jumphost\n  }\n")
		return s + jumpNode
	}, nil)
	variant, _ := os.ReadFile(filepath.Join(topo, "cluster.hcl"))
	if strings.Count(string(variant), "jump = node.jumphost") < 2 {
		t.Fatalf("the variant names no jump host on the backend nodes:\n%s", variant)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("Jump-pass-1\n"), 0o600)

	r := runCLI(t, "", nil, "account", "add", "jim@mailfleet.test", "-password-file", pw, "-topology", topo,
		"-known-hosts", kh, "-identity", key.Private)
	if r.code == 0 || !strings.Contains(r.stderr, "jumphost") {
		t.Fatalf("an unknown jump host key was accepted without -accept-new: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", nil, "account", "add", "jim@mailfleet.test", "-password-file", pw, "-topology", topo,
		"-known-hosts", kh, "-identity", key.Private, "-accept-new")
	if r.code != 0 {
		t.Fatalf("account add through the jump host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", nil, "account", "show", "jim@mailfleet.test", "-topology", topo, "-known-hosts", kh, "-identity", key.Private)
	if r.code != 0 || !strings.Contains(r.stdout, "jim@mailfleet.test") {
		t.Fatalf("account show through the jump host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	log, _ := os.ReadFile(jump.Log)
	if n := strings.Count(string(log), "direct-tcpip"); n < 2 {
		t.Fatalf("sshd forwarded %d connections, want the directory's and the instance's:\n%s", n, log)
	}
	t.Logf("permit %v; %d forwards", permit, strings.Count(string(log), "direct-tcpip"))
	imapLogin(t, dev.Info.IMAP, "jim@mailfleet.test", "Jump-pass-1")
}
