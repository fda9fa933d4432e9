package frontend

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules: the front-end's packages never import spec, render,
// remote, nor the balancer or the store's insides (test helpers may run
// a store).
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/mailfleet/mailfleet/runtime/frontend",
		"github.com/mailfleet/mailfleet/runtime/directory", "github.com/mailfleet/mailfleet/runtime/router",
		"github.com/mailfleet/mailfleet/runtime/proxy/imap", "github.com/mailfleet/mailfleet/runtime/proxy/pop3").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"/spec", "/render", "/remote", "/runtime/balancer", "/runtime/store"} {
			if strings.HasPrefix(pkg, "github.com/mailfleet/mailfleet"+banned) {
				t.Errorf("the front-end depends on %s", pkg)
			}
		}
	}
}
