package render

import (
	"bytes"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// renderDaemons renders what the daemons need: their configs, secrets,
// keepalived and units.
func renderDaemons(t *testing.T, tp *spec.Topology) *Output {
	t.Helper()
	return renderWith(t, tp, Options{}, renderBalancer, renderKeepalived, renderFrontend, renderStore, renderUnits)
}

func dmHasFile(h *Host, p string) bool {
	if h == nil {
		return false
	}
	for _, f := range h.Files {
		if f.Path == p {
			return true
		}
	}
	return false
}

// dmDecode reads a rendered daemon config the way the daemon does: strictly,
// then Validate.
func dmDecode[T any, P interface {
	*T
	Validate() error
}](t *testing.T, f *File) *T {
	t.Helper()
	v := P(new(T))
	if err := config.Decode(f.Content, v); err != nil {
		t.Fatalf("%s: %v", f.Path, err)
	}
	return (*T)(v)
}

func TestDaemonConfigsDecode(t *testing.T) {
	out := renderDaemons(t, spectest.Reference())
	n := 0
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			if !strings.HasPrefix(f.Path, "/etc/mailfleet/") || !strings.HasSuffix(f.Path, ".json") {
				continue
			}
			n++
			switch base := path.Base(f.Path); {
			case base == "balancer.json":
				dmDecode[config.Balancer](t, f)
			case base == "frontend.json":
				dmDecode[config.Frontend](t, f)
			case strings.HasPrefix(base, "store-"):
				dmDecode[config.Store](t, f)
			default:
				t.Errorf("%s on %s: unknown config", f.Path, h.Node)
			}
			if f.Sensitive || f.Mode != 0o644 {
				t.Errorf("%s on %s: mode %o sensitive=%v; configs hold no secret", f.Path, h.Node, f.Mode, f.Sensitive)
			}
		}
	}
	// 2 balancers + 3 front-ends + AXIGEN1 on 2 nodes + AXIGEN2 on 2 nodes.
	if n != 9 {
		t.Errorf("%d daemon configs, want 9", n)
	}
}

func TestBalancerConfig(t *testing.T) {
	out := renderDaemons(t, spectest.Reference())
	for _, node := range []string{"loadbalancer", "loadbalancer2"} {
		f := fileAt(t, out, node, balancerConfigPath)
		c := dmDecode[config.Balancer](t, f)
		h := out.Host(node)
		if !slices.Contains(h.Roles, "balancer") || !slices.Contains(h.Packages, "keepalived") {
			t.Errorf("%s: roles %v packages %v", node, h.Roles, h.Packages)
		}
		if soleAction(f) == nil || soleAction(f).Name != "reload mailfleetd-balancer" || !strings.Contains(soleAction(f).Command, "reload") {
			t.Errorf("%s: action %+v", node, actionSummary(f))
		}
		addr := map[string]string{"loadbalancer": "198.51.100.10", "loadbalancer2": "198.51.100.11"}[node]
		if c.Node != node || c.Admin != addr+":9100" {
			t.Errorf("%s: node %q admin %q", node, c.Node, c.Admin)
		}
		want := map[string]string{"imap": "198.51.100.202:143", "pop3": "198.51.100.201:110", "smtp": "198.51.100.200:25"}
		if len(c.Services) != 3 {
			t.Fatalf("%s: %d services", node, len(c.Services))
		}
		for _, s := range c.Services {
			if s.Listen != want[s.Name] || s.Scheduler != "least_conn" || s.ProxyProtocol {
				t.Errorf("%s: service %+v", node, s)
			}
			port := s.Listen[strings.LastIndex(s.Listen, ":"):]
			var got []string
			for _, be := range s.Backends {
				got = append(got, be.Name+"="+be.Address)
				if be.Weight != 1 {
					t.Errorf("%s: %s backend %s weight %d", node, s.Name, be.Name, be.Weight)
				}
			}
			if w := "proxy1=198.51.100.101" + port + " proxy2=198.51.100.102" + port + " proxy3=198.51.100.103" + port; strings.Join(got, " ") != w {
				t.Errorf("%s: %s backends %v, want %s", node, s.Name, got, w)
			}
			if s.Health.Interval.D().String() != "250ms" || s.Health.Rise != 2 || s.Health.Fall != 2 {
				t.Errorf("%s: %s health %+v", node, s.Name, s.Health)
			}
		}
		if c.Limits.MaxConnections != 30000 || c.Limits.MaxPerClient == 0 {
			t.Errorf("%s: limits %+v", node, c.Limits)
		}
	}
}

