package decode

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/mailfleet/mailfleet/spec"
)

// decodeVariables gives each variable its value: MAILFLEET_VAR_<name> from
// the environment (marked external, so it may hold a secret), else its
// default.
func (d *decoder) decodeVariables() {
	vars := map[string]cty.Value{}
	for _, b := range d.blocks["variable"] {
		name := b.Labels[0]
		if !d.define("variable", name, b.LabelRanges[0]) {
			continue
		}
		bd := d.body(b, variableSchema)
		if s, ok := d.opts.Env("MAILFLEET_VAR_" + name); ok {
			d.un.saw(s)
			vars[name] = cty.StringVal(s).Mark(markExternal)
			continue
		}
		if v, ok := bd.value("default"); ok {
			vars[name] = v
			continue
		}
		if bd.boolean("sensitive") && !d.opts.RequireSecrets {
			bd.warnf("", "Value not available", "variable %q has no default and MAILFLEET_VAR_%s is not set; it is treated as unknown, which is enough to validate.", name, name)
			vars[name] = cty.UnknownVal(cty.String).Mark(markExternal)
			continue
		}
		bd.errorf("", "Missing variable value", "variable %q has no default; set MAILFLEET_VAR_%s.", name, name)
	}
	d.ctx.Variables["var"] = cty.ObjectVal(vars)
}

// decodeLocals evaluates locals in as many passes as their references need.
func (d *decoder) decodeLocals() {
	pending := map[string]*hcl.Attribute{}
	for _, b := range d.blocks["locals"] {
		attrs, hd := b.Body.JustAttributes()
		d.addDiags(hd)
		for name, a := range attrs {
			if !d.define("local", name, a.NameRange) {
				continue
			}
			pending[name] = a
		}
	}
	locals := map[string]cty.Value{}
	for len(pending) > 0 {
		progress := false
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			a := pending[name]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() == "local" && len(tr) > 1 {
					if step, ok := tr[1].(hcl.TraverseAttr); ok {
						if _, done := locals[step.Name]; !done {
							ready = false
						}
					}
				}
			}
			if !ready {
				continue
			}
			d.ctx.Variables["local"] = cty.ObjectVal(locals)
			v, hd := a.Expr.Value(d.ctx)
			d.addDiags(hd)
			d.un.take()
			if hd.HasErrors() {
				v = cty.DynamicVal
			}
			locals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			for _, name := range names {
				r := convertRange(pending[name].NameRange)
				if missing := undeclaredLocal(pending[name], pending, locals); missing != "" {
					d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Reference to undeclared local",
						Detail: fmt.Sprintf("local.%s refers to local.%s, which is not declared.", name, missing), Subject: &r})
					continue
				}
				d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Cycle in locals",
					Detail: fmt.Sprintf("local.%s depends on itself, directly or through other locals.", name), Subject: &r})
			}
			break
		}
	}
	d.ctx.Variables["local"] = cty.ObjectVal(locals)
}

// undeclaredLocal returns a local that a refers to and nobody declares.
func undeclaredLocal(a *hcl.Attribute, pending map[string]*hcl.Attribute, done map[string]cty.Value) string {
	for _, tr := range a.Expr.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		if step, ok := tr[1].(hcl.TraverseAttr); ok {
			_, p := pending[step.Name]
			_, d := done[step.Name]
			if !p && !d {
				return step.Name
			}
		}
	}
	return ""
}

func (d *decoder) decodeSite() {
	bs := d.blocks["site"]
	if len(bs) == 0 {
		d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Missing site block",
			Detail: `A topology needs one site block: site "NAME" { secret = file("site.key") }.`})
		return
	}
	if len(bs) > 1 {
		r := convertRange(bs[1].DefRange)
		d.diags = append(d.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Duplicate site block",
			Detail: "A topology has exactly one site block.", Subject: &r})
	}
	b := bs[0]
	bd := d.body(b, siteSchema)
	d.t.Site = spec.Site{Name: b.Labels[0], Src: bd.src}
	d.t.Site.Secret = bd.strongSecret("secret", 24, "derives every key and password of the site")
	d.t.Site.Cluster = bd.strDefault("cluster_name", b.Labels[0])
}

func (d *decoder) decodeNetwork(b *hcl.Block) {
	bd := d.body(b, networkSchema)
	n := &spec.Network{Name: b.Labels[0], Src: bd.src}
	n.CIDR = bd.prefix("cidr")
	if bd.has("gateway") {
		n.Gateway = bd.addr("gateway")
	}
	n.Zone, _ = bd.str("zone")
	n.Public = bd.boolean("public")
	if rb := bd.single("resolver"); rb != nil {
		n.Resolver = d.resolver(rb)
	}
	for _, rb := range bd.blocksOf("record") {
		rbd := d.body(rb, recordSchema)
		n.Records = append(n.Records, &spec.Record{Name: rb.Labels[0], Address: rbd.addr("address"), Src: rbd.src})
	}
	d.networks[n.Name] = n
	d.t.Networks = append(d.t.Networks, n)
	attrs := map[string]cty.Value{"name": cty.StringVal(n.Name), "zone": cty.StringVal(n.Zone)}
	if n.CIDR.IsValid() {
		attrs["cidr"] = cty.StringVal(n.CIDR.String())
	}
	if n.Gateway.IsValid() {
		attrs["gateway"] = cty.StringVal(n.Gateway.String())
	}
	objs := map[string]cty.Value{}
	if v, ok := d.ctx.Variables["network"]; ok {
		objs = v.AsValueMap()
	}
	objs[n.Name] = cty.ObjectVal(attrs)
	d.setObjects("network", objs)
}

