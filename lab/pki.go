package lab

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/mailfleet/mailfleet/spec"
)

// ensureSSHKey makes an ed25519 key pair at path (OpenSSH format, 0600) and
// path.pub unless it exists, and returns the public key.
func ensureSSHKey(path, comment string) (ssh.PublicKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("lab: %s: %w", path, err)
		}
		return signer.PublicKey(), nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := writeFile(path+".pub", append(trimNL(ssh.MarshalAuthorizedKey(sp)), []byte(" "+comment+"\n")...), 0o644); err != nil {
		return nil, err
	}
	if err := writeFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return sp, nil
}

func trimNL(b []byte) []byte { return []byte(strings.TrimRight(string(b), "\n")) }

// writeFile writes atomically with mode (exactly: no umask).
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".lab-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeIfMissing(path string, data []byte, mode os.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	return writeFile(path, data, mode)
}

// ca is the lab's certificate authority, LABDIR/ca.crt and ca.key.
type ca struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func loadOrMakeCA(dir, site string) (*ca, error) {
	crtPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if cb, err := os.ReadFile(crtPath); err == nil {
		kb, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, err
		}
		c, err := parseCert(cb)
		if err != nil {
			return nil, err
		}
		kblk, _ := pem.Decode(kb)
		if kblk == nil {
			return nil, errors.New("lab: ca.key is no PEM")
		}
		k, err := x509.ParseECPrivateKey(kblk.Bytes)
		if err != nil {
			return nil, err
		}
		return &ca{cert: c, key: k, certPEM: cb}, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mailfleet lab CA " + site, Organization: []string{"mailfleet lab"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	c, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(crtPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return &ca{cert: c, key: k, certPEM: certPEM}, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("lab: no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// issue makes a server+client certificate for names and addresses; it
// returns the certificate and key in PEM.
func (c *ca) issue(cn string, names []string, ips []netip.Addr) (certPEM, keyPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"mailfleet lab"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     names,
	}
	for _, a := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &k.PublicKey, c.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// siteNames are the names and addresses every node's certificate carries
// besides its own: every VIP of the topology and every zone's wildcard and
// service name. Simple and enough in a lab.
func siteNames(t *spec.Topology) ([]string, []netip.Addr) {
	var names []string
	var ips []netip.Addr
	for _, n := range t.Networks {
		if n.Zone != "" {
			names = append(names, "*."+n.Zone)
		}
	}
	for _, b := range t.Balancers {
		for _, s := range b.Services {
			ips = append(ips, s.VIP)
		}
	}
	if d := t.Directory; d != nil {
		ips = append(ips, d.VIP)
		for _, n := range t.Networks {
			if n.CIDR.Contains(d.VIP) && n.Zone != "" {
				names = append(names, d.Hostname+"."+n.Zone)
			}
		}
	}
	for _, in := range t.Instances {
		ips = append(ips, in.VIP)
		if in.Network != nil {
			names = append(names, in.FQDN())
		}
	}
	return names, ips
}

// knownHostsLine is h's line of LABDIR/known_hosts: its addresses and
// names, with the port when it is not 22.
func knownHostsLine(h *Host, key ssh.PublicKey) string {
	var hosts []string
	for _, ifc := range h.Ifaces {
		if ifc.Network == KindWorkstation {
			continue
		}
		hosts = append(hosts, net.JoinHostPort(ifc.Addr.Addr().String(), strconv.Itoa(h.SSHPort)))
	}
	for _, n := range h.Names {
		hosts = append(hosts, net.JoinHostPort(n, strconv.Itoa(h.SSHPort)))
	}
	return knownhosts.Line(hosts, key)
}
