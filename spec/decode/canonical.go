package decode

import (
	"sort"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/spec"
)

// Defaults live here and nowhere else.
const (
	defaultSSHUser = "root"
	defaultSSHPort = 22
	defaultFSType  = "ext4"
	// A dead or hung front-end node must stop receiving clients within a
	// second: with fall 2 that takes about interval + 2 × timeout.
	defaultHealthEvery = 250 * time.Millisecond
	defaultRise        = 2
	defaultFall        = 2
	defaultLDAPPort    = 389
	defaultLDAPSPort   = 636
	defaultHostAttr    = "mailHost"
	defaultBox         = "debian/bookworm64"
	defaultMemory      = 1024
	defaultVRRPID      = 51
)

var defaultSchemas = []string{"core", "cosine", "inetorgperson", "misc"}

// canonicalize fills every default so that later stages never guess, and
// sorts every named list by name.
func canonicalize(t *spec.Topology) {
	sort.Slice(t.Networks, func(i, j int) bool { return t.Networks[i].Name < t.Networks[j].Name })
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
	sort.Slice(t.Routers, func(i, j int) bool { return t.Routers[i].Name < t.Routers[j].Name })
	sort.Slice(t.Kernels, func(i, j int) bool { return t.Kernels[i].Name < t.Kernels[j].Name })
	sort.Slice(t.Fences, func(i, j int) bool { return t.Fences[i].Name < t.Fences[j].Name })
	sort.Slice(t.Storages, func(i, j int) bool { return t.Storages[i].Name < t.Storages[j].Name })
	sort.Slice(t.Balancers, func(i, j int) bool { return t.Balancers[i].Name < t.Balancers[j].Name })
	sort.Slice(t.Connectors, func(i, j int) bool { return t.Connectors[i].Name < t.Connectors[j].Name })
	sort.Slice(t.Frontends, func(i, j int) bool { return t.Frontends[i].Name < t.Frontends[j].Name })
	sort.Slice(t.Instances, func(i, j int) bool { return t.Instances[i].Name < t.Instances[j].Name })

	for _, r := range t.Routers {
		sshDefaults(&r.SSH)
	}
	for _, n := range t.Nodes {
		if n.Hostname == "" {
			n.Hostname = n.Name
		}
		sshDefaults(&n.SSH)
	}
	for _, n := range t.Networks {
		n.Zone = strings.TrimSuffix(strings.ToLower(n.Zone), ".")
		if len(n.Resolver.Nameservers) == 0 {
			for _, r := range t.Routers {
				if !r.DNS {
					continue
				}
				for _, i := range r.Interfaces {
					if i.Network == n {
						n.Resolver.Nameservers = append(n.Resolver.Nameservers, spec.Nameserver{Address: i.Address, Priority: 5})
					}
				}
			}
		}
		if len(n.Resolver.Search) == 0 && n.Zone != "" {
			n.Resolver.Search = []string{n.Zone}
		}
		if n.Resolver.Timeout == 0 {
			n.Resolver.Timeout = 2 * time.Second
		}
		if n.Resolver.Retries == 0 {
			n.Resolver.Retries = 3
		}
		sort.Slice(n.Records, func(i, j int) bool { return n.Records[i].Name < n.Records[j].Name })
	}
	for _, s := range t.Storages {
		for _, d := range s.Disks {
			for _, p := range d.Partitions {
				if p.FSType == "" {
					p.FSType = defaultFSType
				}
			}
		}
	}
	for _, b := range t.Balancers {
		if len(b.Nodes) > 1 && b.VRRP.RouterID == 0 {
			b.VRRP.RouterID = defaultVRRPID
		}
		if b.VRRP.Interface == "" {
			b.VRRP.Interface = "eth0"
		}
		for _, s := range b.Services {
			if s.Protocol == "" {
				s.Protocol = s.Name
			}
			if s.Scheduler == "" {
				s.Scheduler = spec.LeastConn
			}
			h := &s.Health
			if h.Interval == 0 {
				h.Interval = defaultHealthEvery
			}
			if h.Timeout == 0 {
				h.Timeout = h.Interval
			}
			if h.Rise == 0 {
				h.Rise = defaultRise
			}
			if h.Fall == 0 {
				h.Fall = defaultFall
			}
			for _, rs := range s.Backends {
				if rs.Port == 0 {
					rs.Port = frontendPort(t, s.Protocol, s.Port)
				}
			}
		}
	}
	if d := t.Directory; d != nil {
		if d.Hostname == "" {
			d.Hostname = "ldap"
		}
		if d.Port == 0 {
			d.Port = defaultLDAPPort
			if d.TLSMode == spec.LDAPTLSLDAPS {
				d.Port = defaultLDAPSPort
			}
		}
		if len(d.Schemas) == 0 {
			d.Schemas = append([]string(nil), defaultSchemas...)
		}
		if d.Data != nil && d.Data.Mountpoint == "" {
			d.Data.Mountpoint = "/var/lib/ldap"
		}
	}
	for _, c := range t.Connectors {
		if d := t.Directory; d != nil {
			if c.URL == "" && d.VIP.IsValid() {
				c.URL = d.URL()
			}
			if c.BindDN == "" {
				c.BindDN = d.ServiceDN
			}
			if c.BindPassword.Source == "" && !c.BindPassword.Known {
				if c.BindDN == d.ServiceDN {
					c.BindPassword = d.ServicePassword
				} else if c.BindDN == d.AdminDN {
					c.BindPassword = d.AdminPassword
				}
			}
			if c.Base == "" {
				c.Base = d.Base
			}
		}
		if c.HostAttribute == "" {
			c.HostAttribute = defaultHostAttr
		}
	}
	for _, in := range t.Instances {
		if in.Hostname == "" {
			in.Hostname = strings.ToLower(in.Name)
		}
		if in.LogName == "" {
			in.LogName = in.Name
		}
		for _, n := range t.Networks {
			if n.CIDR.IsValid() && in.VIP.IsValid() && n.CIDR.Contains(in.VIP) {
				in.Network = n
				break
			}
		}
		if len(in.Resolver.Nameservers) == 0 && in.Network != nil {
			in.Resolver = in.Network.Resolver
			in.Resolver.Src = spec.Src{} // not written in this block
		}
		if in.Resolver.Timeout == 0 {
			in.Resolver.Timeout = 2 * time.Second
		}
		if in.Resolver.Retries == 0 {
			in.Resolver.Retries = 3
		}
		if in.Connector == nil && len(t.Connectors) == 1 {
			in.Connector = t.Connectors[0]
		}
		for what, p := range map[string]*spec.Partition{"domains": in.Storage, "queue": in.Queue, "run": in.Run} {
			if p != nil && p.Mountpoint == "" {
				p.Mountpoint = "/var/opt/" + in.Name + "/" + what
			}
		}
	}
	for _, f := range t.Frontends {
		for i, d := range f.Domains {
			f.Domains[i] = strings.ToLower(d)
		}
		sort.Strings(f.Domains)
		if len(f.Resolver.Nameservers) == 0 && len(f.Nodes) > 0 && f.Nodes[0] != nil && f.Nodes[0].Network != nil {
			f.Resolver = f.Nodes[0].Network.Resolver
			f.Resolver.Src = spec.Src{} // not written in this block
		}
	}
	if t.Vagrant.Box == "" {
		t.Vagrant.Box = defaultBox
	}
	if t.Vagrant.Memory == 0 {
		t.Vagrant.Memory = defaultMemory
	}
}

func sshDefaults(s *spec.SSH) {
	if s.User == "" {
		s.User = defaultSSHUser
	}
	if s.Port == 0 {
		s.Port = defaultSSHPort
	}
}

// frontendPort is the port the front-end nodes listen on for protocol: the
// real servers' port when the balancer service does not say.
func frontendPort(t *spec.Topology, protocol string, def int) int {
	for _, f := range t.Frontends {
		switch {
		case protocol == "imap" && f.IMAP != nil:
			return f.IMAP.Port
		case protocol == "pop3" && f.POP3 != nil:
			return f.POP3.Port
		case protocol == "smtp" && f.SMTP != nil:
			return f.SMTP.Port
		}
	}
	return def
}
