package devcluster

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The directory of the development cluster.
const (
	Suffix    = "dc=mailfleet,dc=test"
	AdminDN   = "cn=admin," + Suffix
	ServiceDN = "cn=mailfleet," + Suffix
	PeopleDN  = "ou=people," + Suffix
	// Filter is the reference's lookup filter, as the topology states it.
	Filter        = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
	HostAttribute = "mailHost"
)

var ldapSchemas = []string{"core", "cosine", "inetorgperson", "misc"}

//go:embed slapd.conf.tmpl
var slapdConfTmpl string

var slapdConfTemplate = template.Must(template.New("slapd.conf").Option("missingkey=error").Parse(slapdConfTmpl))

type slapdView struct {
	URL        string
	Schemas    []string
	PidFile    string
	ArgsFile   string
	ModulePath string
	MaxSize    int64
	Suffix     string
	RootDN     string
	RootPW     string
	DataDir    string
	Indexes    []string
	ServiceDN  string
}

// slapdQuote quotes s for slapd.conf, whose parser takes a backslash as an
// escape inside and outside quotes.
func slapdQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// slapd is the directory server, a child process.
type slapd struct {
	binary, schemaDir, moduleDir string
	dir                          string // DIR/ldap
	ip                           netip.Addr
	log                          *os.File

	cmd    *exec.Cmd
	addr   netip.AddrPort
	exited chan struct{}
}

func (s *slapd) confPath() string { return filepath.Join(s.dir, "slapd.conf") }
func (s *slapd) pidFile() string  { return filepath.Join(s.dir, "slapd.pid") }
func (s *slapd) dataDir() string  { return filepath.Join(s.dir, "db") }

// URL is the directory's LDAP URL.
func (s *slapd) URL() string { return "ldap://" + s.addr.String() }

// PID is slapd's process id.
func (s *slapd) PID() int { return s.cmd.Process.Pid }

// writeConf writes slapd.conf for the directory on url.
func (s *slapd) writeConf(url, rootPassword string) error {
	v := slapdView{URL: url, PidFile: slapdQuote(s.pidFile()), ArgsFile: slapdQuote(filepath.Join(s.dir, "slapd.args")),
		ModulePath: slapdQuote(s.moduleDir), MaxSize: 1 << 30, Suffix: slapdQuote(Suffix), RootDN: slapdQuote(AdminDN),
		RootPW: sshaOf(rootPassword), DataDir: slapdQuote(s.dataDir()), ServiceDN: slapdQuote(ServiceDN),
		Indexes: []string{"objectClass eq", "uid eq", "mailLocalAddress eq", "mailHost eq"}}
	for _, name := range ldapSchemas {
		v.Schemas = append(v.Schemas, slapdQuote(filepath.Join(s.schemaDir, name+".schema")))
	}
	var buf bytes.Buffer
	if err := slapdConfTemplate.Execute(&buf, v); err != nil {
		return err
	}
	return writeFileAtomic(s.confPath(), buf.Bytes(), 0o600)
}

