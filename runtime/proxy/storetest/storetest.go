package storetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store"
)

// Options of one instance.
type Options struct {
	Name    string // instance name; its FQDN is Name+".backend.test"
	LDAP    config.LDAP
	Domains []string
	// TrustedNetworks may send PROXY headers and relay (the front-ends).
	TrustedNetworks []string
	// TLS, when set, gives the instance a certificate (STARTTLS/STLS).
	TLS *Cert
}

// Instance is a running store.
type Instance struct {
	*store.Instance
	Name  string
	FQDN  string
	Addrs map[string]string
	Dir   string
	Log   *Buffer
}

// Route is the instance as a front-end's instance table names it.
func (in *Instance) Route() config.InstanceRoute {
	return config.InstanceRoute{Name: in.Name, SMTP: in.Addrs["smtp"], LMTP: in.Addrs["lmtp"],
		IMAP: in.Addrs["imap"], POP3: in.Addrs["pop3"]}
}

// Start runs an instance until the test ends.
func Start(t testing.TB, o Options) *Instance {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "admin-secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123456789\n"), 0o600)
	ldap := o.LDAP
	cfg := &config.Store{
		FormatVersion: config.FormatVersion,
		Instance:      o.Name,
		Hostname:      o.Name + ".backend.test",
		Listeners: map[string]string{"smtp": "127.0.0.1:0", "lmtp": "127.0.0.1:0", "imap": "127.0.0.1:0",
			"pop3": "127.0.0.1:0", "admin": "127.0.0.1:0"},
		StoragePath:     filepath.Join(dir, "storage"),
		QueuePath:       filepath.Join(dir, "queue"),
		RunPath:         filepath.Join(dir, "run"),
		AdminSecretFile: secret,
		LDAP:            &ldap,
		Domains:         o.Domains,
		TrustedNetworks: o.TrustedNetworks,
	}
	cfg.Limits.FailedLoginDelay = config.Duration(10 * time.Millisecond)
	if o.TLS != nil {
		cfg.TLS = &config.TLS{Cert: o.TLS.CertFile, Key: o.TLS.KeyFile}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	buf := &Buffer{}
	in, err := store.New(cfg, store.Options{Logger: slog.New(slog.NewJSONHandler(buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Listen(); err != nil {
		t.Fatal(err)
	}
	in.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in.Shutdown(ctx)
	})
	return &Instance{Instance: in, Name: o.Name, FQDN: cfg.Hostname, Addrs: in.Addrs(), Dir: dir, Log: buf}
}

// Buffer is a log sink safe for concurrent writers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Cert is a self-signed certificate for 127.0.0.1 and localhost.
type Cert struct {
	CertFile, KeyFile, CAFile string
	Certificate               tls.Certificate
	Pool                      *x509.CertPool
}

// ServerConfig is a TLS server config with the certificate.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.Certificate}, MinVersion: tls.VersionTLS12}
}

// ClientConfig trusts the certificate.
func (c *Cert) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// NewCert makes a certificate and writes its files under a temp dir.
func NewCert(t testing.TB) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	dir := t.TempDir()
	c := &Cert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "cert.pem")}
	os.WriteFile(c.CertFile, certPEM, 0o600)
	os.WriteFile(c.KeyFile, keyPEM, 0o600)
	if c.Certificate, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	c.Pool = x509.NewCertPool()
	c.Pool.AppendCertsFromPEM(certPEM)
	return c
}

// Messages counts the messages in the INBOX of address on the instance.
func (in *Instance) Messages(address string) int {
	local, domain, _ := cutAt(address)
	n := 0
	for _, sub := range []string{"new", "cur"} {
		es, _ := os.ReadDir(filepath.Join(in.Dir, "storage", domain, local, sub))
		n += len(es)
	}
	return n
}

// Queued counts the files under the instance's outbound queue.
func (in *Instance) Queued() int {
	n := 0
	filepath.WalkDir(filepath.Join(in.Dir, "queue"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func cutAt(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
