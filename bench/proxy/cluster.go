package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory/slapdtest"
)

// The accounts: IMAP sessions log in as imapN (each INBOX holds ten 10 KB
// messages), SMTP transactions send to rcptN; all live on inst1.
const (
	domain      = "bench.test"
	instanceFQD = "inst1." + domain
	nAccounts   = 8
	// maxIdleNodes bounds the idle-session front-end processes.
	maxIdleNodes = 4
)

func imapUser(i int) (string, string) {
	return fmt.Sprintf("imap%d@%s", i%nAccounts+1, domain), fmt.Sprintf("pw-imap-%d", i%nAccounts+1)
}

func rcpt(i int) string { return fmt.Sprintf("rcpt%d@%s", i%nAccounts+1, domain) }

// proc is one child process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startProc runs argv with stdout and stderr appended to logPath. The
// child inherits this process's RLIMIT_NOFILE and dies with it.
func startProc(name, logPath string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after a few seconds.
func (p *proc) stop() {
	if p == nil || !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) kill() {
	if p == nil || !p.alive() {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// freeAddrs returns n addresses of 127.0.0.1 whose ports are free now.
func freeAddrs(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// cluster is slapd, two store processes, two front-end nodes and the
// balancer, each its own process.
type cluster struct {
	dir, bin string
	ldap     config.LDAP
	slapd    *proc
	// store is the instance behind the front-ends (it trusts their
	// PROXY headers); direct is a second one, configured as a store
	// serving without a proxy tier (no trusted networks), for the direct
	// runs.
	store, direct *proc
	fes           []*proc
	lb            *proc
	idle          []*proc // the front-ends of the idle-session measurement, while running

	storeAddrs, directAddrs map[string]string
	feIMAP, feSMTP, feAdm   []string
	lbIMAP, lbSMTP, lbAdm   string
	instances               map[string]config.InstanceRoute
	idleIMAP, idleAdm       []string
	idleCfgPath, idleLog    []string
	slapdAddr, pwFile       string
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// procs are the running processes by role, for CPU accounting.
func (c *cluster) procs() map[string][]*proc {
	return map[string][]*proc{"balancer": {c.lb}, "front-ends": c.fes, "store": {c.store, c.direct}, "slapd": {c.slapd}}
}

func (c *cluster) close() {
	c.stopIdle()
	c.lb.stop()
	for _, fe := range c.fes {
		fe.stop()
	}
	c.store.stop()
	c.direct.stop()
	c.slapd.stop()
}

func writeJSON(path string, v interface{ Validate() error }) error {
	if err := v.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// startCluster starts every role and waits until the balancer has both
// front-end nodes up in both services.
func startCluster(dir, bin string) (*cluster, error) {
	c := &cluster{dir: dir, bin: bin}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	for _, d := range []string{"ldap/db", "log", "store"} {
		if err := os.MkdirAll(c.path(d), 0o700); err != nil {
			return nil, err
		}
	}
	// Ports: slapd; 2 × store smtp, imap, admin; 2 × front-end imap,
	// smtp, admin; balancer imap, smtp, admin; the idle front-ends' imap
	// and admin.
	addrs, err := freeAddrs(1 + 6 + 6 + 3 + 2*maxIdleNodes)
	if err != nil {
		return nil, err
	}
	next := func() string { a := addrs[0]; addrs = addrs[1:]; return a }

	// slapd, loaded with the reference's entry shape.
	var accounts []slapdtest.Account
	for i := range nAccounts {
		u, pw := imapUser(i)
		accounts = append(accounts, slapdtest.Account{Address: u, Password: pw, MailHost: instanceFQD},
			slapdtest.Account{Address: rcpt(i), Password: "pw-rcpt", MailHost: instanceFQD})
	}
	ldapDir := c.path("ldap")
	conf := filepath.Join(ldapDir, "slapd.conf")
	confText, err := slapdtest.Conf(ldapDir)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(conf, confText, 0o600); err != nil {
		return nil, err
	}
	ldif := filepath.Join(ldapDir, "base.ldif")
	os.WriteFile(ldif, []byte(slapdtest.LDIF(accounts)), 0o600)
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", conf, "-l", ldif).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapadd: %v\n%s", err, out)
	}
	c.pwFile = filepath.Join(ldapDir, "service-password")
	os.WriteFile(c.pwFile, []byte(slapdtest.ServicePassword+"\n"), 0o600)
	c.slapdAddr = next()
	url := "ldap://" + c.slapdAddr + "/"
	if c.slapd, err = startProc("slapd", c.path("log", "slapd.log"), "/usr/sbin/slapd", "-f", conf, "-h", url, "-d", "0"); err != nil {
		return nil, err
	}
	if err := waitConnect(c.slapdAddr, c.slapd); err != nil {
		return nil, err
	}
	c.ldap = config.LDAP{URLs: []string{url}, BindDN: slapdtest.ServiceDN, BindPasswordFile: c.pwFile, Base: slapdtest.Suffix,
		Filter: slapdtest.Filter, HostAttribute: "mailHost", RefuseDuplicates: true, Timeout: config.Duration(5 * time.Second)}

	// The store behind the front-ends trusts 127.0.0.1, where they dial
	// from; the direct one trusts nobody: a store with trusted networks
	// waits up to a second for a PROXY header from any peer that sends
	// nothing first (go-proxyproto's REJECT policy reads the first bytes),
	// so a client that is not a front-end would get its greeting late.
	for _, s := range []struct {
		name    string
		trusted []string
		addrs   *map[string]string
		p       **proc
	}{{"inst1", []string{"127.0.0.1/32"}, &c.storeAddrs, &c.store}, {"direct", []string{}, &c.directAddrs, &c.direct}} {
		d := c.path("store-" + s.name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		secret := filepath.Join(d, "admin-secret")
		os.WriteFile(secret, []byte("bench-admin-secret-0123456789\n"), 0o600)
		*s.addrs = map[string]string{"smtp": next(), "imap": next(), "admin": next()}
		ldapCfg := c.ldap
		scfg := &config.Store{FormatVersion: config.FormatVersion, Instance: s.name, Hostname: instanceFQD, Listeners: *s.addrs,
			StoragePath: filepath.Join(d, "storage"), QueuePath: filepath.Join(d, "queue"), RunPath: filepath.Join(d, "run"),
			LogDir: c.path("log"), LogName: s.name, AdminSecretFile: secret, LDAP: &ldapCfg, Domains: []string{domain},
			TrustedNetworks: s.trusted, Resolver: config.Resolver{Nameservers: []config.Nameserver{}},
			Limits: config.Limits{MaxConnections: 60000, PreAuthTimeout: config.Duration(5 * time.Minute), IdleTimeout: config.Duration(time.Hour),
				FailedLoginDelay: config.Duration(500 * time.Millisecond), MaxMessageBytes: 50 << 20, MaxRecipients: 1000}}
		cfgPath := c.path("store-" + s.name + ".json")
		if err := writeJSON(cfgPath, scfg); err != nil {
			return nil, err
		}
		p, err := startProc("store "+s.name, c.path("log", "store-"+s.name+".stderr"), bin, "store", "-config", cfgPath)
		if err != nil {
			return nil, err
		}
		*s.p = p
	}
	for _, k := range []string{"imap", "smtp"} {
		// From 127.0.0.2, which the store does not trust (127.0.0.1 would
		// get the greeting a second late).
		if err := waitGreeting(c.storeAddrs[k], "127.0.0.2", c.store); err != nil {
			return nil, err
		}
		if err := waitGreeting(c.directAddrs[k], "", c.direct); err != nil {
			return nil, err
		}
	}
	c.instances = map[string]config.InstanceRoute{instanceFQD: {Name: "inst1", SMTP: c.storeAddrs["smtp"], IMAP: c.storeAddrs["imap"]}}

	// Two front-end nodes.
	for i := range 2 {
		name := fmt.Sprintf("fe%d", i+1)
		imapAddr, smtpAddr, admin := next(), next(), next()
		c.feIMAP, c.feSMTP, c.feAdm = append(c.feIMAP, imapAddr), append(c.feSMTP, smtpAddr), append(c.feAdm, admin)
		cfg := c.frontendConfig(name, imapAddr, admin)
		cfg.SMTP = &config.Router{Listen: smtpAddr, Routing: true}
		path := c.path(name + ".json")
		if err := writeJSON(path, cfg); err != nil {
			return nil, err
		}
		fe, err := startProc(name, c.path("log", name+".stderr"), bin, "frontend", "-config", path)
		if err != nil {
			return nil, err
		}
		c.fes = append(c.fes, fe)
		for _, a := range []string{imapAddr, smtpAddr} {
			if err := waitGreeting(a, "", fe); err != nil {
				return nil, err
			}
		}
	}
	// The idle-session front-ends: their configs now, fresh processes for
	// each measurement.
	for i := range maxIdleNodes {
		name := fmt.Sprintf("fe-idle%d", i+1)
		c.idleIMAP, c.idleAdm = append(c.idleIMAP, next()), append(c.idleAdm, next())
		c.idleCfgPath, c.idleLog = append(c.idleCfgPath, c.path(name+".json")), append(c.idleLog, c.path("log", name+".stderr"))
		if err := writeJSON(c.idleCfgPath[i], c.frontendConfig(name, c.idleIMAP[i], c.idleAdm[i])); err != nil {
			return nil, err
		}
	}

	// The balancer in front of fe1 and fe2, as render writes it (least
	// connections, health every second, rise 2, fall 2, no PROXY header).
	c.lbIMAP, c.lbSMTP, c.lbAdm = next(), next(), next()
	bcfg := &config.Balancer{FormatVersion: config.FormatVersion, Node: "lb", Admin: c.lbAdm,
		Limits:  config.Limits{MaxConnections: 60000, IdleTimeout: config.Duration(31 * time.Minute)},
		LogFile: c.path("log", "balancer.log")}
	for _, s := range []struct{ proto, listen string }{{"imap", c.lbIMAP}, {"smtp", c.lbSMTP}} {
		svc := config.BalancedService{Name: s.proto, Protocol: s.proto, Listen: s.listen, Scheduler: "least_conn",
			Health: config.HealthConfig{Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second), Rise: 2, Fall: 2}}
		for i := range c.fes {
			addr := c.feIMAP[i]
			if s.proto == "smtp" {
				addr = c.feSMTP[i]
			}
			svc.Backends = append(svc.Backends, config.Backend{Name: fmt.Sprintf("fe%d", i+1), Address: addr, Weight: 1})
		}
		bcfg.Services = append(bcfg.Services, svc)
	}
	if err := writeJSON(c.path("balancer.json"), bcfg); err != nil {
		return nil, err
	}
	if c.lb, err = startProc("balancer", c.path("log", "balancer.stderr"), bin, "balancer", "-config", c.path("balancer.json")); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, _ := httpGet("http://" + c.lbAdm + "/healthz")
		if code == 200 && strings.Count(body, `"state":"up"`) == 4 {
			break
		}
		if !c.lb.alive() || time.Now().After(deadline) {
			return nil, fmt.Errorf("balancer not ready: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok = true
	return c, nil
}

func (c *cluster) frontendConfig(name, imapAddr, admin string) *config.Frontend {
	return &config.Frontend{FormatVersion: config.FormatVersion, Node: name, Admin: admin,
		IMAP: &config.Proxy{Listen: imapAddr, AuthenticateOnProxy: true}, LDAP: c.ldap, Instances: c.instances,
		Domains: []string{domain}, LogFile: c.path("log", name+".log"),
		Limits: config.Limits{MaxConnections: 60000, PreAuthTimeout: config.Duration(5 * time.Minute), IdleTimeout: config.Duration(time.Hour),
			FailedLoginDelay: config.Duration(500 * time.Millisecond), MaxMessageBytes: 50 << 20, MaxRecipients: 1000}}
}

// startIdle starts n fresh idle-session front-end processes.
func (c *cluster) startIdle(n int) error {
	for i := range n {
		p, err := startProc(fmt.Sprintf("fe-idle%d", i+1), c.idleLog[i], c.bin, "frontend", "-config", c.idleCfgPath[i])
		if err != nil {
			return err
		}
		c.idle = append(c.idle, p)
		if err := waitGreeting(c.idleIMAP[i], "", p); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) stopIdle() {
	for _, p := range c.idle {
		p.kill()
	}
	c.idle = nil
}

func httpGet(url string) (int, string, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// dialFrom dials addr from the source address src ("" is the kernel's
// choice).
func dialFrom(addr, src string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d.Dial("tcp", addr)
}

func waitConnect(addr string, p *proc) error {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if !p.alive() || time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept on %s: %v", p.name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGreeting waits until addr sends a greeting line.
func waitGreeting(addr, src string, p *proc) error {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := dialFrom(addr, src, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var line string
			line, err = bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && (strings.HasPrefix(line, "* OK") || strings.HasPrefix(line, "220")) {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("greeting %q", line)
			}
		}
		if !p.alive() {
			return fmt.Errorf("%s exited", p.name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not greet on %s: %v", p.name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuSeconds is the user+system CPU time of pid (all threads).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

// rssKB is the resident set size of pid.
func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, errors.New("no VmRSS")
}

// openFDs counts the descriptors of pid.
func openFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// raiseNoFile sets RLIMIT_NOFILE to want (soft and hard; raising the hard
// limit needs root), or to the hard limit when it cannot. Children started
// afterwards inherit it: after an explicit Setrlimit, os/exec no longer
// restores the limit the process started with.
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			return want, nil
		}
	}
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim.Max, Max: lim.Max})
	return lim.Max, err
}
