package decode

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/mailfleet/mailfleet/spec"
)

func (d *decoder) decodeBalancer(b *hcl.Block) {
	bd := d.body(b, balancerSchema)
	bl := &spec.Balancer{Name: b.Labels[0], Src: bd.src, ProxyProtocol: bd.boolean("proxy_protocol")}
	for _, it := range bd.refs("nodes", "node") {
		bl.Nodes = append(bl.Nodes, d.nodes[it.name])
	}
	if vb := bd.single("vrrp"); vb != nil {
		vbd := d.body(vb, vrrpSchema)
		bl.VRRP.Src = vbd.src
		bl.VRRP.RouterID, _ = vbd.integer("router_id", 1, 255)
		bl.VRRP.Interface = vbd.strDefault("interface", "")
		bl.VRRP.Password = vbd.secret("password")
		bl.VRRP.Advert = vbd.duration("advert_interval", 0)
	}
	for _, sb := range bd.blocksOf("service") {
		sbd := d.body(sb, serviceSchema)
		s := &spec.BalancedService{Name: sb.Labels[0], Src: sbd.src}
		s.Protocol = sbd.strDefault("protocol", "")
		s.VIP = sbd.addr("vip")
		s.Port, _ = sbd.integer("port", 1, 65535)
		s.Scheduler = spec.Scheduler(sbd.strDefault("scheduler", ""))
		backendPort := 0
		if sbd.has("backend_port") {
			backendPort, _ = sbd.integer("backend_port", 1, 65535)
		}
		for i, it := range sbd.refs("backends", "node") {
			rs := &spec.RealServer{Node: d.nodes[it.name], Port: backendPort, Weight: 1}
			rs.Range = it.rng
			rs.Attrs = map[string]spec.Range{"node": it.rng}
			s.Backends = append(s.Backends, rs)
			s.Attrs[fmt.Sprintf("backends[%d]", i)] = it.rng
		}
		for _, rb := range sbd.blocksOf("backend") {
			rbd := d.body(rb, realServerSchema)
			rs := &spec.RealServer{Port: backendPort, Weight: 1, Src: rbd.src}
			if name, _, ok := rbd.ref("node", "node"); ok {
				rs.Node = d.nodes[name]
			}
			if rbd.has("weight") {
				rs.Weight, _ = rbd.integer("weight", 1, 256)
			}
			if rbd.has("port") {
				rs.Port, _ = rbd.integer("port", 1, 65535)
			}
			s.Backends = append(s.Backends, rs)
		}
		if hb := sbd.single("health_check"); hb != nil {
			hbd := d.body(hb, healthSchema)
			s.Health.Src = hbd.src
			s.Health.Interval = hbd.duration("interval", 0)
			s.Health.Timeout = hbd.duration("timeout", 0)
			s.Health.Rise, _ = hbd.integer("rise", 1, 100)
			s.Health.Fall, _ = hbd.integer("fall", 1, 100)
		}
		bl.Services = append(bl.Services, s)
	}
	d.t.Balancers = append(d.t.Balancers, bl)
}

func (d *decoder) tls(b *hcl.Block) *spec.TLS {
	bd := d.body(b, tlsSchema)
	t := &spec.TLS{Src: bd.src}
	t.Cert, _ = bd.str("cert")
	t.Key, _ = bd.str("key")
	t.CA = bd.strDefault("ca", "")
	for _, what := range []string{"cert", "key", "ca"} {
		if p := bd.strDefault(what, ""); p != "" && !strings.HasPrefix(p, "/") {
			bd.errorf(what, "Relative path", "%s = %q must be an absolute path on the host.", what, p)
		}
	}
	return t
}