func TestFrontendConfig(t *testing.T) {
	tp := spectest.Reference()
	out := renderDaemons(t, tp)
	for i, node := range []string{"proxy1", "proxy2", "proxy3"} {
		f := fileAt(t, out, node, frontendConfigPath)
		c := dmDecode[config.Frontend](t, f)
		addr := tp.Frontends[0].Nodes[i].Address.String()
		if !slices.Contains(out.Host(node).Roles, "frontend") {
			t.Errorf("%s: roles %v", node, out.Host(node).Roles)
		}
		if soleAction(f) == nil || soleAction(f).Name != "restart mailfleetd-frontend" || soleAction(f).Order != OrderDaemon {
			t.Errorf("%s: action %+v", node, actionSummary(f))
		}
		if c.IMAP == nil || c.IMAP.Listen != addr+":143" || !c.IMAP.AuthenticateOnProxy ||
			c.POP3 == nil || c.POP3.Listen != addr+":110" ||
			c.SMTP == nil || c.SMTP.Listen != addr+":25" || !c.SMTP.Routing {
			t.Errorf("%s: listeners imap %+v pop3 %+v smtp %+v", node, c.IMAP, c.POP3, c.SMTP)
		}
		if c.Admin != addr+":9101" {
			t.Errorf("%s: admin %q", node, c.Admin)
		}
		// The directory is reached at its VIP, which follows it on
		// failover; never at a node.
		if len(c.LDAP.URLs) != 1 || c.LDAP.URLs[0] != "ldap://10.0.0.210:389" {
			t.Errorf("%s: ldap urls %v, want [ldap://10.0.0.210:389]", node, c.LDAP.URLs)
		}
		for _, n := range tp.Nodes {
			if strings.Contains(c.LDAP.URLs[0], n.Address.String()) {
				t.Errorf("%s: ldap url %s names node %s", node, c.LDAP.URLs[0], n.Name)
			}
		}
		if c.LDAP.BindDN != "cn=mailfleet,dc=example,dc=com" || c.LDAP.BindPasswordFile != ldapServiceSecret ||
			!c.LDAP.StartTLS || c.LDAP.CA != "/etc/mailfleet/tls/ca.crt" || !c.LDAP.RefuseDuplicates ||
			c.LDAP.HostAttribute != "mailHost" || c.LDAP.Base != "dc=example,dc=com" ||
			c.LDAP.Filter != "(&(uid=%e)(objectClass=inetLocalMailRecipient))" {
			t.Errorf("%s: ldap %+v", node, c.LDAP)
		}
		pw := fileAt(t, out, node, ldapServiceSecret)
		if string(pw.Content) != "service-pw" || pw.Mode != 0o640 || pw.Owner != "root" || pw.Group != "mailfleet" || !pw.Sensitive {
			t.Errorf("%s: ldap secret file %o %s:%s sensitive=%v", node, pw.Mode, pw.Owner, pw.Group, pw.Sensitive)
		}
		if soleAction(pw) == nil || soleAction(pw).Name != "restart mailfleetd-frontend" {
			t.Errorf("%s: ldap secret action %+v", node, actionSummary(pw))
		}
		ax1, ok := c.Instances["axigen1.backend.cluster"]
		if !ok || ax1.Name != "AXIGEN1" || ax1.IMAP != "10.0.0.201:143" || ax1.POP3 != "10.0.0.201:110" || ax1.SMTP != "10.0.0.201:25" || ax1.LMTP != "" {
			t.Errorf("%s: AXIGEN1 route %+v", node, ax1)
		}
		if ax2 := c.Instances["axigen2.backend.cluster"]; ax2.IMAP != "10.0.0.202:143" {
			t.Errorf("%s: AXIGEN2 route %+v", node, ax2)
		}
		if c.DefaultRoute != "axigen1.backend.cluster" || strings.Join(c.Domains, ",") != "example.com" {
			t.Errorf("%s: default route %q domains %v", node, c.DefaultRoute, c.Domains)
		}
		if !c.BackendTLS || c.BackendCA != "/etc/mailfleet/tls/ca.crt" || c.IMAP.TLS == nil || c.IMAP.TLS.Cert != "/etc/mailfleet/tls/mail.crt" {
			t.Errorf("%s: tls backend=%v ca=%q imap=%+v", node, c.BackendTLS, c.BackendCA, c.IMAP.TLS)
		}
		// No PROXY protocol in the reference: nothing to trust, and no
		// per-client cap (every connection comes from a balancer).
		if len(c.TrustedBalancers) != 0 || c.Limits.MaxPerClient != 0 || c.Limits.MaxConnections != 10000 {
			t.Errorf("%s: trusted balancers %v limits %+v", node, c.TrustedBalancers, c.Limits)
		}
	}
}

