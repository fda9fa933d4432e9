package slapdtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/ssha"
	"github.com/mailfleet/mailfleet/runtime/config"
)

// Suffix is the directory's naming context; accounts live under
// ou=people (or the OU an Account names).
const (
	Suffix          = "dc=example,dc=org"
	ServiceDN       = "cn=svc," + Suffix
	ServicePassword = "svc-secret"
	// Filter is the reference's search pattern (with objectClass, as
	// validated topologies write it).
	Filter = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
)

// Account is one entry to load.
type Account struct {
	Address  string // uid and mailLocalAddress
	Password string
	MailHost string // "" leaves the attribute out
	OU       string // "" is "people"
}

// Server is a running slapd.
type Server struct {
	URL          string
	Addr         string // 127.0.0.1:PORT
	Dir          string
	PasswordFile string // holds ServicePassword
	cmd          *exec.Cmd
	exited       chan struct{}
}

// Stop ends slapd (a test of a directory that went away calls it early).
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// SSHA returns the {SSHA} form of pw with a random salt.
func SSHA(pw string) string {
	h, err := ssha.New(pw)
	if err != nil {
		panic(err) // an empty test password
	}
	return h
}

// Config is the connector a front-end or store would be configured with.
func (s *Server) Config() config.LDAP {
	return config.LDAP{URLs: []string{s.URL}, BindDN: ServiceDN, BindPasswordFile: s.PasswordFile,
		Base: Suffix, Filter: Filter, HostAttribute: "mailHost", RefuseDuplicates: true,
		Timeout: config.Duration(5 * time.Second)}
}

// LDIF is the base of the tree and accounts in LDIF.
func LDIF(accounts []Account) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n", Suffix)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: svc\nuserPassword: %s\n\n", ServiceDN, SSHA(ServicePassword))
	ous := map[string]bool{}
	for _, a := range append([]Account{{OU: "people"}}, accounts...) {
		ou := a.OU
		if ou == "" {
			ou = "people"
		}
		if !ous[ou] {
			ous[ou] = true
			fmt.Fprintf(&b, "dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, Suffix, ou)
		}
		if a.Address == "" {
			continue
		}
		fmt.Fprintf(&b, "dn: uid=%s,ou=%s,%s\nobjectClass: account\nobjectClass: inetLocalMailRecipient\nobjectClass: simpleSecurityObject\nuid: %s\nmailLocalAddress: %s\nuserPassword: %s\n",
			a.Address, ou, Suffix, a.Address, a.Address, SSHA(a.Password))
		if a.MailHost != "" {
			fmt.Fprintf(&b, "mailHost: %s\n", a.MailHost)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Start runs slapd loaded with accounts until the test ends.
func Start(t testing.TB, accounts []Account) *Server {
	t.Helper()
	for _, tool := range []string{"/usr/sbin/slapd", "/usr/sbin/slapadd"} {
		if _, err := os.Stat(tool); err != nil {
			t.Fatalf("slapdtest: %s is required: %v", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "slapdtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Mkdir(filepath.Join(dir, "db"), 0o700)
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
sizelimit 100
database mdb
maxsize 67108864
suffix "%[2]s"
rootdn "cn=root,%[2]s"
directory %[1]s/db
index uid eq
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="%[3]s" read by * none
`, dir, Suffix, ServiceDN)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ldifPath := filepath.Join(dir, "base.ldif")
	os.WriteFile(ldifPath, []byte(LDIF(accounts)), 0o600)
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", confPath, "-l", ldifPath).CombinedOutput(); err != nil {
		t.Fatalf("slapdtest: slapadd: %v\n%s", err, out)
	}
	pwFile := filepath.Join(dir, "service-password")
	os.WriteFile(pwFile, []byte(ServicePassword+"\n"), 0o600)
	s := &Server{Dir: dir, PasswordFile: pwFile}
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = l.Addr().String()
		l.Close()
		s.URL = "ldap://" + s.Addr + "/"
		s.cmd = exec.Command("/usr/sbin/slapd", "-f", confPath, "-h", s.URL, "-d", "0")
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { s.cmd.Wait(); close(exited) }()
		if waitListening(s.Addr, exited) {
			s.exited = exited
			t.Cleanup(s.Stop)
			return s
		}
		s.cmd.Process.Kill()
		<-exited
		if try == 2 {
			t.Fatal("slapdtest: slapd did not start listening")
		}
	}
}

// waitListening waits until addr accepts connections, or slapd exits (the
// port was taken meanwhile).
func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
