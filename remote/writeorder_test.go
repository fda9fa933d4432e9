package remote

import (
	"strings"
	"testing"
)

// Binaries are written before the files that may run them (a resource
// agent's shim runs mailfleetd every second), the rest keep their order.
func TestWriteOrderBinariesFirst(t *testing.T) {
	w := []FileChange{
		{Path: "/usr/lib/ocf/resource.d/mailfleet/store", File: &File{}},
		{Path: "/etc/a", File: &File{}},
		{Path: "/usr/local/bin/mailfleetd", File: &File{Sum: "ab"}},
		{Path: "/usr/local/bin/other", File: &File{Sum: "cd"}},
	}
	writeOrder(w)
	var got []string
	for _, c := range w {
		got = append(got, c.Path)
	}
	want := "/usr/local/bin/mailfleetd /usr/local/bin/other /usr/lib/ocf/resource.d/mailfleet/store /etc/a"
	if strings.Join(got, " ") != want {
		t.Errorf("write order %q, want %q", got, want)
	}
}
