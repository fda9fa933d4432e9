package deptest

import (
	"strings"
	"testing"
)

// TestRules checks the table over the repository as it is.
func TestRules(t *testing.T) {
	g, err := Load(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(g) < 40 || g[Module+"/render"] == nil {
		t.Fatalf("go list found %d packages, render among them: %v; want the whole module", len(g), g[Module+"/render"] != nil)
	}
	for _, line := range Check(g, Rules) {
		t.Error(line)
	}
}

// TestCheckFindsBrokenRules: each kind of breakage a rule of the table
// exists for is reported, and what a rule allows is not.
func TestCheckFindsBrokenRules(t *testing.T) {
	m := func(p string) string { return Module + "/" + p }
	for _, c := range []struct {
		pkg, dep string
		bad      bool
	}{
		{m("render"), m("remote/sshconn"), true},
		{m("render/outdir"), "os/exec", true},
		{m("render"), "golang.org/x/crypto/ssh", true},
		{m("render"), m("runtime/config"), false},
		{m("render"), m("runtime/store"), true},
		{m("runtime/store/imap"), m("spec"), true},
		{m("runtime/frontend"), m("runtime/store/maildir"), true},
		{m("runtime/proxy/storetest"), m("runtime/store"), false},
		{m("runtime/balancer"), m("runtime/proxy/crlf"), true},
		{m("remote"), m("runtime/config"), true},
		{m("spec"), m("runtime/config"), false},
		{m("spec"), m("render"), true},
		{m("internal/mountinfo"), m("spec"), true},
		{m("lab"), m("render"), true},
		{m("cmd/mailfleet"), m("render"), false},
		{m("specs"), m("render"), false}, // a path is not under another that prefixes its name
	} {
		got := Check(Graph{c.pkg: {c.dep}}, Rules)
		if (len(got) > 0) != c.bad {
			t.Errorf("%s → %s: %q, want broken=%v", c.pkg, c.dep, got, c.bad)
		}
		if c.bad && len(got) > 0 && !strings.Contains(got[0], ": ") {
			t.Errorf("%s → %s: %q does not say why", c.pkg, c.dep, got[0])
		}
	}
}
