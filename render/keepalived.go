package render

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/templates"
)

const (
	keepalivedConfigPath = "/etc/keepalived/keepalived.conf"
	// keepalivedIPVSConfigID guards the virtual_server lines: keepalived
	// reads a line that starts with @ID only when it runs with -i ID. The
	// mailfleetd balancer serves the VIPs by default; on a site with IPVS
	// kernels keepalived runs with -i mailfleet_ipvs and IPVS takes the
	// packets before they reach the balancer's sockets. An underscore
	// cannot be in a host name, so no node matches it by default.
	keepalivedIPVSConfigID = "mailfleet_ipvs"
	// VRRP priorities: the first node of a pair is the master.
	vrrpMasterPriority = 150
	vrrpBackupPriority = 100
	// vrrpPassLen: RFC 2338 simple text authentication carries 8 octets;
	// keepalived truncates a longer auth_pass and warns.
	vrrpPassLen = 8
)

var reloadKeepalived = Action{Name: "reload keepalived", Command: "systemctl enable --quiet keepalived && systemctl reload-or-restart keepalived", Order: OrderDaemon}

// IPVS scheduler for each of ours.
var ipvsScheduler = map[spec.Scheduler]string{
	spec.LeastConn:         "lc",
	spec.WeightedLeastConn: "wlc",
	spec.RoundRobin:        "rr",
}

type keepalivedView struct {
	Node     string
	ConfigID string // keepalived -i value that enables the IPVS lines
	VRRP     *vrrpView
	Services []virtualServerView
}

type vrrpView struct {
	Name      string
	State     string
	Interface string
	RouterID  int
	Priority  int
	Version   int      // 3, or 2 with a password
	Advert    string   // advert_int, seconds
	Password  string   // VRRPv2 only
	SrcIP     string   // unicast_src_ip; empty: multicast
	Peer      string   // unicast_peer, the other balancer
	VIPs      []string // ADDR/PREFIXLEN
}

type virtualServerView struct {
	Name      string
	VIP       string
	Port      int
	Algo      string
	DelayLoop string
	Real      []realServerView
}

type realServerView struct {
	Node             string
	Address          string
	Port             int
	Weight           int
	ConnectTimeout   string
	Retry            int
	DelayBeforeRetry string
}

// renderKeepalived writes keepalived.conf on both nodes of every balancer
// pair: the VRRP instance that moves the service VIPs between them, and the
// same services as IPVS virtual servers for sites whose kernels have IPVS.
//
// A single balancer node has nothing for keepalived to do by default (no VIP
// to move; the IPVS part is opt-in), so it gets no keepalived.conf and no
// keepalived; a site that wants IPVS there needs a pair, or a topology
// setting for the engine that the model does not have yet.
//
// The virtual servers use NAT (lb_kind NAT): the front-ends listen on their
// own addresses, as the reference's listeners do, and NAT rewrites the
// destination to exactly that address and port; DR and TUN would deliver
// packets still addressed to the VIP, which the front-ends neither hold nor
// listen on, and cannot map ports. NAT needs the replies to pass the
// director: on an IPVS site the front-ends route through the balancer pair.
func renderKeepalived(b *builder) error {
	for _, bl := range b.t.Balancers {
		if len(bl.Nodes) < 2 {
			continue
		}
		if len(bl.Nodes) > 2 {
			return fmt.Errorf("balancer %s has %d nodes; a VRRP pair has two", bl.Name, len(bl.Nodes))
		}
		for i, n := range bl.Nodes {
			v, err := keepalivedFor(b, bl, i)
			if err != nil {
				return fmt.Errorf("balancer %s on %s: %w", bl.Name, n.Name, err)
			}
			content, err := templates.Execute("keepalived.conf.tmpl", v)
			if err != nil {
				return err
			}
			act := reloadKeepalived
			if err := b.add(n.Name, &File{Path: keepalivedConfigPath, Mode: 0o600, Owner: "root", Group: "root",
				Content: content, Sensitive: true, Actions: []*Action{&act}}); err != nil {
				return err
			}
			h := b.host(n.Name)
			h.addRole("balancer")
			h.addPackages("keepalived")
		}
	}
	return nil
}

