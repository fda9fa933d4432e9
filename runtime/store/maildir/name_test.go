package maildir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		key     string
		size    int64
		flags   string
		canonic string
	}{
		{"1700000000.M1P2.host,S=1234:2,SR", true, "1700000000.M1P2.host,S=1234", 1234, "RS", "1700000000.M1P2.host,S=1234:2,RS"},
		{"1700000000.M1P2.host", true, "1700000000.M1P2.host", -1, "", "1700000000.M1P2.host"},
		{"1.2.h,S=10,W=12:2,", true, "1.2.h,S=10,W=12", 10, "", "1.2.h,S=10,W=12:2,"},
		{"1.2.h:2,SSF", true, "1.2.h", -1, "FS", "1.2.h:2,FS"},
		{"1.2.h:1,x", false, "", 0, "", ""},
		{"1.2.h:2,a", false, "", 0, "", ""},
		{"1.2.h,S=-1", false, "", 0, "", ""},
		{"1.2.h,S=01", false, "", 0, "", ""},
		{"1.2.h,S=99999999999999999999", false, "", 0, "", ""},
		{"", false, "", 0, "", ""},
		{":2,S", false, "", 0, "", ""},
		{".hidden", false, "", 0, "", ""},
		{"a/b", false, "", 0, "", ""},
		{"a\x00b", false, "", 0, "", ""},
		{"a\nb", false, "", 0, "", ""},
		{"\xff\xfe", false, "", 0, "", ""},
		{strings.Repeat("a", 300), false, "", 0, "", ""},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseName(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if n.Key != tt.key || n.Size != tt.size || n.Flags != tt.flags || n.String() != tt.canonic {
			t.Errorf("ParseName(%q) = %+v (%q), want key %q size %d flags %q", tt.in, n, n.String(), tt.key, tt.size, tt.flags)
		}
	}
}

func TestNewKeyUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := newKey("mail/host:1,x")
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
		n, err := ParseName(k + ",S=5:2,S")
		if err != nil {
			t.Fatalf("generated key %q does not parse: %v", k, err)
		}
		if n.Size != 5 {
			t.Fatalf("size of %q = %d", k, n.Size)
		}
	}
}

// FuzzParseName checks that the parser never panics and that whatever it
// accepts formats back into a name that parses to the same value.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"1700000000.M1P2.host,S=1234:2,SR", "1.2.h", "1.2.h:2,", "x,S=0,W=1:2,DFPRST"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		n2, err := ParseName(n.String())
		if err != nil {
			t.Fatalf("ParseName(%q) accepted, but its canonical form %q does not parse: %v", s, n.String(), err)
		}
		if n2 != n {
			t.Fatalf("round trip of %q: %+v != %+v", s, n2, n)
		}
		if strings.ContainsAny(n.Key, "/:\x00") {
			t.Fatalf("key %q of %q contains a reserved character", n.Key, s)
		}
	})
}

// TestDeliveredBeforeComparesKeyNumbers: deliveries that share a file time
// get UIDs in the order of their keys' times and sequence numbers, read as
// numbers (as strings, M100012 would sort before M99876).
func TestDeliveredBeforeComparesKeyNumbers(t *testing.T) {
	same := time.Unix(1700000000, 0)
	a := &message{key: "1700000000.M99876P7Q5Rab.host", date: same}
	b := &message{key: "1700000000.M100012P7Q6Rcd.host", date: same}
	if !deliveredBefore(a, b) || deliveredBefore(b, a) {
		t.Fatal("microseconds compared as strings")
	}
	c := &message{key: "1700000000.M100012P7Q10Ref.host", date: same}
	if !deliveredBefore(b, c) {
		t.Fatal("sequence numbers compared as strings")
	}
	earlier := &message{key: "zzz", date: same.Add(-time.Second)}
	if !deliveredBefore(earlier, a) {
		t.Fatal("file time not compared first")
	}
}

// FuzzReadUIDList: any UID list is read without a panic, and what is read
// keeps every UID below UIDNEXT.
func FuzzReadUIDList(f *testing.F) {
	f.Add("mailfleet-uidlist 2 7 3\n1 1.M1P1Q1.h 1700000000000000000 $Junk\n2 2.M1P1Q1.h 0\n")
	f.Add("mailfleet-uidlist 1 7 3\n1 1.M1P1Q1.h kw\n")
	f.Add("mailfleet-uidlist 2 1 1\nx y z\n")
	f.Fuzz(func(t *testing.T, list string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, uidListFile), []byte(list), 0o600); err != nil {
			t.Fatal(err)
		}
		_, next, entries, ok, err := readUIDList(dir)
		if err != nil || !ok {
			return
		}
		for key, e := range entries {
			if e.uid == 0 || e.uid >= next {
				t.Fatalf("%s: uid %d, uidnext %d", key, e.uid, next)
			}
		}
	})
}
