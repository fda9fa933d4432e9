package ssha

import (
	"crypto/sha256"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/programs"
)

func TestNewVerify(t *testing.T) {
	h, err := New("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "{SSHA}") || !IsHash(h) || !Verify(h, "s3cret") || Verify(h, "s3creT") || Verify(h, "") {
		t.Errorf("New = %q: IsHash %v, right %v, wrong %v", h, IsHash(h), Verify(h, "s3cret"), Verify(h, "s3creT"))
	}
	h2, _ := New("s3cret")
	if h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if _, err := New(""); err == nil {
		t.Error("New of an empty password: no error")
	}
	if !Verify(strings.ToLower(h[:6])+h[6:], "s3cret") {
		t.Error("the scheme's name is not matched in any case")
	}
}

// TestKnownHash: the value Python's hashlib gives for
// base64(SHA1("secret"+"salt")+"salt"), and the SHA-256 scheme.
func TestKnownHash(t *testing.T) {
	if got := Hash("secret", []byte("salt")); got != "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0" {
		t.Errorf("Hash(secret, salt) = %s", got)
	}
	sum := sha256.Sum256([]byte("pw" + "saltsalt"))
	h := "{SSHA256}" + base64.StdEncoding.EncodeToString(append(sum[:], "saltsalt"...))
	if !Verify(h, "pw") || Verify(h, "px") {
		t.Errorf("{SSHA256}: right %v, wrong %v", Verify(h, "pw"), Verify(h, "px"))
	}
}

// TestSlappasswd: what OpenLDAP's own tool makes, Verify accepts.
func TestSlappasswd(t *testing.T) {
	out, err := exec.Command(programs.Require(t, "slappasswd"), "-h", "{SSHA}", "-s", "correct horse").Output()
	if err != nil {
		t.Fatalf("slappasswd: %v", err)
	}
	h := strings.TrimSpace(string(out))
	if !IsHash(h) || !Verify(h, "correct horse") || Verify(h, "correct horsE") {
		t.Errorf("slappasswd's %q: IsHash %v, right %v", h, IsHash(h), Verify(h, "correct horse"))
	}
}

func TestNotHashes(t *testing.T) {
	for _, s := range []string{"", "{SSHA}", "{SSHA}!!!", "{SSHA}" + base64.StdEncoding.EncodeToString(make([]byte, 21)), "{PLAIN}x", "secret", "{MD5}abc"} {
		if IsHash(s) || Verify(s, "") || Verify(s, "secret") {
			t.Errorf("%q counts as a hash", s)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0", "secret")
	f.Add("{SSHA512}AAAA", "")
	f.Fuzz(func(t *testing.T, h, pw string) {
		if Verify(h, pw) && !IsHash(h) {
			t.Fatalf("Verify(%q) true for what IsHash refuses", h)
		}
	})
}
