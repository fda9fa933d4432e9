package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules enforces the layout rule: the store (and everything it
// pulls in) never imports spec, render or remote.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "github.com/mailfleet/mailfleet/runtime/store/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"/spec", "/render", "/remote"} {
			if strings.HasPrefix(pkg, "github.com/mailfleet/mailfleet"+banned) {
				t.Errorf("runtime/store depends on %s", pkg)
			}
		}
	}
}
