package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailfleet/mailfleet/internal/netwait"
	"github.com/mailfleet/mailfleet/runtime/balancer"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/frontend"
	"github.com/mailfleet/mailfleet/runtime/store"
)

// Names of the development cluster.
const (
	// Domain is the mail domain of the seeded accounts.
	Domain = "mailfleet.test"
	// Zone is the DNS zone of the loopback network: an instance's FQDN,
	// its accounts' mailHost, is its name in this zone.
	Zone = "cluster.test"
	// DefaultAddrBase is the first of the AddrCount consecutive loopback
	// addresses the cluster takes by default.
	DefaultAddrBase = "127.0.0.100"
	// AddrCount is how many consecutive addresses the cluster takes.
	AddrCount = 10

	balancerName      = "lb"
	directoryNodeName = "ldap1"
	frontendGroup     = "proxies"
	sessions          = 1000 // per front-end node
	loopbackCIDR      = "127.0.0.0/8"
	rootDirMode       = 0o700
)

// The roles, in address order after the balancer's two addresses: the
// front-end nodes, then the directory (VIP, node), then each instance (VIP,
// node).
var (
	frontendNames = [...]string{"fe1", "fe2"}
	instanceNames = [...]string{"inst1", "inst2"}
	instanceNodes = [...]string{"store1", "store2"}
	// The front-end protocols, which are also the balancer's services.
	protocols = [...]string{"smtp", "imap", "pop3"}
	// The listeners of an instance, in the order the topology writes them.
	storeKinds = [...]string{"smtp", "lmtp", "imap", "pop3", "admin"}
)

// Options say where and how the cluster runs.
type Options struct {
	// Dir holds everything the cluster keeps (required).
	Dir string
	// AddrBase is the first of AddrCount consecutive 127.0.0.0/8 addresses;
	// zero means DefaultAddrBase.
	AddrBase netip.Addr
	// Slapd, SchemaDir and ModuleDir locate OpenLDAP; empty means Debian's
	// /usr/sbin/slapd, /etc/ldap/schema and /usr/lib/ldap.
	Slapd, SchemaDir, ModuleDir string
	// Log receives a few lines for a human (progress, failures); the roles
	// log to files under Dir/log. Nil discards.
	Log io.Writer
	// ReadyTimeout bounds the start; zero means one minute.
	ReadyTimeout time.Duration
}

// Info describes the running cluster: what `mailfleetd dev` prints.
type Info struct {
	// SMTP, IMAP and POP3 are the balancer's services.
	SMTP      string                  `json:"smtp"`
	IMAP      string                  `json:"imap"`
	POP3      string                  `json:"pop3"`
	LDAP      string                  `json:"ldap"`
	Topology  string                  `json:"topology"`
	Accounts  []Account               `json:"accounts"`
	Instances map[string]InstanceInfo `json:"instances"`

	Domain string `json:"domain"`
	// BalancerAdmin serves the balancer's /healthz and /metrics.
	BalancerAdmin string                  `json:"balancer_admin"`
	Frontends     map[string]FrontendInfo `json:"frontends"`
	Data          string                  `json:"data"`
	Logs          string                  `json:"logs"`
	PID           int                     `json:"pid"`
	SlapdPID      int                     `json:"slapd_pid"`
	SlapdPIDFile  string                  `json:"slapd_pid_file"`
	StartupMS     int64                   `json:"startup_ms"`
}

// InstanceInfo is one store instance.
type InstanceInfo struct {
	SMTP        string `json:"smtp"`
	IMAP        string `json:"imap"`
	POP3        string `json:"pop3"`
	Admin       string `json:"admin"`
	AdminSecret string `json:"admin_secret"`
	// Data is the instance's directory: storage, queue and run below it.
	Data string `json:"data"`
	LMTP string `json:"lmtp"`
	FQDN string `json:"fqdn"`
}

// FrontendInfo is one front-end node.
type FrontendInfo struct {
	SMTP  string `json:"smtp"`
	IMAP  string `json:"imap"`
	POP3  string `json:"pop3"`
	Admin string `json:"admin"`
}

