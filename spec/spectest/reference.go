// Package spectest builds topologies in Go for the unit tests of packages
// that consume spec (render, the CLI), independent of the HCL decoder.
// Like all of spec it imports nothing of render, remote, runtime
// (runtime/config's constants apart), provision or lab.
package spectest

import (
	"net/netip"
	"sort"
	"time"

	"github.com/mailfleet/mailfleet/spec"
)

func secret(v string) spec.Secret { return spec.Secret{Value: v, Known: true, Source: "test"} }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// Reference returns the corrected reference scenario (the whitepaper's
// example with 198.51.100.0/24 in place of its public range, a balancer pair,
// a fenced standby), as examples/reference states it.
func Reference() *spec.Topology {
	t := &spec.Topology{Dir: "examples/reference"}
	t.Site = spec.Site{Name: "example", Cluster: "example", Secret: secret("site-secret-for-tests")}

	front := &spec.Network{Name: "frontend", CIDR: netip.MustParsePrefix("198.51.100.0/24"), Gateway: addr("198.51.100.1"), Zone: "front-end.cluster"}
	back := &spec.Network{Name: "backend", CIDR: netip.MustParsePrefix("10.0.0.0/24"), Gateway: addr("10.0.0.1"), Zone: "backend.cluster"}
	front.Resolver = spec.Resolver{Nameservers: []spec.Nameserver{{Address: addr("198.51.100.1"), Priority: 5}}, Search: []string{"front-end.cluster"}, Timeout: 2 * time.Second, Retries: 3}
	back.Resolver = spec.Resolver{Nameservers: []spec.Nameserver{{Address: addr("10.0.0.1"), Priority: 5}}, Search: []string{"backend.cluster"}, Timeout: 2 * time.Second, Retries: 3}
	t.Networks = []*spec.Network{back, front}

	t.Routers = []*spec.Router{{Name: "router", DNS: true, SSH: spec.SSH{User: "root", Port: 22},
		Interfaces: []spec.RouterInterface{{Network: front, Address: addr("198.51.100.1")}, {Network: back, Address: addr("10.0.0.1")}}}}

	tuned := &spec.Kernel{Name: "tuned", FileMax: 32786, LocalPortRange: [2]int{1024, 65000}, TCPKeepaliveTime: 600, TCPMaxSynBacklog: 4096, Somaxconn: 4096}
	t.Kernels = []*spec.Kernel{tuned}

	apc := &spec.FenceDevice{Name: "apc1", Kind: spec.FencePower, Agent: "fence_apc", Address: addr("10.0.0.250"), Login: "apc", Password: secret("fence-pw"), Ports: 4}
	t.Fences = []*spec.FenceDevice{apc}

	mk := func(name string, n *spec.Network, a string, port int, jump *spec.Node) *spec.Node {
		nd := &spec.Node{Name: name, Hostname: name, Network: n, Address: addr(a), Kernel: tuned, SSH: spec.SSH{User: "root", Port: 22, Jump: jump}}
		if port > 0 {
			nd.Fence = &spec.FencePort{Device: apc, Port: port}
		}
		t.Nodes = append(t.Nodes, nd)
		return nd
	}
	lb1 := mk("loadbalancer", front, "198.51.100.10", 0, nil)
	lb2 := mk("loadbalancer2", front, "198.51.100.11", 0, nil)
	p1 := mk("proxy1", front, "198.51.100.101", 0, nil)
	p2 := mk("proxy2", front, "198.51.100.102", 0, nil)
	p3 := mk("proxy3", front, "198.51.100.103", 0, nil)
	ldapnode := mk("ldapnode", back, "10.0.0.100", 1, lb1)
	n1 := mk("axigenode1", back, "10.0.0.11", 2, lb1)
	n2 := mk("axigenode2", back, "10.0.0.12", 3, lb1)
	standby := mk("standby", back, "10.0.0.13", 4, lb1)
	standby.Standby = true
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })

	san := &spec.Storage{Name: "san"}
	part := func(d *spec.Disk, name, dev, mnt string) *spec.Partition {
		p := &spec.Partition{Name: name, Disk: d, Device: dev, FSType: "ext4", Mountpoint: mnt}
		d.Partitions = append(d.Partitions, p)
		return p
	}
	sda := &spec.Disk{Name: "sda", Storage: san, Nodes: []*spec.Node{ldapnode, standby}}
	sdb := &spec.Disk{Name: "sdb", Storage: san, Nodes: []*spec.Node{n1, standby}}
	sdc := &spec.Disk{Name: "sdc", Storage: san, Nodes: []*spec.Node{n2, standby}}
	san.Disks = []*spec.Disk{sda, sdb, sdc}
	ldapData := part(sda, "ldap_data", "/dev/sda1", "/var/lib/ldap")
	a1s := part(sdb, "axigen1_storage", "/dev/sdb1", "/var/opt/AXIGEN1/domains")
	a1q := part(sdb, "axigen1_queue", "/dev/sdb2", "/var/opt/AXIGEN1/queue")
	a1r := part(sdb, "axigen1_run", "/dev/sdb3", "/var/opt/AXIGEN1/run")
	a2s := part(sdc, "axigen2_storage", "/dev/sdc1", "/var/opt/AXIGEN2/domains")
	a2q := part(sdc, "axigen2_queue", "/dev/sdc2", "/var/opt/AXIGEN2/queue")
	a2r := part(sdc, "axigen2_run", "/dev/sdc3", "/var/opt/AXIGEN2/run")
	t.Storages = []*spec.Storage{san}

	hc := spec.HealthCheck{Interval: 250 * time.Millisecond, Timeout: 250 * time.Millisecond, Rise: 2, Fall: 2}
	svc := func(name, vip string, port int) *spec.BalancedService {
		s := &spec.BalancedService{Name: name, Protocol: name, VIP: addr(vip), Port: port, Scheduler: spec.LeastConn, Health: hc}
		for _, p := range []*spec.Node{p1, p2, p3} {
			s.Backends = append(s.Backends, &spec.RealServer{Node: p, Port: port, Weight: 1})
		}
		return s
	}
	t.Balancers = []*spec.Balancer{{Name: "lvs", Nodes: []*spec.Node{lb1, lb2},
		VRRP:     spec.VRRP{RouterID: 51, Interface: "eth0", Password: secret("vrrp-pw")},
		Services: []*spec.BalancedService{svc("imap", "198.51.100.202", 143), svc("pop3", "198.51.100.201", 110), svc("smtp", "198.51.100.200", 25)}}}

	t.Directory = &spec.Directory{Name: "ldap", Hostname: "ldap", Base: "dc=example,dc=com",
		AdminDN: "cn=admin,dc=example,dc=com", AdminPassword: secret("admin-pw"),
		ServiceDN: "cn=mailfleet,dc=example,dc=com", ServicePassword: secret("service-pw"),
		VIP: addr("10.0.0.210"), Port: 389, TLSMode: spec.LDAPTLSStartTLS,
		TLS:  &spec.TLS{Cert: "/etc/mailfleet/tls/ldap.crt", Key: "/etc/mailfleet/tls/ldap.key", CA: "/etc/mailfleet/tls/ca.crt"},
		Data: ldapData, Nodes: []*spec.Node{ldapnode, standby},
		Schemas: []string{"core", "cosine", "inetorgperson", "misc"}}

	conn := &spec.LDAPConnector{Name: "LDAP_Master", URL: t.Directory.URL(), BindDN: t.Directory.ServiceDN,
		BindPassword: t.Directory.ServicePassword, Base: t.Directory.Base,
		Filter: "(&(uid=%e)(objectClass=inetLocalMailRecipient))", HostAttribute: "mailHost", RefuseDuplicates: true}
	t.Connectors = []*spec.LDAPConnector{conn}

	res := spec.Resolver{Nameservers: []spec.Nameserver{{Address: addr("10.0.0.1"), Priority: 5}}, Timeout: 2 * time.Second, Retries: 3}
	tlsMail := &spec.TLS{Cert: "/etc/mailfleet/tls/mail.crt", Key: "/etc/mailfleet/tls/mail.key", CA: "/etc/mailfleet/tls/ca.crt"}
	inst := func(name, host, vip string, s, q, r *spec.Partition, pref *spec.Node) *spec.Instance {
		return &spec.Instance{Name: name, Hostname: host, VIP: addr(vip), Network: back, Storage: s, Queue: q, Run: r,
			Nodes:       []*spec.Node{pref, standby},
			Listeners:   map[string]int{"smtp": 25, "pop3": 110, "imap": 143, "admin": 7000, "web": 9000},
			AdminSecret: secret("admin-secret-" + name), Connector: conn, Resolver: res, LogName: name, TLS: tlsMail}
	}
	ax1 := inst("AXIGEN1", "axigen1", "10.0.0.201", a1s, a1q, a1r, n1)
	ax2 := inst("AXIGEN2", "axigen2", "10.0.0.202", a2s, a2q, a2r, n2)
	t.Instances = []*spec.Instance{ax1, ax2}

	t.Frontends = []*spec.Frontend{{Name: "proxies", Nodes: []*spec.Node{p1, p2, p3}, Sessions: 10000,
		Domains: []string{"example.com"}, TrustedNetworks: []netip.Prefix{front.CIDR}, Connector: conn,
		DefaultRoute: ax1, BackendTLS: true,
		IMAP:     &spec.ProxyService{Port: 143, AuthenticateOnProxy: true, TLS: tlsMail},
		POP3:     &spec.ProxyService{Port: 110, AuthenticateOnProxy: true, TLS: tlsMail},
		SMTP:     &spec.SMTPRouting{Port: 25, Routing: true, TLS: tlsMail},
		Resolver: spec.Resolver{Nameservers: []spec.Nameserver{{Address: addr("198.51.100.1"), Priority: 5}}, Timeout: 2 * time.Second, Retries: 3}}}

	t.Provisioning = &spec.Provisioning{Policy: spec.PolicyLeastUsed}
	t.Vagrant = spec.Vagrant{Box: "debian/bookworm64", Memory: 1024}
	return t
}
