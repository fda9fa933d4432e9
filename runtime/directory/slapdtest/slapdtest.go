package slapdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/netwait"
	"github.com/mailfleet/mailfleet/internal/ssha"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/templates"
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

// Conf is the slapd.conf of a test directory in dir (database in
// dir/db): production's own (templates/slapd.conf.tmpl, its access rules
// and indexes), without TLS, with a root DN whose password is random.
func Conf(dir string) ([]byte, error) {
	q := templates.SlapdQuote
	root := make([]byte, 16)
	rand.Read(root)
	v := templates.Slapd{
		Header:     []string{"slapd of a mailfleet test (slapdtest)"},
		PidFile:    q(filepath.Join(dir, "slapd.pid")),
		ArgsFile:   q(filepath.Join(dir, "slapd.args")),
		ModulePath: "/usr/lib/ldap",
		MaxSize:    64 << 20,
		Suffix:     q(Suffix),
		RootDN:     q("cn=root," + Suffix),
		RootPW:     SSHA(hex.EncodeToString(root)),
		DataDir:    q(filepath.Join(dir, "db")),
		Indexes:    []string{"objectClass eq", "uid eq", "mailLocalAddress eq", "mailHost eq"},
		ServiceDN:  q(ServiceDN),
	}
	for _, s := range []string{"core", "cosine", "inetorgperson", "misc"} {
		v.Schemas = append(v.Schemas, "/etc/ldap/schema/"+s+".schema")
	}
	return templates.SlapdConf(v)
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
	conf, err := Conf(dir)
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
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
		if netwait.Listening(context.Background(), s.Addr, exited, 30*time.Second) == nil {
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
