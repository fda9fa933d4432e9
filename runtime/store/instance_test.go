package store

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store/internal/testcert"
)

func TestInstanceWithTLS(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeTestConfig(t, dir)
	cfg := &config.Store{}
	if err := config.Load(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	_, certPEM, keyPEM, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	cfg.TLS = &config.TLS{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	cfg.Listeners["imaps"] = "127.0.0.1:0"
	cfg.Listeners["pop3s"] = "127.0.0.1:0"
	cfg.Limits.FailedLoginDelay = config.Duration(time.Millisecond)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	in, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Listen(); err != nil {
		t.Fatal(err)
	}
	in.Serve()
	defer in.Shutdown(context.Background())
	addrs := in.Addrs()
	tc := &tls.Config{InsecureSkipVerify: true}

	// Plaintext IMAP login before STARTTLS is refused; after it, accepted.
	c, err := imapclient.DialInsecure(addrs["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("user@example.org", "pw").Wait(); err == nil {
		t.Fatal("plaintext LOGIN accepted before STARTTLS")
	}
	c.Close()
	c, err = imapclient.DialStartTLS(addrs["imap"], &imapclient.Options{TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("user@example.org", "pw").Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	c.Close()
	c, err = imapclient.DialTLS(addrs["imaps"], &imapclient.Options{TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("user@example.org", "pw").Wait(); err != nil {
		t.Fatalf("LOGIN on imaps: %v", err)
	}
	c.Close()
	// POP3 over implicit TLS.
	pc, err := tls.Dial("tcp", addrs["pop3s"], tc)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	io.ReadFull(pc, buf)
	pc.Close()
	if string(buf) != "+OK" {
		t.Fatalf("pop3s greeting %q", buf)
	}
	// The admin API is served over TLS.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := hc.Get("https://" + addrs["admin"] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}