// Cluster is a running development cluster.
type Cluster struct {
	opts    Options
	dir     string
	started time.Time
	log     *slog.Logger
	files   []*os.File // logs and the lock, closed last
	sec     *secrets
	ports   map[string]int // of the last run, by role/listener

	slapd     *slapd
	stores    []*storeRole
	frontends []*frontend.Node
	feAddrs   []map[string]string
	balancer  *balancer.Balancer
	info      Info

	closeOnce sync.Once
	closeErr  error
}

type storeRole struct {
	name, fqdn string
	cfg        *config.Store
	in         *store.Instance
	addrs      map[string]string
}

// layout is the address of each role.
type layout struct {
	balancerNode, balancerVIP   netip.Addr
	frontends                   [len(frontendNames)]netip.Addr
	directoryVIP, directoryNode netip.Addr
	instanceVIPs, instanceNodes [len(instanceNames)]netip.Addr
}

func newLayout(base netip.Addr) (layout, error) {
	var l layout
	loopback := netip.MustParsePrefix(loopbackCIDR)
	addrs := make([]netip.Addr, AddrCount)
	a := base
	for i := range addrs {
		if !a.Is4() || !loopback.Contains(a) || a == loopback.Addr() || a == netip.MustParseAddr("127.255.255.255") {
			return l, fmt.Errorf("the address base %s does not leave %d consecutive usable addresses in %s", base, AddrCount, loopbackCIDR)
		}
		addrs[i] = a
		a = a.Next()
	}
	l.balancerNode, l.balancerVIP = addrs[0], addrs[1]
	n := 2
	for i := range l.frontends {
		l.frontends[i] = addrs[n]
		n++
	}
	l.directoryVIP, l.directoryNode = addrs[n], addrs[n+1]
	n += 2
	for i := range l.instanceVIPs {
		l.instanceVIPs[i], l.instanceNodes[i] = addrs[n], addrs[n+1]
		n += 2
	}
	return l, nil
}

// Run starts the cluster, calls ready with its description, and serves
// until ctx ends (or slapd dies), then stops everything.
func Run(ctx context.Context, opts Options, ready func(Info) error) error {
	c, err := New(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while starting: everything started is stopped.
			if opts.Log != nil {
				fmt.Fprintln(opts.Log, "mailfleetd dev: stopped before the cluster was ready")
			}
			return nil
		}
		return err
	}
	if err := ready(c.Info()); err != nil {
		return errors.Join(err, c.Close())
	}
	select {
	case <-ctx.Done():
		c.say("stopping")
		return c.Close()
	case <-c.slapd.exited:
		err := fmt.Errorf("slapd exited unexpectedly (see %s)", c.slapd.log.Name())
		c.log.Error("slapd exited unexpectedly; stopping")
		return errors.Join(err, c.Close())
	}
}

// New starts the cluster on opts.Dir and returns once it is ready: every
// listener accepts, the balancer sees every front-end node up, and the
// accounts are in the directory and on their instances. On failure, or
// when ctx ends first, everything started is stopped again.
func New(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("devcluster: no data directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if !opts.AddrBase.IsValid() {
		opts.AddrBase = netip.MustParseAddr(DefaultAddrBase)
	}
	if opts.Slapd == "" {
		opts.Slapd = "/usr/sbin/slapd"
	}
	if opts.SchemaDir == "" {
		opts.SchemaDir = "/etc/ldap/schema"
	}
	if opts.ModuleDir == "" {
		opts.ModuleDir = "/usr/lib/ldap"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = time.Minute
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	lay, err := newLayout(opts.AddrBase)
	if err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	c := &Cluster{opts: opts, dir: dir, started: time.Now(), ports: map[string]int{}}
	ctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	if err := c.start(ctx, lay); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = errors.Join(ctx.Err(), err)
		}
		if c.log != nil {
			c.log.Error("start failed", "err", err.Error())
		}
		return nil, errors.Join(fmt.Errorf("devcluster: %w", err), c.Close())
	}
	return c, nil
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// say tells the human on opts.Log and the cluster's log.
func (c *Cluster) say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(c.opts.Log, "mailfleetd dev: %s\n", msg)
	if c.log != nil {
		c.log.Info(msg)
	}
}

