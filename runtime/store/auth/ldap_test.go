package auth

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/mailfleet/mailfleet/internal/programs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
)

func sshaHash(pw string) string {
	salt := []byte("12345678")
	sum := sha1.Sum(append([]byte(pw), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}

// startSlapd runs a private slapd on a unix socket (no TCP port at all)
// with a service account and three users, one of them with a filter-special
// character in its address.
func startSlapd(t *testing.T) string {
	t.Helper()
	programs.Require(t, "slapd", "slapadd")
	dir, err := os.MkdirTemp("", "slapd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Mkdir(filepath.Join(dir, "db"), 0o700)
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "dc=example,dc=org"
rootdn "cn=root,dc=example,dc=org"
directory %[1]s/db
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="cn=svc,dc=example,dc=org" read by * none
`, dir)
	confPath := filepath.Join(dir, "slapd.conf")
	os.WriteFile(confPath, []byte(conf), 0o600)
	var ldif strings.Builder
	ldif.WriteString("dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n")
	ldif.WriteString("dn: cn=svc,dc=example,dc=org\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: svc\nuserPassword: " + sshaHash("svcpw") + "\n\n")
	ldif.WriteString("dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n")
	for _, u := range []struct{ uid, mail, pw string }{{"alice", "alice@example.org", "alicepw"}, {"bob", "bob@example.org", "bobpw"}, {"star", "st*r@example.org", "starpw"}} {
		fmt.Fprintf(&ldif, "dn: uid=%s,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s\nuserPassword: %s\n\n",
			u.uid, u.uid, u.uid, u.uid, u.mail, sshaHash(u.pw))
	}
	ldifPath := filepath.Join(dir, "base.ldif")
	os.WriteFile(ldifPath, []byte(ldif.String()), 0o600)
	if out, err := exec.Command("/usr/sbin/slapadd", "-f", confPath, "-l", ldifPath).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "ldapi")
	u := "ldapi://" + strings.ReplaceAll(sock, "/", "%2F")
	cmd := exec.Command("/usr/sbin/slapd", "-f", confPath, "-h", u, "-d", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		// The socket file appears at bind, before slapd listens: wait
		// until a connection succeeds.
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if i > 300 {
			t.Fatal("slapd did not create its socket")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return u
}

func TestLDAPDirectory(t *testing.T) {
	u := startSlapd(t)
	pwFile := filepath.Join(t.TempDir(), "bindpw")
	os.WriteFile(pwFile, []byte("svcpw\n"), 0o600)
	cfg := &config.LDAP{URLs: []string{u}, BindDN: "cn=svc,dc=example,dc=org", BindPasswordFile: pwFile,
		Base: "ou=people,dc=example,dc=org", Filter: "(&(objectClass=inetOrgPerson)(mail=%e))", HostAttribute: "mailHost"}
	d, err := NewLDAP(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if addr, err := d.Authenticate(ctx, "Alice@Example.org", "alicepw"); err != nil || addr != "alice@example.org" {
		t.Fatalf("alice: %q %v", addr, err)
	}
	for _, c := range [][2]string{{"alice@example.org", "wrong"}, {"alice@example.org", ""}, {"nobody@example.org", "x"},
		{"*@example.org", "alicepw"}, {"alice@example.org)(mail=*", "alicepw"}, {"st*r@example.org", "alicepw"}} {
		if _, err := d.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q, %q) = %v, want invalid credentials", c[0], c[1], err)
		}
	}
	// The escaped filter still finds an address with a special character.
	if _, err := d.Authenticate(ctx, "st*r@example.org", "starpw"); err != nil {
		t.Fatalf("st*r: %v", err)
	}
	// A user bind does not change the service connection: searches go on.
	if _, ok, err := d.Lookup(ctx, "bob@example.org"); !ok || err != nil {
		t.Fatalf("Lookup bob after user binds: %v %v", ok, err)
	}
	if _, ok, err := d.Lookup(ctx, "*"); ok || err != nil {
		t.Fatalf("Lookup(*) = %v %v", ok, err)
	}
	// A wrong service password is a configuration fault, not a bad login.
	os.WriteFile(pwFile, []byte("nope\n"), 0o600)
	bad, _ := NewLDAP(cfg, "")
	if _, _, err := bad.Lookup(ctx, "bob@example.org"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong service password: %v", err)
	}
	os.WriteFile(pwFile, nil, 0o600)
	if _, err := NewLDAP(cfg, ""); err == nil {
		t.Fatal("empty service password accepted")
	}
}
