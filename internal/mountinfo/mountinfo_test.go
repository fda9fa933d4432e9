package mountinfo

import (
	"strings"
	"testing"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/x\134y`: `/x\y`, `/t\011`: "/t\t", `/bad\04`: `/bad\04`, `\`: `\`, `/q\999`: `/q\999`} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	es, err := Parse(strings.NewReader("36 35 98:0 / /mnt\\040x rw,noatime master:1 - ext3 /dev/root rw\n37 35 0:1 / /b rw - tmpfs t rw\n"))
	if err != nil || len(es) != 2 || es[0] != (Entry{"/mnt x", "ext3"}) || es[1] != (Entry{"/b", "tmpfs"}) {
		t.Errorf("Parse: %+v %v", es, err)
	}
	es, err = Parse(strings.NewReader("37 35 0:1 / /b rw - tmpfs t rw\n36 35 98:0\n"))
	if err == nil || len(es) != 1 {
		t.Errorf("a short line: %+v %v, want the entries before it and an error", es, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
	f.Add("1 2 3 4 /a\\040b\\\n")
	f.Fuzz(func(t *testing.T, s string) {
		es, err := Parse(strings.NewReader(s))
		if err == nil && len(es) > strings.Count(s, "\n")+1 {
			t.Fatalf("%d entries from %d lines", len(es), strings.Count(s, "\n")+1)
		}
	})
}
