package maildir

import (
	"errors"
	"testing"
)

func TestCanonicalMailboxName(t *testing.T) {
	good := map[string]string{
		"INBOX": "INBOX", "inbox": "INBOX", "Sent": "Sent", "Archive/2024": "Archive/2024",
		"Mr. Smith": "Mr. Smith", "Entwürfe": "Entwürfe", "inbox/sub": "INBOX/sub", "a..b": "a..b",
	}
	for in, want := range good {
		got, err := CanonicalMailboxName(in)
		if err != nil || got != want {
			t.Errorf("CanonicalMailboxName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", "..", "../x", "a/../b", "a/./b", "/abs", "a/", "a//b", "x\x00y", "x\ny", "x\ty", "\xff",
		"a*", "a%", `a\b`, string(make([]byte, 300)), " lead", "trail ", "a\u0085b",
		"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q"}
	for _, in := range bad {
		if _, err := CanonicalMailboxName(in); !errors.Is(err, ErrBadMailboxName) {
			t.Errorf("CanonicalMailboxName(%q) accepted (err %v)", in, err)
		}
	}
}

func TestDirNameRoundTrip(t *testing.T) {
	for _, name := range []string{"Sent", "Archive/2024", "Mr. Smith", "a.b/c.d", "Entwürfe", "a..b", "..x"} {
		d := dirName(name)
		if d[0] != '.' || len(d) < 2 {
			t.Fatalf("dirName(%q) = %q", name, d)
		}
		for _, c := range d[1:] {
			if c == '/' {
				t.Fatalf("dirName(%q) = %q has a slash", name, d)
			}
		}
		back, ok := mailboxFromDir(d)
		if !ok || back != name {
			t.Errorf("mailboxFromDir(dirName(%q)=%q) = %q, %v", name, d, back, ok)
		}
	}
	for _, d := range []string{".", "..", "cur", ".a..b", ".a."} {
		if n, ok := mailboxFromDir(d); ok {
			t.Errorf("mailboxFromDir(%q) = %q, want not a mailbox", d, n)
		}
	}
}