func (d *decoder) decodeDirectory(b *hcl.Block) {
	bd := d.body(b, directorySchema)
	if d.t.Directory != nil {
		bd.errorf("", "Duplicate directory", "A topology has one location directory; %q is a second.", b.Labels[0])
		return
	}
	dir := &spec.Directory{Name: b.Labels[0], Src: bd.src}
	dir.Hostname = bd.strDefault("hostname", "")
	dir.Base, _ = bd.str("base")
	dir.AdminDN, _ = bd.str("admin_dn")
	dir.AdminPassword = bd.strongSecret("admin_password", 16, "is the directory's root password")
	dir.ServiceDN, _ = bd.str("service_dn")
	dir.ServicePassword = bd.strongSecret("service_password", 16, "lets the front-ends and stores read every account")
	dir.VIP = bd.addr("vip")
	if bd.has("port") {
		dir.Port, _ = bd.integer("port", 1, 65535)
	}
	mode := bd.strDefault("tls_mode", "none")
	switch spec.LDAPTLS(mode) {
	case spec.LDAPTLSNone, spec.LDAPTLSStartTLS, spec.LDAPTLSLDAPS:
		dir.TLSMode = spec.LDAPTLS(mode)
	default:
		bd.errorf("tls_mode", "Invalid TLS mode", "tls_mode must be \"none\", \"starttls\" or \"ldaps\", not %q.", mode)
	}
	if tb := bd.single("tls"); tb != nil {
		dir.TLS = d.tls(tb)
	}
	if name, _, ok := bd.ref("data", "partition"); ok {
		dir.Data = d.partitions[name]
	}
	for _, it := range bd.refs("nodes", "node") {
		dir.Nodes = append(dir.Nodes, d.nodes[it.name])
	}
	dir.Schemas = bd.strList("schemas")
	d.t.Directory = dir
	if dir.VIP.IsValid() {
		d.ctx.Variables["directory"] = cty.ObjectVal(map[string]cty.Value{dir.Name: cty.ObjectVal(map[string]cty.Value{
			"vip": cty.StringVal(dir.VIP.String()), "base": cty.StringVal(dir.Base)})})
	}
}

func (d *decoder) decodeConnector(b *hcl.Block) {
	bd := d.body(b, connectorSchema)
	c := &spec.LDAPConnector{Name: b.Labels[0], Src: bd.src}
	c.URL = bd.strDefault("url", "")
	c.BindDN = bd.strDefault("bind_dn", "")
	c.BindPassword = bd.strongSecret("bind_password", 16, "lets the connector read every account")
	c.Base = bd.strDefault("base", "")
	c.Filter, _ = bd.str("filter")
	c.HostAttribute = bd.strDefault("host_attribute", "")
	c.RefuseDuplicates = bd.boolean("refuse_duplicates")
	d.connectors[c.Name] = c
	d.t.Connectors = append(d.t.Connectors, c)
}

var listenerKinds = map[string]bool{"smtp": true, "lmtp": true, "pop3": true, "imap": true, "admin": true, "web": true}

func (d *decoder) decodeInstance(b *hcl.Block) {
	bd := d.body(b, instanceSchema)
	in := &spec.Instance{Name: b.Labels[0], Src: bd.src}
	in.Hostname = bd.strDefault("hostname", "")
	in.VIP = bd.addr("vip")
	for attr, dst := range map[string]**spec.Partition{"storage": &in.Storage, "queue": &in.Queue, "run": &in.Run} {
		if name, _, ok := bd.ref(attr, "partition"); ok {
			*dst = d.partitions[name]
		}
	}
	items := bd.refs("nodes", "node")
	for _, it := range items {
		in.Nodes = append(in.Nodes, d.nodes[it.name])
	}
	if a, ok := bd.content.Attributes["nodes"]; ok && len(items) == 0 && emptyList(a.Expr) {
		bd.errorf("nodes", "No nodes", "mail_instance %q lists no node to run on.", in.Name)
	}
	if m, ok := bd.intMap("listeners"); ok {
		in.Listeners = map[string]int{}
		for k, v := range m {
			if !listenerKinds[k] {
				bd.errorf("listeners", "Unknown listener", "listener %q is not one of smtp, lmtp, pop3, imap, admin, web.", k)
				continue
			}
			if v < 1 || v > 65535 {
				bd.errorf("listeners", "Invalid port", "listener %s port %d is not between 1 and 65535.", k, v)
				continue
			}
			in.Listeners[k] = v
		}
	}
	in.AdminSecret = bd.strongSecret("admin_secret", 16, "opens the instance's admin API (the store refuses a shorter one)")
	if name, _, ok := bd.ref("connector", "ldap_connector"); ok {
		in.Connector = d.connectors[name]
	}
	if rb := bd.single("resolver"); rb != nil {
		in.Resolver = d.resolver(rb)
	}
	in.LogName = bd.strDefault("log_name", "")
	if tb := bd.single("tls"); tb != nil {
		in.TLS = d.tls(tb)
	}
	d.instances[in.Name] = in
	d.t.Instances = append(d.t.Instances, in)
}