func TestFrontendProxyProtocol(t *testing.T) {
	tp := spectest.Reference()
	tp.Balancers[0].ProxyProtocol = true
	out := renderDaemons(t, tp)
	c := dmDecode[config.Frontend](t, fileAt(t, out, "proxy2", frontendConfigPath))
	if strings.Join(c.TrustedBalancers, " ") != "198.51.100.10/32 198.51.100.11/32" {
		t.Errorf("trusted balancers %v, want the two balancer nodes", c.TrustedBalancers)
	}
	if c.Limits.MaxPerClient == 0 {
		t.Errorf("with the PROXY protocol the front-end knows clients and caps them: %+v", c.Limits)
	}
	bc := dmDecode[config.Balancer](t, fileAt(t, out, "loadbalancer", balancerConfigPath))
	for _, s := range bc.Services {
		if !s.ProxyProtocol {
			t.Errorf("balancer service %s: proxy_protocol off", s.Name)
		}
	}
}

func TestStoreConfig(t *testing.T) {
	tp := spectest.Reference()
	out := renderDaemons(t, tp)
	where := map[string][]string{"AXIGEN1": {"axigenode1", "standby"}, "AXIGEN2": {"axigenode2", "standby"}}
	vip := map[string]string{"AXIGEN1": "10.0.0.201", "AXIGEN2": "10.0.0.202"}
	for inst, nodes := range where {
		var first []byte
		for _, node := range nodes {
			p := "/etc/mailfleet/store-" + inst + ".json"
			f := fileAt(t, out, node, p)
			c := dmDecode[config.Store](t, f)
			if !slices.Contains(out.Host(node).Roles, "backend") {
				t.Errorf("%s: roles %v", node, out.Host(node).Roles)
			}
			// Pacemaker owns the store: nothing may restart it.
			if len(f.Actions) > 0 {
				t.Errorf("%s %s: action %+v, want none", node, p, actionSummary(f))
			}
			if first == nil {
				first = f.Content
			} else if !bytes.Equal(first, f.Content) {
				t.Errorf("%s differs between the nodes that may run it", p)
			}
			wantL := map[string]string{"smtp": ":25", "pop3": ":110", "imap": ":143", "admin": ":7000"}
			if len(c.Listeners) != len(wantL) {
				t.Errorf("%s %s: listeners %v", node, inst, c.Listeners)
			}
			for kind, port := range wantL {
				if c.Listeners[kind] != vip[inst]+port {
					t.Errorf("%s %s: listener %s = %q, want %s", node, inst, kind, c.Listeners[kind], vip[inst]+port)
				}
			}
			lower := "/var/opt/" + inst
			if c.StoragePath != lower+"/domains" || c.QueuePath != lower+"/queue" || c.RunPath != lower+"/run" ||
				c.LogDir != "/var/log/mailfleet" || c.LogName != inst || c.Instance != inst ||
				c.Hostname != strings.ToLower(inst)+".backend.cluster" {
				t.Errorf("%s %s: paths/names %+v", node, inst, c)
			}
			if c.LDAP == nil || c.LDAP.URLs[0] != "ldap://10.0.0.210:389" || c.LDAP.BindPasswordFile != ldapServiceSecret || c.PasswdFile != "" {
				t.Errorf("%s %s: ldap %+v passwd %q", node, inst, c.LDAP, c.PasswdFile)
			}
			// The front-end nodes exactly, not their network.
			if strings.Join(c.TrustedNetworks, ",") != "198.51.100.101/32,198.51.100.102/32,198.51.100.103/32" || len(c.Resolver.Nameservers) != 1 ||
				c.Resolver.Nameservers[0] != (config.Nameserver{Address: "10.0.0.1", Priority: 5}) ||
				c.Resolver.Timeout.D().String() != "2s" || c.Resolver.Retries != 3 {
				t.Errorf("%s %s: trusted %v resolver %+v", node, inst, c.TrustedNetworks, c.Resolver)
			}
			if !c.TLS.Enabled() || c.Limits.MaxPerClient != 0 {
				t.Errorf("%s %s: tls %+v limits %+v", node, inst, c.TLS, c.Limits)
			}
			sec := fileAt(t, out, node, c.AdminSecretFile)
			if c.AdminSecretFile != "/etc/mailfleet/secrets/admin-"+inst || string(sec.Content) != "admin-secret-"+inst ||
				sec.Mode != 0o640 || sec.Owner != "root" || sec.Group != "mailfleet" || !sec.Sensitive || len(sec.Actions) > 0 {
				t.Errorf("%s: admin secret %s %o %s:%s sensitive=%v action=%v", node, c.AdminSecretFile, sec.Mode, sec.Owner, sec.Group, sec.Sensitive, actionSummary(sec))
			}
			if pw := fileAt(t, out, node, ldapServiceSecret); string(pw.Content) != "service-pw" || len(pw.Actions) > 0 {
				t.Errorf("%s: ldap secret %q action %v", node, pw.Content, actionSummary(pw))
			}
		}
	}
	if dmHasFile(out.Host("axigenode1"), "/etc/mailfleet/store-AXIGEN2.json") {
		t.Error("axigenode1 has AXIGEN2's config but is not one of its nodes")
	}
	for _, node := range []string{"ldapnode", "proxy1", "loadbalancer"} {
		for _, f := range out.Host(node).Files {
			if strings.Contains(f.Path, "store-") || strings.Contains(f.Path, "admin-") {
				t.Errorf("%s has %s", node, f.Path)
			}
		}
	}
}