// resolver reads a resolver block (of a network, a front-end or an
// instance): nameserver blocks with priority, search, timeout, retries.
func (d *decoder) resolver(b *hcl.Block) spec.Resolver {
	bd := d.body(b, resolverSchema)
	r := spec.Resolver{Src: bd.src}
	r.Search = bd.strList("search")
	r.Timeout = bd.duration("timeout", 0)
	if bd.has("retries") {
		r.Retries, _ = bd.integer("retries", 0, 10)
	}
	for _, nb := range bd.blocksOf("nameserver") {
		nbd := d.body(nb, nameserverSchema)
		ns := spec.Nameserver{Address: nbd.addr("address"), Priority: 10, Src: nbd.src}
		if nbd.has("priority") {
			ns.Priority, _ = nbd.integer("priority", 0, 100)
		}
		r.Nameservers = append(r.Nameservers, ns)
	}
	sort.SliceStable(r.Nameservers, func(i, j int) bool { return r.Nameservers[i].Priority < r.Nameservers[j].Priority })
	return r
}

func (d *decoder) decodeRouter(b *hcl.Block) {
	bd := d.body(b, routerSchema)
	r := &spec.Router{Name: b.Labels[0], DNS: bd.boolean("dns"), Src: bd.src}
	for _, ib := range bd.blocksOf("interface") {
		ibd := d.body(ib, interfaceSchema)
		iface := spec.RouterInterface{Address: ibd.addr("address"), Src: ibd.src}
		if name, _, ok := ibd.ref("network", "network"); ok {
			iface.Network = d.networks[name]
		}
		r.Interfaces = append(r.Interfaces, iface)
	}
	if sb := bd.single("ssh"); sb != nil {
		r.SSH = d.ssh(sb)
	}
	d.t.Routers = append(d.t.Routers, r)
}

func (d *decoder) decodeKernel(b *hcl.Block) {
	bd := d.body(b, kernelSchema)
	k := &spec.Kernel{Name: b.Labels[0], Src: bd.src}
	k.IPForward = bd.boolean("ip_forward")
	k.FileMax, _ = bd.integer("file_max", 0, 1<<31-1)
	k.TCPKeepaliveTime, _ = bd.integer("tcp_keepalive_time", 0, 1<<20)
	k.TCPMaxSynBacklog, _ = bd.integer("tcp_max_syn_backlog", 0, 1<<24)
	k.Somaxconn, _ = bd.integer("somaxconn", 0, 1<<24)
	if v, ok := bd.typed("ip_local_port_range", cty.List(cty.Number), "a list of two port numbers"); ok {
		vals := v.AsValueSlice()
		if len(vals) != 2 {
			bd.errorf("ip_local_port_range", "Invalid port range", "ip_local_port_range must have two numbers: [low, high].")
		} else {
			lo, _ := vals[0].AsBigFloat().Int64()
			hi, _ := vals[1].AsBigFloat().Int64()
			if lo < 1 || hi > 65535 || lo >= hi {
				bd.errorf("ip_local_port_range", "Invalid port range", "ip_local_port_range [%d, %d] must satisfy 1 <= low < high <= 65535.", lo, hi)
			} else {
				k.LocalPortRange = [2]int{int(lo), int(hi)}
			}
		}
	}
	if v, ok := bd.typed("sysctl", cty.Map(cty.String), "a map of strings"); ok {
		k.Sysctl = map[string]string{}
		for key, val := range v.AsValueMap() {
			k.Sysctl[key] = val.AsString()
		}
	}
	d.kernels[k.Name] = k
	d.t.Kernels = append(d.t.Kernels, k)
}

var variableSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "default"}, {Name: "description"}, {Name: "sensitive"}, {Name: "type"},
}}

var siteSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "secret", Required: true}, {Name: "cluster_name"},
}}

var networkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "cidr", Required: true}, {Name: "gateway"}, {Name: "zone", Required: true}, {Name: "public"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "resolver"}, {Type: "record", LabelNames: []string{"name"}}},
}

var recordSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "address", Required: true}}}

var resolverSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "search"}, {Name: "timeout"}, {Name: "retries"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "nameserver"}},
}

var nameserverSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "address", Required: true}, {Name: "priority"}}}

var routerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "dns"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "interface"}, {Type: "ssh"}},
}

var interfaceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "network", Required: true}, {Name: "address", Required: true}}}

var kernelSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "ip_forward"}, {Name: "file_max"}, {Name: "ip_local_port_range"}, {Name: "tcp_keepalive_time"},
	{Name: "tcp_max_syn_backlog"}, {Name: "somaxconn"}, {Name: "sysctl"},
}}