func (c *Cluster) openLog(name string) (*os.File, error) {
	f, err := os.OpenFile(c.path("log", name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	c.files = append(c.files, f)
	return f, nil
}

func (c *Cluster) start(ctx context.Context, lay layout) error {
	for _, d := range []string{c.dir, c.path("log"), c.path("ldap"), c.path("topology"), c.path("instances")} {
		if err := os.MkdirAll(d, rootDirMode); err != nil {
			return err
		}
	}
	if err := c.lockDir(); err != nil {
		return err
	}
	devLog, err := c.openLog("dev.log")
	if err != nil {
		return err
	}
	c.log = slog.New(slog.NewJSONHandler(devLog, nil)).With("role", "dev")
	c.say("starting in %s (logs in %s)", c.dir, c.path("log"))
	if err := c.moveSecrets(); err != nil {
		return err
	}
	if c.sec, err = loadSecrets(c.secretsDir(), instanceNames[:]); err != nil {
		return err
	}
	if b, err := os.ReadFile(c.path("ports.json")); err == nil {
		json.Unmarshal(b, &c.ports) // a damaged file only costs the old ports
	}

	// The directory.
	slapdLog, err := c.openLog("slapd.log")
	if err != nil {
		return err
	}
	c.slapd = &slapd{binary: c.opts.Slapd, schemaDir: c.opts.SchemaDir, moduleDir: c.opts.ModuleDir,
		dir: c.path("ldap"), ip: lay.directoryVIP, log: slapdLog}
	if err := c.slapd.start(ctx, c.ports["ldap"], c.sec.LDAPAdmin); err != nil {
		return err
	}
	c.log.Info("slapd listening", "url", c.slapd.URL(), "elapsed_ms", time.Since(c.started).Milliseconds())
	c.ports["ldap"] = int(c.slapd.addr.Port())
	homes := map[string]string{}
	for _, name := range instanceNames {
		homes[name] = name + "." + Zone
	}
	if err := seed(c.slapd.URL(), c.sec, homes); err != nil {
		return err
	}
	c.log.Info("directory seeded", "url", c.slapd.URL(), "pid", c.slapd.PID(), "elapsed_ms", time.Since(c.started).Milliseconds())
	if err := ctx.Err(); err != nil {
		return err
	}

	// The instances, then each account's mailbox on its home.
	for i, name := range instanceNames {
		if err := c.startStore(name, homes[name], lay.instanceVIPs[i]); err != nil {
			return err
		}
	}
	for _, a := range c.sec.Accounts {
		if err := c.createMailbox(ctx, a); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// The front-end nodes, then the balancer in front of them.
	if err := c.startFrontends(lay); err != nil {
		return err
	}
	c.log.Info("front-end nodes serving", "elapsed_ms", time.Since(c.started).Milliseconds())
	if err := c.startBalancer(lay); err != nil {
		return err
	}
	c.log.Info("balancer serving", "elapsed_ms", time.Since(c.started).Milliseconds())

	if err := c.writeTopology(lay); err != nil {
		return err
	}
	c.buildInfo()
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	if b, err := json.MarshalIndent(c.ports, "", "  "); err == nil {
		writeFileAtomic(c.path("ports.json"), append(b, '\n'), 0o644)
	}
	c.info.StartupMS = time.Since(c.started).Milliseconds()
	c.say("ready in %s: smtp %s, imap %s, pop3 %s", time.Since(c.started).Round(time.Millisecond), c.info.SMTP, c.info.IMAP, c.info.POP3)
	return nil
}

// lockDir keeps a second `mailfleetd dev` off the same directory.
func (c *Cluster) lockDir() error {
	f, err := os.OpenFile(c.path(".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("%s is in use by another mailfleetd dev (%v)", c.dir, err)
	}
	c.files = append(c.files, f)
	return nil
}

// ldapConfig is the connector every role uses, as render writes it.
func (c *Cluster) ldapConfig() config.LDAP {
	return config.LDAP{URLs: []string{c.slapd.URL()}, BindDN: ServiceDN, BindPasswordFile: c.sec.ldapServiceFile,
		Base: Suffix, Filter: Filter, HostAttribute: HostAttribute, RefuseDuplicates: true,
		Timeout: config.Duration(5 * time.Second)}
}

// startStore runs one instance on vip, on the ports of the last run when
// they are free.
func (c *Cluster) startStore(name, fqdn string, vip netip.Addr) error {
	data := c.path("instances", name)
	ldapCfg := c.ldapConfig()
	cfg := &config.Store{
		FormatVersion:   config.FormatVersion,
		Instance:        name,
		Hostname:        fqdn,
		StoragePath:     filepath.Join(data, "storage"),
		QueuePath:       filepath.Join(data, "queue"),
		RunPath:         filepath.Join(data, "run"),
		LogDir:          c.path("log"),
		LogName:         name,
		AdminSecretFile: c.sec.adminSecretFile(name),
		LDAP:            &ldapCfg,
		Domains:         []string{Domain},
		TrustedNetworks: []string{loopbackCIDR},
		Resolver:        config.Resolver{Nameservers: []config.Nameserver{}},
		Limits:          config.DefaultLimits(),
	}
	cfg.Limits.MaxConnections = sessions * len(frontendNames)
	logFile, err := store.LogFile(cfg)
	if err != nil {
		return err
	}
	c.files = append(c.files, logFile)
	for try := 0; ; try++ {
		cfg.Listeners = map[string]string{}
		for _, kind := range storeKinds {
			port := 0
			if try == 0 {
				port = c.ports[name+"/"+kind]
			}
			cfg.Listeners[kind] = netip.AddrPortFrom(vip, uint16(port)).String()
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		in, err := store.New(cfg, store.Options{Logger: slog.New(slog.NewJSONHandler(logFile, nil))})
		if err != nil {
			return fmt.Errorf("instance %s: %w", name, err)
		}
		if err := in.Listen(); err != nil {
			if try < 2 {
				continue
			}
			return fmt.Errorf("instance %s: %w", name, err)
		}
		in.Serve()
		r := &storeRole{name: name, fqdn: fqdn, cfg: cfg, in: in, addrs: in.Addrs()}
		c.stores = append(c.stores, r)
		for kind, addr := range r.addrs {
			c.ports[name+"/"+kind] = portOf(addr)
		}
		c.log.Info("instance serving", "instance", name, "listeners", r.addrs, "elapsed_ms", time.Since(c.started).Milliseconds())
		return nil
	}
}

// createMailbox makes the account's mailbox on its home instance, through
// the admin API (idempotent).
func (c *Cluster) createMailbox(ctx context.Context, a Account) error {
	var home *storeRole
	for _, s := range c.stores {
		if s.name == a.Instance {
			home = s
		}
	}
	if home == nil {
		return fmt.Errorf("account %s: no instance %q", a.User, a.Instance)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+home.addrs["admin"]+"/v1/accounts/"+url.PathEscape(a.User), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.sec.AdminSecrets[a.Instance])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("creating the mailbox of %s on %s: %w", a.User, a.Instance, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("creating the mailbox of %s on %s: %s %s", a.User, a.Instance, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// routes is the instance table of every front-end config.
func (c *Cluster) routes() map[string]config.InstanceRoute {
	out := map[string]config.InstanceRoute{}
	for _, s := range c.stores {
		out[s.fqdn] = config.InstanceRoute{Name: s.name, SMTP: s.addrs["smtp"], LMTP: s.addrs["lmtp"], IMAP: s.addrs["imap"], POP3: s.addrs["pop3"]}
	}
	return out
}

// startFrontends runs the front-end nodes, each on its address, all with
// the same ports (the topology has one port per protocol for the group).
func (c *Cluster) startFrontends(lay layout) error {
	ips := lay.frontends[:]
	ports := map[string]int{}
	for _, proto := range protocols {
		p, err := commonPort(ips, c.ports["frontend/"+proto])
		if err != nil {
			return fmt.Errorf("frontend %s port: %w", proto, err)
		}
		ports[proto] = p
	}
	for i, name := range frontendNames {
		ip := lay.frontends[i]
		listen := func(port int) string { return netip.AddrPortFrom(ip, uint16(port)).String() }
		admin := c.ports[name+"/admin"]
		if admin == 0 {
			admin = config.FrontendAdminPort
		}
		if !portFree(ip, admin) {
			admin = 0
		}
		cfg := &config.Frontend{
			FormatVersion: config.FormatVersion,
			Node:          name,
			Admin:         listen(admin),
			IMAP:          &config.Proxy{Listen: listen(ports["imap"]), AuthenticateOnProxy: true},
			POP3:          &config.Proxy{Listen: listen(ports["pop3"]), AuthenticateOnProxy: true},
			SMTP:          &config.Router{Listen: listen(ports["smtp"]), Routing: true},
			LDAP:          c.ldapConfig(),
			Instances:     c.routes(),
			Domains:       []string{Domain},
			Limits:        config.DefaultLimits(),
			LogFile:       c.path("log", "frontend-"+name+".log"),
		}
		cfg.Limits.MaxConnections = sessions
		if err := cfg.Validate(); err != nil {
			return err
		}
		logFile, err := frontend.LogFile(cfg)
		if err != nil {
			return err
		}
		c.files = append(c.files, logFile)
		n, err := frontend.New(cfg, frontend.Options{Logger: slog.New(slog.NewJSONHandler(logFile, nil))})
		if err != nil {
			return fmt.Errorf("frontend %s: %w", name, err)
		}
		if err := n.Listen(); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			n.Shutdown(ctx)
			cancel()
			return fmt.Errorf("frontend %s: %w", name, err)
		}
		n.Serve()
		c.frontends = append(c.frontends, n)
		addrs := n.Addrs()
		c.feAddrs = append(c.feAddrs, addrs)
		c.ports[name+"/admin"] = portOf(addrs["admin"])
	}
	for proto, p := range ports {
		c.ports["frontend/"+proto] = p
	}
	return nil
}

// balancerHealth is the health check of every service: the topology's
// defaults, written out in the topology too.
func balancerHealth() config.HealthConfig {
	return config.HealthConfig{Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second), Rise: 2, Fall: 2}
}

// startBalancer runs the balancer: its services on its VIP, its admin
// listener on its node's address.
func (c *Cluster) startBalancer(lay layout) error {
	logFile, err := c.openLog("balancer.log")
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logFile, nil)).With("role", "balancer")
	for try := 0; ; try++ {
		admin := c.ports["balancer/admin"]
		if admin == 0 {
			admin = config.BalancerAdminPort
		}
		if try > 0 || !portFree(lay.balancerNode, admin) {
			admin = 0
		}
		cfg := &config.Balancer{
			FormatVersion: config.FormatVersion,
			Node:          balancerName,
			Admin:         netip.AddrPortFrom(lay.balancerNode, uint16(admin)).String(),
			Limits:        config.Limits{MaxConnections: sessions * len(frontendNames), MaxPerClient: config.DefaultMaxPerClient, IdleTimeout: config.DefaultLimits().IdleTimeout},
		}
		for _, proto := range protocols {
			port := 0
			if try == 0 {
				port = c.ports["balancer/"+proto]
			}
			svc := config.BalancedService{Name: proto, Protocol: proto, Listen: netip.AddrPortFrom(lay.balancerVIP, uint16(port)).String(),
				Scheduler: "least_conn", Health: balancerHealth()}
			for i, name := range frontendNames {
				svc.Backends = append(svc.Backends, config.Backend{Name: name, Address: c.feAddrs[i][proto], Weight: 1})
			}
			cfg.Services = append(cfg.Services, svc)
		}
		b, err := balancer.New(cfg, balancer.Options{Logger: log})
		if err != nil {
			return err
		}
		if err := b.Listen(); err != nil {
			b.Close()
			if try < 2 {
				continue
			}
			return err
		}
		b.Serve()
		c.balancer = b
		for k, addr := range b.Addrs() {
			c.ports["balancer/"+k] = portOf(addr)
		}
		return nil
	}
}

// writeTopology writes DIR/topology/cluster.hcl: this cluster, as bound.
func (c *Cluster) writeTopology(lay layout) error {
	v := &topologyView{
		TopologyDir: c.path("topology"), SecretsDir: c.secretsDir(),
		SiteKeyName: siteKeyName, LDAPAdminName: ldapAdminName, LDAPServiceName: ldapServiceName,
		CIDR: loopbackCIDR, Zone: Zone, Domain: Domain, Sessions: sessions,
		FrontendPorts: map[string]int{},
		Directory: directoryView{Node: nodeView{directoryNodeName, lay.directoryNode.String()}, VIP: lay.directoryVIP.String(),
			Port: int(c.slapd.addr.Port()), Base: Suffix, AdminDN: AdminDN, ServiceDN: ServiceDN, Filter: Filter,
			HostAttribute: HostAttribute, DataDir: c.slapd.dataDir(), ConfPath: c.slapd.confPath()},
	}
	h := balancerHealth()
	v.Balancer = balancerView{Name: balancerName, Address: lay.balancerNode.String(), VIP: lay.balancerVIP.String(),
		Scheduler: "least_conn", Interval: h.Interval.D().String(), Timeout: h.Timeout.D().String(), Rise: h.Rise, Fall: h.Fall}
	baddrs := c.balancer.Addrs()
	for _, proto := range protocols {
		v.Balancer.Services = append(v.Balancer.Services, serviceView{Name: proto, Port: portOf(baddrs[proto])})
		v.FrontendPorts[proto] = portOf(c.feAddrs[0][proto])
	}
	for i, name := range frontendNames {
		v.Frontends = append(v.Frontends, nodeView{name, lay.frontends[i].String()})
	}
	for i, s := range c.stores {
		iv := instanceView{Name: s.name, Hostname: s.name, VIP: lay.instanceVIPs[i].String(),
			AdminSecretName: filepath.Base(c.sec.adminSecretFile(s.name)),
			Node:            nodeView{instanceNodes[i], lay.instanceNodes[i].String()},
			Partitions: []partitionView{{"storage", s.cfg.StoragePath}, {"queue", s.cfg.QueuePath},
				{"run", s.cfg.RunPath}}}
		for _, kind := range storeKinds {
			iv.Listeners = append(iv.Listeners, listenerView{kind, portOf(s.addrs[kind])})
		}
		v.Instances = append(v.Instances, iv)
	}
	b, err := renderTopology(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.path("topology"), TopologyFile), b, 0o644)
}

func (c *Cluster) buildInfo() {
	baddrs := c.balancer.Addrs()
	c.info = Info{SMTP: baddrs["smtp"], IMAP: baddrs["imap"], POP3: baddrs["pop3"], LDAP: c.slapd.URL(),
		Topology: c.path("topology"), Accounts: append([]Account(nil), c.sec.Accounts...), Instances: map[string]InstanceInfo{},
		Domain: Domain, BalancerAdmin: baddrs["admin"], Frontends: map[string]FrontendInfo{}, Data: c.dir, Logs: c.path("log"),
		PID: os.Getpid(), SlapdPID: c.slapd.PID(), SlapdPIDFile: c.slapd.pidFile()}
	for _, s := range c.stores {
		c.info.Instances[s.name] = InstanceInfo{SMTP: s.addrs["smtp"], IMAP: s.addrs["imap"], POP3: s.addrs["pop3"],
			Admin: s.addrs["admin"], AdminSecret: c.sec.AdminSecrets[s.name], Data: filepath.Dir(s.cfg.StoragePath),
			LMTP: s.addrs["lmtp"], FQDN: s.fqdn}
	}
	for i, name := range frontendNames {
		a := c.feAddrs[i]
		c.info.Frontends[name] = FrontendInfo{SMTP: a["smtp"], IMAP: a["imap"], POP3: a["pop3"], Admin: a["admin"]}
	}
}

// waitReady waits until every listener accepts a connection and the
// balancer has every front-end node up in every service.
func (c *Cluster) waitReady(ctx context.Context) error {
	var addrs []string
	addrs = append(addrs, c.slapd.addr.String())
	for _, s := range c.stores {
		for _, a := range s.addrs {
			addrs = append(addrs, a)
		}
	}
	for _, fe := range c.feAddrs {
		for _, a := range fe {
			addrs = append(addrs, a)
		}
	}
	for _, a := range c.balancer.Addrs() {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	d := net.Dialer{Timeout: 5 * time.Second}
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return fmt.Errorf("listener %s does not accept: %w", a, err)
		}
		conn.Close()
	}
	for {
		st := c.balancer.Status()
		var notUp []string
		for _, s := range st.Services {
			for _, be := range s.Backends {
				if be.State != "up" {
					notUp = append(notUp, fmt.Sprintf("%s/%s %s %s", s.Name, be.Name, be.State, be.LastError))
				}
			}
		}
		if len(notUp) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the balancer does not see every front-end node up: %s: %w", strings.Join(notUp, "; "), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Info describes the running cluster.
func (c *Cluster) Info() Info { return c.info }

// Close stops the balancer, the front-end nodes, the instances and slapd,
// in that order, and waits for slapd to exit.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		if c.balancer != nil {
			errs = append(errs, c.balancer.Close())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errc := make(chan error, len(c.frontends)+len(c.stores))
		for _, n := range c.frontends {
			wg.Add(1)
			go func() { defer wg.Done(); errc <- n.Shutdown(ctx) }()
		}
		wg.Wait()
		for _, s := range c.stores {
			wg.Add(1)
			go func() { defer wg.Done(); errc <- s.in.Shutdown(ctx) }()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			errs = append(errs, err)
		}
		if c.slapd != nil {
			errs = append(errs, c.slapd.stop())
		}
		if c.log != nil {
			c.log.Info("stopped")
		}
		for i := len(c.files) - 1; i >= 0; i-- {
			c.files[i].Close()
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// commonPort is a port free on every one of ips: preferred when it is,
// else one the kernel picks on the first and the others have free too.
func commonPort(ips []netip.Addr, preferred int) (int, error) {
	free := func(p int) bool {
		for _, ip := range ips {
			if !portFree(ip, p) {
				return false
			}
		}
		return true
	}
	if preferred > 0 && free(preferred) {
		return preferred, nil
	}
	for try := 0; try < 20; try++ {
		p, err := netwait.FreePort(ips[0])
		if err != nil {
			return 0, err
		}
		if free(p) {
			return p, nil
		}
	}
	return 0, errors.New("no port is free on every front-end address")
}

// portFree reports whether ip:port can be bound now.
func portFree(ip netip.Addr, port int) bool {
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, uint16(port)).String())
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func portOf(addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0
	}
	return int(ap.Port())
}

// secretsDir holds the cluster's secrets: inside the topology's directory,
// the only place its file() calls may read.
func (c *Cluster) secretsDir() string { return c.path("topology", "secrets") }

// moveSecrets moves the secrets of a data directory made by an earlier
// version (DIR/secrets) to where they are kept now, so that its accounts'
// passwords stay the same.
func (c *Cluster) moveSecrets() error {
	old := c.path("secrets")
	if _, err := os.Stat(old); err != nil {
		return os.MkdirAll(c.secretsDir(), rootDirMode)
	}
	if _, err := os.Stat(c.secretsDir()); err == nil {
		return os.MkdirAll(c.secretsDir(), rootDirMode)
	}
	return os.Rename(old, c.secretsDir())
}
