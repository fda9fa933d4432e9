package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDevRoleFlags: usage mistakes exit 2, a bad address base 1, all
// before anything starts and with nothing on stdout. The cluster itself is
// tested in runtime/devcluster (TestDevCluster runs this binary).
func TestDevRoleFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dev"}, 2, "use -data DIR"},
		{[]string{"dev", "-data", t.TempDir(), "extra"}, 2, "use -data DIR"},
		{[]string{"dev", "-data", t.TempDir(), "-addr-base", "nope"}, 2, "-addr-base"},
		{[]string{"dev", "-data", t.TempDir(), "-addr-base", "10.0.0.1"}, 1, "does not leave 10 consecutive usable addresses"},
		{[]string{"dev", "-data", t.TempDir(), "-addr-base", "127.255.255.250"}, 1, "does not leave 10 consecutive usable addresses"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.want) || out.Len() > 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and %q", c.args, code, errb.String(), out.String(), c.code, c.want)
		}
	}
	var out, errb bytes.Buffer
	if run([]string{"help"}, &out, &errb); !strings.Contains(out.String(), "dev ") {
		t.Errorf("usage does not list the dev role:\n%s", out.String())
	}
}