func TestStoreAdminSecretDerived(t *testing.T) {
	tp := spectest.Reference()
	tp.Instances[0].AdminSecret = spec.Secret{Known: true, Source: "not given"}
	out := renderDaemons(t, tp)
	a := fileAt(t, out, "axigenode1", "/etc/mailfleet/secrets/admin-AXIGEN1").Content
	s := fileAt(t, out, "standby", "/etc/mailfleet/secrets/admin-AXIGEN1").Content
	want := NewKeys("site-secret-for-tests").Token("admin/AXIGEN1", 32)
	if string(a) != want || string(s) != want {
		t.Errorf("derived admin secret %q / %q, want Keys.Token(admin/AXIGEN1, 32)", a, s)
	}
	if other := fileAt(t, out, "standby", "/etc/mailfleet/secrets/admin-AXIGEN2").Content; string(other) != "admin-secret-AXIGEN2" {
		t.Errorf("AXIGEN2's given secret became %q", other)
	}
}

func TestStoreListenersLMTP(t *testing.T) {
	tp := spectest.Reference()
	tp.Instances[1].Listeners["lmtp"] = 24
	tp.Frontends[0].SMTP.LMTP = true
	out := renderDaemons(t, tp)
	c := dmDecode[config.Store](t, fileAt(t, out, "axigenode2", "/etc/mailfleet/store-AXIGEN2.json"))
	if c.Listeners["lmtp"] != "10.0.0.202:24" || c.Listeners["web"] != "" {
		t.Errorf("listeners %v", c.Listeners)
	}
	// The topology's "web" has no store listener; the contract refuses
	// kinds the store does not serve.
	c.Listeners["web"] = "10.0.0.202:9000"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `unknown listener kind "web"`) {
		t.Errorf("a web listener passed Validate: %v", err)
	}
	fc := dmDecode[config.Frontend](t, fileAt(t, out, "proxy1", frontendConfigPath))
	if !fc.SMTP.LMTP || fc.Instances["axigen2.backend.cluster"].LMTP != "10.0.0.202:24" {
		t.Errorf("frontend smtp %+v, AXIGEN2 route %+v", fc.SMTP, fc.Instances["axigen2.backend.cluster"])
	}
}

