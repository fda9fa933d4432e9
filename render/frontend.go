package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/spec"
)

// Where the daemons' configs and secrets live on every host.
const (
	frontendConfigPath = "/etc/mailfleet/frontend.json"
	daemonSecretDir    = "/etc/mailfleet/secrets"
	// daemonGroup may read the secret files (0640 root:mailfleet); the
	// daemons run as the mailfleet user.
	daemonGroup = "mailfleet"
	// daemonUser is the system user the daemons run as (systemd's User=
	// for the balancer and front-end, the store agent's user parameter).
	daemonUser = "mailfleet"
	// ldapServiceSecret holds the directory service DN's password, which is
	// what the connectors bind with unless the topology names another DN.
	ldapServiceSecret = daemonSecretDir + "/ldap-service"
)

var restartFrontend = Action{Name: "restart mailfleetd-frontend",
	Command: "systemctl enable --quiet mailfleetd-frontend && systemctl restart mailfleetd-frontend", Order: OrderDaemon}

// renderFrontend writes the config of the IMAP and POP3 proxies and the SMTP
// router of every front-end node, and the LDAP bind password they read.
//
// Every front-end config holds the whole instance table (no DNS at run
// time), so the files grow with nodes × instances. The table is built,
// validated and encoded once, and each node's document is its own small
// part with the encoded table copied in: the bytes are those of encoding the
// node's whole config (cfgJSON), without redoing the table for every node.
func renderFrontend(b *builder) error {
	if len(b.t.Frontends) == 0 {
		return nil
	}
	table, err := newFrontendTable(b.t)
	if err != nil {
		return err
	}
	var enc frontendEncoder
	for _, fe := range b.t.Frontends {
		group, err := frontendGroupConfig(b.t, fe, table.routes)
		if err != nil {
			return fmt.Errorf("frontend %s: %w", fe.Name, err)
		}
		for _, n := range fe.Nodes {
			cfg := frontendNodeConfig(group, fe, n)
			// Validate as cfgJSON does: ValidateNode and the table's own
			// check (made once) fail exactly when cfg.Validate would.
			if err := errors.Join(cfg.ValidateNode(), table.err); err != nil {
				return fmt.Errorf("frontend %s on %s: %w", fe.Name, n.Name, err)
			}
			content, err := enc.document(cfg, table.json)
			if err != nil {
				return fmt.Errorf("frontend %s on %s: %w", fe.Name, n.Name, err)
			}
			cfgAct, secretAct, binAct := restartFrontend, restartFrontend, restartFrontend
			if err := b.add(n.Name, &File{Path: frontendConfigPath, Mode: 0o644, Owner: "root", Group: "root",
				Content: content, Actions: []*Action{&cfgAct}}); err != nil {
				return err
			}
			if err := addLDAPSecret(b, n.Name, fe.Connector, &secretAct); err != nil {
				return fmt.Errorf("frontend %s: %w", fe.Name, err)
			}
			if err := b.addBinary(n.Name, daemonBinary, daemonBinaryName, 0o755, &binAct); err != nil {
				return err
			}
			b.host(n.Name).addRole("frontend")
		}
	}
	return nil
}

// frontendConfig is the whole config of front-end node n of fe.
func frontendConfig(t *spec.Topology, fe *spec.Frontend, n *spec.Node) (*config.Frontend, error) {
	group, err := frontendGroupConfig(t, fe, frontendRoutes(t))
	if err != nil {
		return nil, err
	}
	return frontendNodeConfig(group, fe, n), nil
}

// frontendRoutes is the instance table of every front-end config: each
// instance's FQDN (the mailHost value) to its listeners.
func frontendRoutes(t *spec.Topology) map[string]config.InstanceRoute {
	routes := make(map[string]config.InstanceRoute, len(t.Instances))
	for _, inst := range t.Instances {
		at := func(kind string) string {
			if p, ok := inst.Listeners[kind]; ok {
				return netip.AddrPortFrom(inst.VIP, uint16(p)).String()
			}
			return ""
		}
		routes[inst.FQDN()] = config.InstanceRoute{Name: inst.Name,
			SMTP: at("smtp"), LMTP: at("lmtp"), IMAP: at("imap"), POP3: at("pop3")}
	}
	return routes
}

// frontendTable is the instance table of a render, shared by every
// front-end node: the routes, their validation and their JSON.
type frontendTable struct {
	routes map[string]config.InstanceRoute
	// json is routes as the value of the top-level "instances" key of an
	// indented config (its lines indented one level deeper than the key).
	json []byte
	// err is config.ValidateInstances(routes), reported with the first
	// node's config.
	err error
}

func newFrontendTable(t *spec.Topology) (*frontendTable, error) {
	ft := &frontendTable{routes: frontendRoutes(t)}
	ft.err = config.ValidateInstances(ft.routes)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent(cfgJSONIndent, cfgJSONIndent)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ft.routes); err != nil {
		return nil, err
	}
	ft.json = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return ft, nil
}