// start runs slapd on s.ip, on preferred when it is free, else on a free
// port, and returns once it accepts connections.
func (s *slapd) start(ctx context.Context, preferred int, rootPassword string) error {
	for _, p := range []string{s.binary, filepath.Join(s.schemaDir, "core.schema")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("slapd: %w (install the slapd package)", err)
		}
	}
	if err := os.MkdirAll(s.dataDir(), 0o700); err != nil {
		return err
	}
	s.stopStale()
	var lastErr error
	for try := 0; try < 4; try++ {
		port := preferred
		if try > 0 || port == 0 {
			var err error
			if port, err = freePort(s.ip); err != nil {
				return err
			}
		}
		s.addr = netip.AddrPortFrom(s.ip, uint16(port))
		if err := s.writeConf(s.URL(), rootPassword); err != nil {
			return fmt.Errorf("slapd: %w", err)
		}
		fmt.Fprintf(s.log, "=== mailfleetd dev: starting slapd on %s at %s\n", s.URL(), time.Now().Format(time.RFC3339))
		// -d: stay in the foreground and log to stderr (256: one line
		// per connection and operation).
		cmd := exec.Command(s.binary, "-f", s.confPath(), "-h", s.URL()+"/", "-d", "256")
		cmd.Stdout, cmd.Stderr = s.log, s.log
		cmd.SysProcAttr = childAttrs()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("slapd: %w", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		s.cmd, s.exited = cmd, exited
		err := waitListening(ctx, s.addr.String(), exited, 30*time.Second)
		if err == nil {
			return nil
		}
		lastErr = err
		cmd.Process.Kill()
		<-exited
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("slapd did not start (see %s): %w", s.log.Name(), lastErr)
}

// stop ends slapd: SIGTERM, then SIGKILL if it has not exited in 10
// seconds.
func (s *slapd) stop() error {
	if s.cmd == nil {
		return nil
	}
	select {
	case <-s.exited:
		// It died on its own (or never started): its pid file is stale.
		os.Remove(s.pidFile())
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	s.cmd.Process.Kill()
	<-s.exited
	os.Remove(s.pidFile())
	return errors.New("slapd did not stop on SIGTERM and was killed")
}

// stopStale stops a slapd left running on this directory by an earlier run
// that was killed: one whose pid file is ours and whose command line names
// our config.
func (s *slapd) stopStale() {
	b, err := os.ReadFile(s.pidFile())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(s.confPath())) {
		return
	}
	fmt.Fprintf(s.log, "=== mailfleetd dev: stopping slapd %d left by an earlier run\n", pid)
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// freePort asks the kernel for a free port on ip.
func freePort(ip netip.Addr) (int, error) {
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts connections; it fails when slapd
// exits first (its port was taken) or the time is up.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("slapd exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("slapd is not listening on %s after %s", addr, limit)
}

// seed makes the directory's entries as the rootdn: the base, the service
// DN, the people OU and one account per instance in the reference's shape
// (account, inetLocalMailRecipient, simpleSecurityObject; uid =
// mailLocalAddress = the address; mailHost = the home instance's FQDN). An
// entry that exists is brought in line with the secrets, so a restart (or a
// lost secret file) leaves the directory and DIR/secrets agreeing.
func seed(url string, sec *secrets, homes map[string]string) error {
	c, err := dialLDAP(url)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(AdminDN, sec.LDAPAdmin); err != nil {
		return fmt.Errorf("ldap: bind as %s: %w", AdminDN, err)
	}
	type entry struct {
		dn      string
		classes []string
		attrs   [][2]string
		// update is replaced when the entry exists.
		update [][2]string
	}
	entries := []entry{
		{dn: Suffix, classes: []string{"dcObject", "organization"}, attrs: [][2]string{{"dc", "mailfleet"}, {"o", "mailfleet development cluster"}}},
		{dn: ServiceDN, classes: []string{"organizationalRole", "simpleSecurityObject"}, attrs: [][2]string{{"cn", "mailfleet"},
			{"description", "mailfleet service account: looks accounts up, writes nothing"}},
			update: [][2]string{{"userPassword", sshaOf(sec.LDAPService)}}},
		{dn: PeopleDN, classes: []string{"organizationalUnit"}, attrs: [][2]string{{"ou", "people"}}},
	}
	for _, a := range sec.Accounts {
		entries = append(entries, entry{dn: accountDN(a.User), classes: []string{"account", "inetLocalMailRecipient", "simpleSecurityObject"},
			attrs: [][2]string{{"uid", a.User}},
			update: [][2]string{{"mailLocalAddress", a.User}, {HostAttribute, homes[a.Instance]},
				{"userPassword", sshaOf(a.Password)}}})
	}
	for _, e := range entries {
		add := ldap.NewAddRequest(e.dn, nil)
		add.Attribute("objectClass", e.classes)
		for _, kv := range append(e.attrs, e.update...) {
			add.Attribute(kv[0], []string{kv[1]})
		}
		err := c.Add(add)
		if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
			if len(e.update) == 0 {
				continue
			}
			mod := ldap.NewModifyRequest(e.dn, nil)
			for _, kv := range e.update {
				mod.Replace(kv[0], []string{kv[1]})
			}
			err = c.Modify(mod)
		}
		if err != nil {
			return fmt.Errorf("ldap: %s: %w", e.dn, err)
		}
	}
	return checkAccounts(url, sec, homes)
}

// checkAccounts does what a front-end does: find each account as the
// service DN with the filter, then bind as it with its password.
func checkAccounts(url string, sec *secrets, homes map[string]string) error {
	c, err := dialLDAP(url)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(ServiceDN, sec.LDAPService); err != nil {
		return fmt.Errorf("ldap: bind as %s: %w", ServiceDN, err)
	}
	for _, a := range sec.Accounts {
		filter := strings.ReplaceAll(Filter, "%e", ldap.EscapeFilter(a.User))
		res, err := c.Search(ldap.NewSearchRequest(Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 10, false,
			filter, []string{HostAttribute}, nil))
		if err != nil {
			return fmt.Errorf("ldap: looking up %s: %w", a.User, err)
		}
		if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue(HostAttribute) != homes[a.Instance] {
			return fmt.Errorf("ldap: %s: the lookup found %d entries, not one with %s %s", a.User, len(res.Entries), HostAttribute, homes[a.Instance])
		}
		u, err := dialLDAP(url)
		if err != nil {
			return err
		}
		err = u.Bind(res.Entries[0].DN, a.Password)
		u.Close()
		if err != nil {
			return fmt.Errorf("ldap: bind as %s: %w", a.User, err)
		}
	}
	return nil
}

func accountDN(address string) string {
	return "uid=" + ldap.EscapeDN(address) + "," + PeopleDN
}

func dialLDAP(url string) (*ldap.Conn, error) {
	c, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	c.SetTimeout(10 * time.Second)
	return c, nil
}
