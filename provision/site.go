package provision

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/mailfleet/mailfleet/internal/maildomain"
	"github.com/mailfleet/mailfleet/render"
	"github.com/mailfleet/mailfleet/runtime/adminapi"
	"github.com/mailfleet/mailfleet/spec"
)

// Site is what provisioning needs of a topology: the directory, every
// instance's admin API, the policy and the domain settings.
type Site struct {
	Dir       *Directory
	Instances map[string]*adminapi.Client // by instance name
	Names     []string                    // sorted
	Chooser   *Chooser
	// DomainSettings are given to every domain, wherever it exists.
	DomainSettings adminapi.DomainSettings

	// AfterMailbox, when set, runs after the mailbox step of Add and
	// before the LDAP step; an error stops Add there without rollback, as
	// a crash would (a test hook for the faults between the two writes).
	AfterMailbox func(address string) error

	byHost map[string]string // FQDN (lower case) → instance name
	// domains are the site's mail domains (canonical), from its
	// front-ends and its provisioning policy: an account of another
	// domain could never receive mail. Empty: any.
	domains map[string]bool

	domMu   sync.Mutex
	domDone map[string]bool
}

// Options change how Open reaches the directory and the instances.
type Options struct {
	// Dial, when set, returns the dialer for the directory (instance "")
	// or for instance's admin API; a nil result dials directly. The
	// account commands use it to go through the topology's jump host.
	Dial func(instance string) Dialer
}

// Open reads what provisioning needs from t. Secrets must be known.
func Open(t *spec.Topology) (*Site, error) { return OpenWith(t, Options{}) }

// OpenWith is Open with options.
func OpenWith(t *spec.Topology, o Options) (*Site, error) {
	dialer := func(instance string) Dialer {
		if o.Dial == nil {
			return nil
		}
		return o.Dial(instance)
	}
	d := t.Directory
	if d == nil {
		return nil, errors.New("the topology has no directory block: accounts live in LDAP")
	}
	if !d.AdminPassword.Known || d.AdminPassword.Value == "" {
		return nil, fmt.Errorf("the directory's admin_password is not available (%s)", d.AdminPassword.Source)
	}
	hostAttr := hostAttrDefault
	for _, c := range t.Connectors {
		if c.HostAttribute != "" {
			hostAttr = c.HostAttribute
		}
	}
	var ca string
	if d.TLS != nil {
		ca = d.TLS.CA
	}
	serverName := d.Hostname
	for _, n := range t.Networks {
		if n.CIDR.Contains(d.VIP) && n.Zone != "" {
			serverName = d.Hostname + "." + n.Zone
		}
	}
	dir, err := NewDirectory(d.URL(), d.Base, d.AdminDN, d.AdminPassword.Value, hostAttr, d.TLSMode == spec.LDAPTLSStartTLS, serverName, ca)
	if err != nil {
		return nil, err
	}
	dir.dial = dialer("")
	s := &Site{Dir: dir, Instances: map[string]*adminapi.Client{}, Chooser: NewChooser(t), byHost: map[string]string{},
		domDone: map[string]bool{}}
	if p := t.Provisioning; p != nil {
		s.DomainSettings = adminapi.DomainSettings{DefaultQuota: adminapi.Quota{MaxBytes: p.DefaultQuota}, MaxAccounts: p.AccountLimit}
	}
	s.domains = siteDomains(t)
	var keys *render.Keys
	if t.Site.Secret.Known && t.Site.Secret.Value != "" {
		keys = render.NewKeys(t.Site.Secret.Value)
	}
	for _, in := range t.Instances {
		port, ok := in.Listeners["admin"]
		if !ok {
			return nil, fmt.Errorf("mail_instance %s has no admin listener", in.Name)
		}
		secret := ""
		switch {
		case in.AdminSecret.Known && in.AdminSecret.Value != "":
			secret = in.AdminSecret.Value
		case keys != nil:
			secret = keys.AdminSecret(in.Name)
		default:
			return nil, fmt.Errorf("mail_instance %s: the admin secret is not available (%s) and the site secret cannot derive it", in.Name, in.AdminSecret.Source)
		}
		var caFile string
		if in.TLS != nil {
			caFile = in.TLS.CA
		}
		ac, err := adminapi.NewClient(in.Name, in.FQDN(), netip.AddrPortFrom(in.VIP, uint16(port)), secret, in.TLS != nil, caFile, dialer(in.Name))
		if err != nil {
			return nil, err
		}
		s.Instances[in.Name] = ac
		s.Names = append(s.Names, in.Name)
		s.byHost[strings.ToLower(in.FQDN())] = in.Name
	}
	sort.Strings(s.Names)
	if len(s.Names) == 0 {
		return nil, errors.New("the topology has no mail_instance")
	}
	return s, nil
}

// InstanceOf is the instance a mailHost names, "" when none.
func (s *Site) InstanceOf(mailHost string) string {
	return s.byHost[strings.ToLower(strings.TrimSuffix(mailHost, "."))]
}

// Instance returns the admin client of a named instance.
func (s *Site) Instance(name string) (*adminapi.Client, error) {
	if a, ok := s.Instances[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no mail_instance %q in the topology (there are %s)", name, strings.Join(s.Names, ", "))
}

// EnsureDomain creates domain where the policy needs it (on need, which
// must succeed) and gives it the topology's settings on every instance
// that has it. It is done once per Site.
func (s *Site) EnsureDomain(ctx context.Context, domain string, need []string) error {
	s.domMu.Lock()
	defer s.domMu.Unlock()
	key := domain + "\x00" + strings.Join(need, ",")
	if s.domDone[key] {
		return nil
	}
	needed := map[string]bool{}
	for _, n := range need {
		needed[n] = true
	}
	for _, name := range s.Names {
		a := s.Instances[name]
		ds, err := a.Domains(ctx)
		if err != nil {
			if needed[name] {
				return err
			}
			continue // an instance that need not have it, unreachable
		}
		cur, has := ds[domain]
		if (needed[name] || has) && (!has || cur != s.DomainSettings) {
			if err := a.SetDomain(ctx, domain, s.DomainSettings); err != nil {
				return err
			}
		}
	}
	s.domDone[key] = true
	return nil
}

// siteDomains are the mail domains t serves, in canonical form.
func siteDomains(t *spec.Topology) map[string]bool {
	out := map[string]bool{}
	add := func(d string) {
		if c, err := maildomain.Canonical(d); err == nil {
			out[c] = true
		}
	}
	for _, fe := range t.Frontends {
		for _, d := range fe.Domains {
			add(d)
		}
	}
	if p := t.Provisioning; p != nil {
		for d := range p.Domains {
			add(d)
		}
	}
	return out
}

// CheckAddress refuses an address outside the site's domains: every path
// that creates an account (add, import, move) goes through it.
func (s *Site) CheckAddress(addr string) error {
	if len(s.domains) == 0 {
		return nil
	}
	_, d, _ := strings.Cut(addr, "@")
	if c, err := maildomain.Canonical(d); err != nil || !s.domains[c] {
		return fmt.Errorf("%s: %w: %s is not one of the site's domains (%s)", addr, ErrForeignDomain, d, strings.Join(sortedKeys(s.domains), ", "))
	}
	return nil
}

// ErrForeignDomain is an address of a domain the site does not serve.
var ErrForeignDomain = errors.New("not a domain of this site")

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