// frontendGroupConfig is what every node of fe has in its config: all but
// the node's name and listen addresses.
func frontendGroupConfig(t *spec.Topology, fe *spec.Frontend, routes map[string]config.InstanceRoute) (*config.Frontend, error) {
	cfg := &config.Frontend{
		FormatVersion: config.FormatVersion,
		Instances:     routes,
		Domains:       append([]string{}, fe.Domains...),
		BackendTLS:    fe.BackendTLS,
		Limits:        config.DefaultLimits(),
	}
	cfg.Limits.MaxConnections = frontendSessions(fe)
	ldap, err := cfgLDAP(t, fe.Connector)
	if err != nil {
		return nil, err
	}
	cfg.LDAP = *ldap
	if fe.DefaultRoute != nil {
		cfg.DefaultRoute = fe.DefaultRoute.FQDN()
	}
	// The front-end verifies the stores with the CA its own TLS settings
	// name for client hops.
	if fe.BackendTLS {
		for _, tls := range []*spec.TLS{proxyTLS(fe.IMAP), proxyTLS(fe.POP3), smtpTLS(fe.SMTP)} {
			if tls != nil && tls.CA != "" {
				cfg.BackendCA = tls.CA
				break
			}
		}
	}
	cfg.TrustedBalancers = trustedBalancers(t, fe)
	// Without the PROXY protocol every connection seems to come from a
	// balancer, and a per-client cap would cap the whole balancer; the
	// balancer enforces it then, knowing the client's address.
	if len(cfg.TrustedBalancers) > 0 {
		cfg.Limits.MaxPerClient = config.DefaultMaxPerClient
	}
	return cfg, nil
}

// frontendNodeConfig is group (frontendGroupConfig) for node n of fe. The
// two share their slices and the instance table, which nothing changes.
func frontendNodeConfig(group *config.Frontend, fe *spec.Frontend, n *spec.Node) *config.Frontend {
	listen := func(port int) string { return netip.AddrPortFrom(n.Address, uint16(port)).String() }
	cfg := *group
	cfg.Node = n.Name
	cfg.Admin = listen(config.FrontendAdminPort)
	if fe.IMAP != nil {
		cfg.IMAP = &config.Proxy{Listen: listen(fe.IMAP.Port), AuthenticateOnProxy: fe.IMAP.AuthenticateOnProxy, TLS: cfgTLS(fe.IMAP.TLS)}
	}
	if fe.POP3 != nil {
		cfg.POP3 = &config.Proxy{Listen: listen(fe.POP3.Port), AuthenticateOnProxy: fe.POP3.AuthenticateOnProxy, TLS: cfgTLS(fe.POP3.TLS)}
	}
	if fe.SMTP != nil {
		cfg.SMTP = &config.Router{Listen: listen(fe.SMTP.Port), Routing: fe.SMTP.Routing, LMTP: fe.SMTP.LMTP, TLS: cfgTLS(fe.SMTP.TLS)}
	}
	return &cfg
}

// frontendEncoder encodes front-end configs, reusing its buffer.
type frontendEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// frontendTableKey is the top-level instances key with an empty table, as
// the indented encoding writes it: a raw newline never occurs inside a JSON
// string, and a nested key is indented deeper, so it is found only there.
var frontendTableKey = []byte("\n" + cfgJSONIndent + `"instances": {}`)

// document is cfg encoded as cfgJSON encodes it, but with table (the
// encoded cfg.Instances, from frontendTable) copied in rather than encoded
// again. cfg must have been validated.
func (e *frontendEncoder) document(cfg *config.Frontend, table []byte) ([]byte, error) {
	if e.enc == nil {
		e.enc = json.NewEncoder(&e.buf)
		e.enc.SetIndent("", cfgJSONIndent)
		e.enc.SetEscapeHTML(false)
	}
	node := *cfg
	node.Instances = map[string]config.InstanceRoute{}
	e.buf.Reset()
	if err := e.enc.Encode(&node); err != nil {
		return nil, err
	}
	doc := e.buf.Bytes()
	i := bytes.Index(doc, frontendTableKey)
	if i < 0 || bytes.Contains(doc[i+len(frontendTableKey):], frontendTableKey) {
		return nil, fmt.Errorf("frontend config: no single instances key to fill in")
	}
	head, tail := doc[:i+len(frontendTableKey)-len("{}")], doc[i+len(frontendTableKey):]
	out := make([]byte, 0, len(head)+len(table)+len(tail))
	out = append(out, head...)
	out = append(out, table...)
	return append(out, tail...), nil
}

func proxyTLS(p *spec.ProxyService) *spec.TLS {
	if p == nil {
		return nil
	}
	return p.TLS
}

func smtpTLS(s *spec.SMTPRouting) *spec.TLS {
	if s == nil {
		return nil
	}
	return s.TLS
}

// frontendSessions is how many concurrent sessions one node of fe carries.
func frontendSessions(fe *spec.Frontend) int {
	if fe.Sessions > 0 {
		return fe.Sessions
	}
	return config.DefaultSessions
}

