package config

import (
	"errors"
	"fmt"
	"net/netip"
)

// Balancer is the config of `mailfleetd balancer`.
type Balancer struct {
	FormatVersion int    `json:"format_version"`
	Node          string `json:"node"`
	// Admin is where health and metrics are served (ADDR:PORT).
	Admin    string            `json:"admin"`
	Services []BalancedService `json:"services"`
	Limits   Limits            `json:"limits"`
	LogFile  string            `json:"log_file,omitempty"`
}

type BalancedService struct {
	Name          string       `json:"name"`
	Protocol      string       `json:"protocol"` // smtp, imap, pop3
	Listen        string       `json:"listen"`   // VIP:PORT
	Scheduler     string       `json:"scheduler"`
	ProxyProtocol bool         `json:"proxy_protocol"`
	Backends      []Backend    `json:"backends"`
	Health        HealthConfig `json:"health"`
}

type Backend struct {
	Name    string `json:"name"`
	Address string `json:"address"` // ADDR:PORT
	Weight  int    `json:"weight"`
}

type HealthConfig struct {
	Interval Duration `json:"interval"`
	// Timeout bounds one check (connect and greeting); zero means Interval.
	Timeout Duration `json:"timeout"`
	Rise    int      `json:"rise"`
	Fall    int      `json:"fall"`
	// FastInterval is the pause between checks while a backend's state is
	// in doubt (it failed a check while up, or passed one while down), so
	// that a dead node is marked down well within Interval × Fall. Zero
	// means a quarter of Interval.
	FastInterval Duration `json:"fast_interval,omitempty"`
}

// Limits bound what one client may take. A zero value means no limit (for
// the timeouts: the daemon's default). MaxPerClient counts connections per
// client address, so a role that sees every client through one peer (a
// front-end behind a balancer without the PROXY protocol, a store behind the
// front-ends) gets 0.
type Limits struct {
	MaxConnections   int      `json:"max_connections"`
	MaxPerClient     int      `json:"max_per_client"`
	PreAuthTimeout   Duration `json:"preauth_timeout,omitempty"`
	IdleTimeout      Duration `json:"idle_timeout,omitempty"`
	FailedLoginDelay Duration `json:"failed_login_delay,omitempty"`
	MaxMessageBytes  int64    `json:"max_message_bytes,omitempty"`
	MaxRecipients    int      `json:"max_recipients,omitempty"`
}

var schedulers = map[string]bool{"least_conn": true, "weighted_least_conn": true, "round_robin": true}
var protocols = map[string]bool{"smtp": true, "imap": true, "pop3": true}

func (b *Balancer) Validate() error {
	if err := checkVersion(b.FormatVersion); err != nil {
		return err
	}
	var errs []error
	if len(b.Services) == 0 {
		errs = append(errs, errors.New("balancer: no services"))
	}
	if b.Admin != "" {
		errs = append(errs, checkAddrPort("balancer admin", b.Admin))
	}
	for _, s := range b.Services {
		where := "balancer service " + s.Name
		errs = append(errs, checkAddrPort(where, s.Listen))
		if !schedulers[s.Scheduler] {
			errs = append(errs, fmt.Errorf("%s: unknown scheduler %q", where, s.Scheduler))
		}
		if !protocols[s.Protocol] {
			errs = append(errs, fmt.Errorf("%s: unknown protocol %q", where, s.Protocol))
		}
		if len(s.Backends) == 0 {
			errs = append(errs, fmt.Errorf("%s: no backends", where))
		}
		for _, be := range s.Backends {
			errs = append(errs, checkAddrPort(where+" backend "+be.Name, be.Address))
			if be.Weight < 1 {
				errs = append(errs, fmt.Errorf("%s: backend %s weight must be at least 1", where, be.Name))
			}
		}
		if s.Health.Interval <= 0 || s.Health.Rise < 1 || s.Health.Fall < 1 {
			errs = append(errs, fmt.Errorf("%s: health needs interval > 0, rise >= 1, fall >= 1", where))
		}
	}
	return errors.Join(errs...)
}

