package auth

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPasswdFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	if err := AppendPasswdEntry(path, "Alice@Example.org", "s3cret"); err != nil {
		t.Fatal(err)
	}
	salt := []byte("saltsalt")
	sum := sha512.Sum512(append([]byte("bobpw"), salt...))
	ssha := "{SSHA512}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# comment\nbob@example.org:" + ssha + "\n")
	f.Close()
	p, err := NewPasswdFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if addr, err := p.Authenticate(ctx, "alice@EXAMPLE.org", "s3cret"); err != nil || addr != "alice@example.org" {
		t.Fatalf("alice: %q %v", addr, err)
	}
	if _, err := p.Authenticate(ctx, "bob@example.org", "bobpw"); err != nil {
		t.Fatalf("bob (SSHA512): %v", err)
	}
	for _, c := range [][2]string{{"alice@example.org", "wrong"}, {"alice@example.org", ""}, {"nobody@example.org", "x"}, {"bob@example.org", "bobpwx"}} {
		if _, err := p.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q, %q) = %v", c[0], c[1], err)
		}
	}
	if _, ok, _ := p.Lookup(ctx, "BOB@example.org"); !ok {
		t.Fatal("bob not found")
	}
	if _, ok, _ := p.Lookup(ctx, "carol@example.org"); ok {
		t.Fatal("carol found")
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "s3cret") {
		t.Fatal("plaintext password in the passwd file")
	}
	// The file is re-read when it changes.
	AppendPasswdEntry(path, "carol@example.org", "c")
	if _, ok, _ := p.Lookup(ctx, "carol@example.org"); !ok {
		t.Fatal("carol not found after append")
	}
}

func TestPasswdFileRefusesPlaintext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(path, []byte("a@example.org:{PLAIN}pw\n"), 0o600)
	if _, err := NewPasswdFile(path); err == nil || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(path, []byte("a@example.org:pw\n"), 0o600)
	if _, err := NewPasswdFile(path); err == nil {
		t.Fatal("bare password accepted")
	}
}

func TestSameHost(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{{"store-a.test", "STORE-A.test.", true}, {" store-a.test ", "store-a.test", true}, {"store-a.test", "store-b.test", false},
		{"store-a.test", "store-a.test.example", false}, {"store-a", "store-a.test", false}} {
		if got := SameHost(c.a, c.b); got != c.same {
			t.Errorf("SameHost(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