func keepalivedFor(b *builder, bl *spec.Balancer, i int) (*keepalivedView, error) {
	n := bl.Nodes[i]
	v := &keepalivedView{Node: n.Name, ConfigID: keepalivedIPVSConfigID}
	if bl.VRRP.Interface == "" {
		return nil, fmt.Errorf("vrrp interface is empty")
	}
	// Both start as BACKUP with nopreempt: the first node becomes master
	// by its priority when both come up, but a balancer that returns after
	// a failure does not take the VIPs back (a second interruption, with
	// nothing gained); the admin may move them back at a quiet time.
	vr := &vrrpView{Name: "VI_" + bl.Name, State: "BACKUP", Interface: bl.VRRP.Interface,
		RouterID: bl.VRRP.RouterID, Priority: vrrpBackupPriority, Version: 3,
		Advert: keepalivedTimer(bl.VRRP.AdvertInterval())}
	if i == 0 {
		vr.Priority = vrrpMasterPriority
	}
	if bl.VRRP.HasPassword() {
		// The topology asks for VRRPv2's authentication (spec warns
		// what it costs).
		pw, err := vrrpPassword(b, bl)
		if err != nil {
			return nil, err
		}
		vr.Version, vr.Password = 2, pw
	}
	seen := map[string]bool{}
	for _, s := range bl.Services {
		vip, err := vipWithPrefix(b.t, s)
		if err != nil {
			return nil, err
		}
		if !seen[vip] {
			seen[vip] = true
			vr.VIPs = append(vr.VIPs, vip)
		}
	}
	// VRRPv3 has no authentication: the pair speaks unicast to each other
	// and takes adverts from each other only (check_unicast_src), when
	// both are on the VIPs' network.
	if vr.Version == 3 && len(bl.Nodes) == 2 && len(bl.Services) > 0 {
		if nw := networkOf(b.t, bl.Services[0].VIP); nw != nil {
			me, peer := n.Address, bl.Nodes[1-i].Address
			if nw.CIDR.Contains(me) && nw.CIDR.Contains(peer) {
				vr.SrcIP, vr.Peer = me.String(), peer.String()
			}
		}
	}
	v.VRRP = vr

	for _, s := range bl.Services {
		algo, ok := ipvsScheduler[s.Scheduler]
		if !ok {
			return nil, fmt.Errorf("service %s: no IPVS scheduler for %q", s.Name, s.Scheduler)
		}
		vs := virtualServerView{Name: s.Name, VIP: s.VIP.String(), Port: s.Port, Algo: algo,
			DelayLoop: keepalivedTimer(s.Health.Interval)}
		// keepalived takes a server out after 1+retry failed checks (our
		// fall); it has no rise: one good check puts it back, and alpha
		// starts every server down until its first good check.
		retry := s.Health.Fall - 1
		if retry < 0 {
			retry = 0
		}
		timeout := s.Health.Timeout
		if timeout <= 0 {
			timeout = s.Health.Interval
		}
		for _, rs := range s.Backends {
			vs.Real = append(vs.Real, realServerView{Node: rs.Node.Name, Address: rs.Node.Address.String(), Port: rs.Port,
				Weight: rs.Weight, ConnectTimeout: keepalivedTimer(timeout), Retry: retry,
				DelayBeforeRetry: keepalivedTimer(s.Health.Interval)})
		}
		v.Services = append(v.Services, vs)
	}
	return v, nil
}

// vrrpPassword is the topology's password (VRRPv2). keepalived reads # and
// ! as comments, $ as a parameter and quotes as quoting, so such a password
// cannot be written faithfully.
func vrrpPassword(b *builder, bl *spec.Balancer) (string, error) {
	pw := daemonSecretValue(bl.VRRP.Password, b.keys.Token("vrrp/"+bl.Name, 6))
	if !bl.VRRP.Password.Known || bl.VRRP.Password.Value == "" {
		return pw, nil
	}
	if len(pw) > vrrpPassLen {
		pw = pw[:vrrpPassLen]
	}
	for _, r := range pw {
		if r <= ' ' || r > '~' || strings.ContainsRune("#!$\"'\\{}", r) {
			return "", fmt.Errorf("vrrp password (%s) has a character keepalived cannot read: use letters, digits and -_.+=/:%%^*", bl.VRRP.Password.Source)
		}
	}
	return pw, nil
}

// networkOf is the network holding a, or nil.
func networkOf(t *spec.Topology, a netip.Addr) *spec.Network {
	for _, nw := range t.Networks {
		if nw.CIDR.Contains(a) {
			return nw
		}
	}
	return nil
}

// vipWithPrefix is s's VIP with the prefix length of the network holding it,
// as keepalived adds it to the interface.
func vipWithPrefix(t *spec.Topology, s *spec.BalancedService) (string, error) {
	for _, nw := range t.Networks {
		if nw.CIDR.Contains(s.VIP) {
			return s.VIP.String() + "/" + strconv.Itoa(nw.CIDR.Bits()), nil
		}
	}
	return "", fmt.Errorf("service %s: VIP %s is in no network", s.Name, s.VIP)
}

// keepalivedTimer writes d in keepalived's TIMER syntax: seconds, with a
// fraction when needed.
func keepalivedTimer(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