func (d *decoder) decodeFrontend(b *hcl.Block) {
	bd := d.body(b, frontendSchema)
	f := &spec.Frontend{Name: b.Labels[0], Src: bd.src}
	for _, it := range bd.refs("nodes", "node") {
		f.Nodes = append(f.Nodes, d.nodes[it.name])
	}
	f.Sessions, _ = bd.integer("sessions", 0, 1<<30)
	f.Domains = bd.strList("domains")
	f.TrustedNetworks = d.networkList(bd, "trusted_networks")
	if name, _, ok := bd.ref("connector", "ldap_connector"); ok {
		f.Connector = d.connectors[name]
	}
	if name, _, ok := bd.ref("default_route", "mail_instance"); ok {
		f.DefaultRoute = d.instances[name]
	}
	f.BackendTLS = bd.boolean("backend_tls")
	for _, kind := range []string{"imap", "pop3"} {
		pb := bd.single(kind)
		if pb == nil {
			continue
		}
		pbd := d.body(pb, proxySchema)
		p := &spec.ProxyService{Src: pbd.src, AuthenticateOnProxy: true}
		p.Port, _ = pbd.integer("port", 1, 65535)
		if pbd.has("authenticate_on_proxy") {
			p.AuthenticateOnProxy = pbd.boolean("authenticate_on_proxy")
		}
		if tb := pbd.single("tls"); tb != nil {
			p.TLS = d.tls(tb)
		}
		if kind == "imap" {
			f.IMAP = p
		} else {
			f.POP3 = p
		}
	}
	if sb := bd.single("smtp"); sb != nil {
		sbd := d.body(sb, smtpSchema)
		s := &spec.SMTPRouting{Src: sbd.src, Routing: true}
		s.Port, _ = sbd.integer("port", 1, 65535)
		if sbd.has("routing") {
			s.Routing = sbd.boolean("routing")
		}
		s.LMTP = sbd.boolean("lmtp")
		if tb := sbd.single("tls"); tb != nil {
			s.TLS = d.tls(tb)
		}
		f.SMTP = s
	}
	if rb := bd.single("resolver"); rb != nil {
		f.Resolver = d.resolver(rb)
	}
	d.t.Frontends = append(d.t.Frontends, f)
}

// networkList reads a list whose elements are network references (meaning
// their CIDR) or CIDR strings.
func (d *decoder) networkList(bd *body, name string) []netip.Prefix {
	a, ok := bd.content.Attributes[name]
	if !ok {
		return nil
	}
	exprs, hd := hcl.ExprList(a.Expr)
	if hd.HasErrors() {
		bd.errorf(name, "Invalid list", "%s must be a list of network references or CIDR strings.", name)
		return nil
	}
	var out []netip.Prefix
	for i, e := range exprs {
		key := fmt.Sprintf("%s[%d]", name, i)
		bd.src.Attrs[key] = convertRange(e.Range())
		if tr, hd := hcl.AbsTraversalForExpr(e); !hd.HasErrors() && tr.RootName() == "network" {
			if n, _, ok := d.traversalName(e, "network", key, bd.kind); ok && d.networks[n].CIDR.IsValid() {
				out = append(out, d.networks[n].CIDR)
			}
			continue
		}
		v, hd := e.Value(d.ctx)
		d.addDiags(hd)
		if hd.HasErrors() {
			continue
		}
		v, _ = v.UnmarkDeep()
		if v.Type() != cty.String || !v.IsKnown() || v.IsNull() {
			bd.errorf(key, "Invalid CIDR", "%s must be a network reference or a CIDR string.", key)
			continue
		}
		p, err := netip.ParsePrefix(v.AsString())
		if err != nil {
			bd.errorf(key, "Invalid CIDR", "%q is not a CIDR prefix.", v.AsString())
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

func (d *decoder) decodeProvisioning() {
	bs := d.blocks["provisioning"]
	if len(bs) == 0 {
		return
	}
	if len(bs) > 1 {
		r := convertRange(bs[1].DefRange)
		d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Duplicate provisioning block", Detail: "A topology has at most one provisioning block.", Subject: &r})
	}
	bd := d.body(bs[0], provisioningSchema)
	p := &spec.Provisioning{Src: bd.src}
	p.Policy = spec.Policy(bd.strDefault("policy", string(spec.PolicyLeastUsed)))
	if m, ok := bd.intMap("weights"); ok {
		p.Weights = m
	}
	if a, ok := bd.content.Attributes["domains"]; ok {
		pairs, hd := hcl.ExprMap(a.Expr)
		if hd.HasErrors() {
			bd.errorf("domains", "Invalid domain table", "domains must be a map from domain to instance: { \"example.com\" = mail_instance.AXIGEN1 }.")
		}
		p.Domains = map[string]*spec.Instance{}
		for _, kv := range pairs {
			kval, hd := kv.Key.Value(d.ctx)
			kval, _ = kval.UnmarkDeep()
			if hd.HasErrors() || kval.Type() != cty.String || !kval.IsKnown() || kval.IsNull() {
				bd.errorf("domains", "Invalid domain", "every key of domains must be a domain name string.")
				continue
			}
			dom := strings.ToLower(kval.AsString())
			key := "domains." + dom
			if name, r, ok := d.traversalName(kv.Value, "mail_instance", key, "provisioning"); ok {
				p.Domains[dom] = d.instances[name]
				bd.src.Attrs[key] = r
			}
		}
	}
	if bd.has("default_quota") {
		q, ok := bd.str("default_quota")
		if ok {
			n, err := spec.ParseSize(q)
			if err != nil {
				bd.errorf("default_quota", "Invalid size", "%v.", err)
			}
			p.DefaultQuota = n
		}
	}
	if bd.has("account_limit") {
		p.AccountLimit, _ = bd.integer("account_limit", 0, 1<<31-1)
	}
	d.t.Provisioning = p
}

func (d *decoder) decodeVagrant() {
	bs := d.blocks["vagrant"]
	if len(bs) == 0 {
		return
	}
	bd := d.body(bs[0], vagrantSchema)
	d.t.Vagrant.Box = bd.strDefault("box", "")
	if bd.has("memory") {
		d.t.Vagrant.Memory, _ = bd.integer("memory", 256, 1<<20)
	}
}

var tlsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "cert", Required: true}, {Name: "key", Required: true}, {Name: "ca"}}}

var balancerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "nodes", Required: true}, {Name: "proxy_protocol"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "service", LabelNames: []string{"name"}}, {Type: "vrrp"}},
}

var vrrpSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "router_id"}, {Name: "interface"}, {Name: "password"}, {Name: "advert_interval"}}}

var serviceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "protocol"}, {Name: "vip", Required: true}, {Name: "port", Required: true},
		{Name: "scheduler"}, {Name: "backends"}, {Name: "backend_port"}},
	Blocks: []hcl.BlockHeaderSchema{{Type: "backend"}, {Type: "health_check"}},
}

var realServerSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "node", Required: true}, {Name: "weight"}, {Name: "port"}}}

var healthSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "interval"}, {Name: "timeout"}, {Name: "rise"}, {Name: "fall"}}}

var directorySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "hostname"}, {Name: "base", Required: true}, {Name: "admin_dn", Required: true},
		{Name: "admin_password", Required: true}, {Name: "service_dn", Required: true}, {Name: "service_password", Required: true},
		{Name: "vip", Required: true}, {Name: "port"}, {Name: "tls_mode"}, {Name: "data", Required: true},
		{Name: "nodes", Required: true}, {Name: "schemas"}},
	Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}},
}

var connectorSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "url"}, {Name: "bind_dn"}, {Name: "bind_password"}, {Name: "base"}, {Name: "filter", Required: true},
	{Name: "host_attribute"}, {Name: "refuse_duplicates"},
}}

var instanceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "vip", Required: true}, {Name: "hostname"}, {Name: "storage", Required: true},
		{Name: "queue", Required: true}, {Name: "run", Required: true}, {Name: "nodes", Required: true},
		{Name: "listeners", Required: true}, {Name: "admin_secret"}, {Name: "connector"}, {Name: "log_name"}},
	Blocks: []hcl.BlockHeaderSchema{{Type: "resolver"}, {Type: "tls"}},
}

var frontendSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "nodes", Required: true}, {Name: "sessions"}, {Name: "domains", Required: true},
		{Name: "trusted_networks"}, {Name: "connector", Required: true}, {Name: "default_route"}, {Name: "backend_tls"}},
	Blocks: []hcl.BlockHeaderSchema{{Type: "imap"}, {Type: "pop3"}, {Type: "smtp"}, {Type: "resolver"}},
}

var proxySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "port", Required: true}, {Name: "authenticate_on_proxy"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "tls"}},
}

var smtpSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "port", Required: true}, {Name: "routing"}, {Name: "lmtp"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "tls"}},
}

var provisioningSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "policy"}, {Name: "weights"}, {Name: "domains"}, {Name: "default_quota"}, {Name: "account_limit"},
}}

var vagrantSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "box"}, {Name: "memory"}}}

// emptyList reports whether e is a literal empty list.
func emptyList(e hcl.Expression) bool {
	exprs, hd := hcl.ExprList(e)
	return !hd.HasErrors() && len(exprs) == 0
}