// trustedBalancers lists the nodes of every balancer that sends the PROXY
// protocol to one of fe's nodes, as host prefixes.
func trustedBalancers(t *spec.Topology, fe *spec.Frontend) []string {
	mine := map[*spec.Node]bool{}
	for _, n := range fe.Nodes {
		mine[n] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, bl := range t.Balancers {
		if !bl.ProxyProtocol || !balancerReaches(bl, mine) {
			continue
		}
		for _, n := range bl.Nodes {
			p := netip.PrefixFrom(n.Address, n.Address.BitLen()).String()
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func balancerReaches(bl *spec.Balancer, nodes map[*spec.Node]bool) bool {
	for _, s := range bl.Services {
		for _, rs := range s.Backends {
			if nodes[rs.Node] {
				return true
			}
		}
	}
	return false
}

// cfgLDAP is the daemon's view of a connector: the password stays in a file
// of its own, named by cfgLDAPSecretPath.
func cfgLDAP(t *spec.Topology, c *spec.LDAPConnector) (*config.LDAP, error) {
	if c == nil {
		return nil, fmt.Errorf("no ldap connector")
	}
	url := c.URL
	if url == "" && t.Directory != nil {
		url = t.Directory.URL()
	}
	l := &config.LDAP{
		URLs:             []string{url},
		BindDN:           c.BindDN,
		BindPasswordFile: cfgLDAPSecretPath(t, c),
		Base:             c.Base,
		Filter:           c.Filter,
		HostAttribute:    c.HostAttribute,
		RefuseDuplicates: c.RefuseDuplicates,
		Timeout:          config.Duration(config.DefaultLDAPTimeout),
	}
	if d := t.Directory; d != nil {
		l.StartTLS = d.TLSMode == spec.LDAPTLSStartTLS && strings.HasPrefix(url, "ldap://")
		if d.TLSMode != spec.LDAPTLSNone && d.TLS != nil {
			l.CA = d.TLS.CA
		}
	}
	return l, nil
}

// cfgLDAPSecretPath names the file with c's bind password: ldap-service for
// the directory's service DN (every connector of the reference), a file per
// connector for any other DN.
func cfgLDAPSecretPath(t *spec.Topology, c *spec.LDAPConnector) string {
	if t.Directory != nil && c.BindDN == t.Directory.ServiceDN {
		return ldapServiceSecret
	}
	return daemonSecretDir + "/ldap-" + c.Name
}

// addLDAPSecret puts c's bind password on node. Several daemons of a node may
// use the same connector (a standby runs the store of every instance), so an
// identical file already there is fine.
func addLDAPSecret(b *builder, node string, c *spec.LDAPConnector, act *Action) error {
	if c == nil {
		return fmt.Errorf("no ldap connector")
	}
	pw := daemonSecretValue(c.BindPassword, "")
	return addDaemonFileOnce(b, node, &File{Path: cfgLDAPSecretPath(b.t, c), Mode: 0o640, Owner: "root", Group: daemonGroup,
		Content: []byte(pw), Sensitive: true, Actions: mustActions(act)})
}

// daemonSecretValue is s's value, or derived when the topology leaves it empty or
// it could not be read (derived may be "" when nothing can stand in: the
// file then says which secret is missing, for renders with
// AllowUnknownSecrets).
func daemonSecretValue(s spec.Secret, derived string) string {
	switch {
	case s.Known && s.Value != "":
		return s.Value
	case derived != "":
		return derived
	default:
		return "(secret not available: " + s.Source + ")"
	}
}

// addDaemonFileOnce adds f unless the same file is already on node; the
// file then triggers the actions of both (two different actions of one name
// are a fault).
func addDaemonFileOnce(b *builder, node string, f *File) error {
	if g := b.file(node, f.Path); g != nil {
		if !bytes.Equal(g.Content, f.Content) || g.Mode != f.Mode || g.Owner != f.Owner || g.Group != f.Group || g.Sensitive != f.Sensitive {
			return fmt.Errorf("two different files at %s on %s", f.Path, node)
		}
		merged, err := actionList(append(slices.Clone(g.Actions), f.Actions...)...)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", f.Path, node, err)
		}
		g.Actions = merged
		return nil
	}
	return b.add(node, f)
}

func cfgTLS(t *spec.TLS) *config.TLS {
	if t == nil || t.Cert == "" {
		return nil
	}
	return &config.TLS{Cert: t.Cert, Key: t.Key, CA: t.CA}
}

func cfgResolver(r spec.Resolver) config.Resolver {
	out := config.Resolver{Nameservers: []config.Nameserver{}, Timeout: config.Duration(r.Timeout), Retries: r.Retries}
	for _, ns := range r.Nameservers {
		out.Nameservers = append(out.Nameservers, config.Nameserver{Address: ns.Address.String(), Priority: ns.Priority})
	}
	return out
}

// cfgJSONIndent indents the daemons' configs one step per level.
const cfgJSONIndent = "  "

// cfgJSON validates a daemon config the way the daemon will and encodes it:
// a config the daemon would refuse is a fault of render, not of the user.
func cfgJSON(v interface{ Validate() error }) ([]byte, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", cfgJSONIndent)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