// Frontend is the config of `mailfleetd frontend`: the IMAP and POP3 proxies
// and the SMTP router of one front-end node.
type Frontend struct {
	FormatVersion int     `json:"format_version"`
	Node          string  `json:"node"`
	Admin         string  `json:"admin"` // health and metrics, ADDR:PORT
	IMAP          *Proxy  `json:"imap,omitempty"`
	POP3          *Proxy  `json:"pop3,omitempty"`
	SMTP          *Router `json:"smtp,omitempty"`
	LDAP          LDAP    `json:"ldap"`
	// Instances maps each instance's FQDN (the mailHost value) to its
	// addresses, so no DNS is needed at run time.
	Instances    map[string]InstanceRoute `json:"instances"`
	DefaultRoute string                   `json:"default_route,omitempty"` // an FQDN of Instances
	Domains      []string                 `json:"domains"`
	// BackendTLS asks for TLS on the hop to the stores.
	BackendTLS bool   `json:"backend_tls,omitempty"`
	BackendCA  string `json:"backend_ca,omitempty"`
	// ProxyProtocol: the balancer sends PROXY v2; trust it from these.
	TrustedBalancers []string `json:"trusted_balancers,omitempty"`
	Limits           Limits   `json:"limits"`
	LogFile          string   `json:"log_file,omitempty"`
}

type Proxy struct {
	Listen              string `json:"listen"`
	AuthenticateOnProxy bool   `json:"authenticate_on_proxy"`
	TLS                 *TLS   `json:"tls,omitempty"`
}

type Router struct {
	Listen  string `json:"listen"`
	Routing bool   `json:"routing"`
	LMTP    bool   `json:"lmtp"`
	TLS     *TLS   `json:"tls,omitempty"`
}

// InstanceRoute is where one instance's listeners are.
type InstanceRoute struct {
	Name string `json:"name"`
	SMTP string `json:"smtp,omitempty"`
	LMTP string `json:"lmtp,omitempty"`
	IMAP string `json:"imap,omitempty"`
	POP3 string `json:"pop3,omitempty"`
}

func (f *Frontend) Validate() error {
	if err := checkVersion(f.FormatVersion); err != nil {
		return err
	}
	errs := f.nodeErrs()
	errs = append(errs, instanceErrs(f.Instances)...)
	errs = append(errs, f.routeErrs()...)
	return errors.Join(errs...)
}

// ValidateNode checks everything Validate checks but the addresses of the
// instance table (ValidateInstances): a renderer that writes one table into
// the config of many front-end nodes checks the table once and each node's
// part with this. Validate fails exactly when one of the two does.
func (f *Frontend) ValidateNode() error {
	if err := checkVersion(f.FormatVersion); err != nil {
		return err
	}
	errs := f.nodeErrs()
	errs = append(errs, f.routeErrs()...)
	return errors.Join(errs...)
}

// ValidateInstances checks an instance table as Validate does: it is not
// empty and every address is ADDR:PORT.
func ValidateInstances(instances map[string]InstanceRoute) error {
	return errors.Join(instanceErrs(instances)...)
}

// nodeErrs are the problems of f's listeners and LDAP settings.
func (f *Frontend) nodeErrs() []error {
	var errs []error
	if f.IMAP == nil && f.POP3 == nil && f.SMTP == nil {
		errs = append(errs, errors.New("frontend: no imap, pop3 or smtp listener"))
	}
	if f.Admin != "" {
		errs = append(errs, checkAddrPort("frontend admin", f.Admin))
	}
	for name, p := range map[string]*Proxy{"imap": f.IMAP, "pop3": f.POP3} {
		if p != nil {
			errs = append(errs, checkAddrPort("frontend "+name, p.Listen), p.TLS.validate("frontend "+name))
		}
	}
	if f.SMTP != nil {
		errs = append(errs, checkAddrPort("frontend smtp", f.SMTP.Listen), f.SMTP.TLS.validate("frontend smtp"))
	}
	errs = append(errs, f.LDAP.validate("frontend"))
	return errs
}