// TestDaemonSecrets: every secret value lands only in the files meant for
// it, and those are sensitive and closed to others.
func TestDaemonSecrets(t *testing.T) {
	tp := spectest.Reference()
	out := renderDaemons(t, tp)
	allowed := map[string]func(node, p string) bool{
		"admin-secret-AXIGEN1":  func(_, p string) bool { return p == "/etc/mailfleet/secrets/admin-AXIGEN1" },
		"admin-secret-AXIGEN2":  func(_, p string) bool { return p == "/etc/mailfleet/secrets/admin-AXIGEN2" },
		"service-pw":            func(_, p string) bool { return p == ldapServiceSecret },
		"vrrp-pw":               func(_, p string) bool { return p == keepalivedConfigPath },
		"admin-pw":              func(string, string) bool { return false },
		"fence-pw":              func(string, string) bool { return false },
		"site-secret-for-tests": func(string, string) bool { return false },
	}
	for _, h := range out.Hosts {
		frontend := slices.Contains(h.Roles, "frontend") || slices.Contains(h.Roles, "balancer")
		for _, f := range h.Files {
			secret := false
			for v, ok := range allowed {
				if !bytes.Contains(f.Content, []byte(v)) {
					continue
				}
				secret = true
				if !ok(h.Node, f.Path) {
					t.Errorf("%s %s holds %q", h.Node, f.Path, v)
				}
			}
			if frontend && bytes.Contains(f.Content, []byte("admin-secret-")) {
				t.Errorf("the admin secret reached %s %s", h.Node, f.Path)
			}
			if secret && (!f.Sensitive || f.Mode&0o037 != 0 || f.Owner != "root") {
				t.Errorf("%s %s holds a secret but is %o %s:%s sensitive=%v", h.Node, f.Path, f.Mode, f.Owner, f.Group, f.Sensitive)
			}
			if strings.HasPrefix(f.Path, daemonSecretDir+"/") && (f.Mode != 0o640 || f.Group != daemonGroup || !f.Sensitive) {
				t.Errorf("%s %s: %o %s:%s sensitive=%v, want 0640 root:mailfleet sensitive", h.Node, f.Path, f.Mode, f.Owner, f.Group, f.Sensitive)
			}
			if f.Sensitive && f.Mode&fs.FileMode(0o027) != 0 {
				t.Errorf("%s %s sensitive with mode %o", h.Node, f.Path, f.Mode)
			}
		}
	}
}

// TestDaemonsGolden compares every file of the daemons' renderers with its
// golden copy, except the secret files, whose content the tests above state.
func TestDaemonsGolden(t *testing.T) {
	out := renderDaemons(t, spectest.Reference())
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			if !strings.HasPrefix(f.Path, daemonSecretDir+"/") {
				checkGolden(t, h.Node+f.Path, f.Content)
			}
		}
	}
}

func TestDaemonsDeterministic(t *testing.T) {
	a := renderDaemons(t, spectest.Reference())
	b := renderDaemons(t, spectest.Reference())
	if len(a.Hosts) != len(b.Hosts) {
		t.Fatalf("%d hosts, then %d", len(a.Hosts), len(b.Hosts))
	}
	for i, ha := range a.Hosts {
		hb := b.Hosts[i]
		if ha.Node != hb.Node || len(ha.Files) != len(hb.Files) ||
			strings.Join(ha.Roles, ",") != strings.Join(hb.Roles, ",") || strings.Join(ha.Packages, ",") != strings.Join(hb.Packages, ",") {
			t.Fatalf("host %d: %s/%d files, then %s/%d", i, ha.Node, len(ha.Files), hb.Node, len(hb.Files))
		}
		for j, fa := range ha.Files {
			fb := hb.Files[j]
			if fa.Path != fb.Path || !bytes.Equal(fa.Content, fb.Content) || fa.Mode != fb.Mode {
				t.Errorf("%s %s differs between two renders", ha.Node, fa.Path)
			}
		}
	}
}

// A front-end and a store on one node share the LDAP password file; the
// front-end's restart wins over the store's nothing.
func TestDaemonsSharedNode(t *testing.T) {
	tp := spectest.Reference()
	fe := tp.Frontends[0]
	var standby *spec.Node
	for _, n := range tp.Nodes {
		if n.Name == "standby" {
			standby = n
		}
	}
	fe.Nodes = append(fe.Nodes, standby)
	out := renderDaemons(t, tp)
	pw := fileAt(t, out, "standby", ldapServiceSecret)
	if soleAction(pw) == nil || soleAction(pw).Name != "restart mailfleetd-frontend" {
		t.Errorf("shared ldap secret action %+v", actionSummary(pw))
	}
	c := dmDecode[config.Frontend](t, fileAt(t, out, "standby", frontendConfigPath))
	if _, err := netip.ParseAddrPort(c.IMAP.Listen); err != nil || !strings.HasPrefix(c.IMAP.Listen, "10.0.0.13:") {
		t.Errorf("standby front-end listens on %q", c.IMAP.Listen)
	}
}