// instanceErrs are the problems of an instance table. It runs once per
// front-end config and table entry, so it allocates nothing for a good
// entry.
func instanceErrs(instances map[string]InstanceRoute) []error {
	var errs []error
	if len(instances) == 0 {
		errs = append(errs, errors.New("frontend: no instances to route to"))
	}
	for fqdn, r := range instances {
		for _, a := range [...]struct{ what, addr string }{{"smtp", r.SMTP}, {"lmtp", r.LMTP}, {"imap", r.IMAP}, {"pop3", r.POP3}} {
			if a.addr == "" {
				continue
			}
			if _, err := netip.ParseAddrPort(a.addr); err != nil {
				errs = append(errs, checkAddrPort("frontend instance "+fqdn+" "+a.what, a.addr))
			}
		}
	}
	return errs
}

// routeErrs are the problems of f's default route and trusted balancers.
func (f *Frontend) routeErrs() []error {
	var errs []error
	if f.DefaultRoute != "" {
		if _, ok := f.Instances[f.DefaultRoute]; !ok {
			errs = append(errs, fmt.Errorf("frontend: default_route %q is not an instance", f.DefaultRoute))
		}
	}
	return append(errs, checkPrefixes("frontend", f.TrustedBalancers))
}

// Store is the config of `mailfleetd store`: one backend mail instance.
type Store struct {
	FormatVersion int    `json:"format_version"`
	Instance      string `json:"instance"`
	Hostname      string `json:"hostname"` // FQDN, used in greetings and Received:
	// Listeners: ADDR:PORT per kind (smtp, lmtp, imap, pop3, admin, and
	// implicit-TLS imaps, pop3s, submissions when a certificate is set).
	Listeners map[string]string `json:"listeners"`
	// Paths on the instance's partitions.
	StoragePath string `json:"storage_path"`
	QueuePath   string `json:"queue_path"`
	RunPath     string `json:"run_path"`
	LogDir      string `json:"log_dir"`
	// LogName is carried by every log file's name (the instance name).
	LogName string `json:"log_name"`
	// AdminSecretFile holds the admin API secret (0600/0640).
	AdminSecretFile string `json:"admin_secret_file"`
	// Exactly one of LDAP and PasswdFile names the account directory.
	LDAP       *LDAP  `json:"ldap,omitempty"`
	PasswdFile string `json:"passwd_file,omitempty"`
	// Domains served by this instance when not managed by the admin API.
	Domains         []string `json:"domains,omitempty"`
	TrustedNetworks []string `json:"trusted_networks"`
	Resolver        Resolver `json:"resolver"`
	TLS             *TLS     `json:"tls,omitempty"`
	Limits          Limits   `json:"limits"`
	// Outbound delivery retry schedule.
	RetryPeriod Duration `json:"retry_period,omitempty"`
}

var storeListenerKinds = map[string]bool{"smtp": true, "lmtp": true, "imap": true, "pop3": true, "admin": true,
	"imaps": true, "pop3s": true, "submissions": true}

func (s *Store) Validate() error {
	if err := checkVersion(s.FormatVersion); err != nil {
		return err
	}
	var errs []error
	if s.Instance == "" || s.Hostname == "" {
		errs = append(errs, errors.New("store: instance and hostname are required"))
	}
	if len(s.Listeners) == 0 {
		errs = append(errs, errors.New("store: no listeners"))
	}
	for kind, a := range s.Listeners {
		if !storeListenerKinds[kind] {
			errs = append(errs, fmt.Errorf("store: unknown listener kind %q", kind))
		}
		errs = append(errs, checkAddrPort("store listener "+kind, a))
	}
	for what, p := range map[string]string{"storage_path": s.StoragePath, "queue_path": s.QueuePath, "run_path": s.RunPath, "admin_secret_file": s.AdminSecretFile} {
		if p == "" || p[0] != '/' {
			errs = append(errs, fmt.Errorf("store: %s must be an absolute path, got %q", what, p))
		}
	}
	if (s.LDAP == nil) == (s.PasswdFile == "") {
		errs = append(errs, errors.New("store: exactly one of ldap and passwd_file must be set"))
	}
	errs = append(errs, s.LDAP.validate("store"), s.Resolver.validate("store"), s.TLS.validate("store"),
		checkPrefixes("store", s.TrustedNetworks))
	return errors.Join(errs...)
}
