package spec

import (
	"net/netip"
	"time"
)

// Range is a place in a topology file. Lines and columns start at 1; Byte is
// the offset from the start of the file.
type Range struct {
	File      string
	Line, Col int
	Byte      int
	EndLine   int
	EndCol    int
	EndByte   int
}

// Src is where a model object was written: the whole block (Range) and each
// of its attributes by name (list elements as "name[i]"), so diagnostics can
// point at the exact attribute.
type Src struct {
	Range Range
	Attrs map[string]Range
}

// At returns the range of attribute name, or of the whole block when the
// attribute was not written.
func (s Src) At(name string) Range {
	if r, ok := s.Attrs[name]; ok {
		return r
	}
	return s.Range
}

// Secret is a sensitive value: a password, a fence credential, the site
// secret. Its String and GoString methods never show the value; Known is false
// when validate could not read it (env var unset, file missing) so that CI can
// validate without secrets while build refuses.
type Secret struct {
	Value string
	Known bool
	// Source says where the value came from ("env MAILFLEET_X", "file
	// secrets/x"), for messages that must name it without showing it.
	Source string
	Src
}

func (s Secret) String() string   { return "(sensitive value)" }
func (s Secret) GoString() string { return "spec.Secret{(sensitive value)}" }

// Topology is one site: everything the HCL files say, after decoding and
// canonicalization (defaults filled in). All slices are sorted by Name unless
// the field says that order matters.
type Topology struct {
	Dir string // the directory the topology was read from
	// Redact, set by the decoder, replaces in a message every value that
	// env() and file() returned (their lines and words too, in any letter
	// case): what Validate says may quote the topology's values. Nil for
	// a topology built in Go.
	Redact func(string) string
	Site   Site

	Networks     []*Network
	Routers      []*Router
	Kernels      []*Kernel
	Nodes        []*Node
	Fences       []*FenceDevice
	Storages     []*Storage
	Balancers    []*Balancer
	Directory    *Directory // nil when the topology has none
	Connectors   []*LDAPConnector
	Frontends    []*Frontend
	Instances    []*Instance
	Provisioning *Provisioning // nil when not stated (policy least_used)
	Vagrant      Vagrant
}

// Site holds site-wide settings.
type Site struct {
	Name string
	// Secret is the one site secret from which every piece of generated
	// random material (salts, the corosync authkey, admin secrets not given
	// explicitly) is derived with HKDF, so rendering is deterministic.
	Secret Secret
	// Cluster is the Pacemaker/Corosync cluster name.
	Cluster string
	Src
}

type Network struct {
	Name    string
	CIDR    netip.Prefix
	Gateway netip.Addr // zero when none
	Zone    string     // DNS zone, without trailing dot, e.g. "backend.cluster"
	Public  bool
	// Resolver is what the nodes of this network put in /etc/resolv.conf.
	// Canonicalization fills it with the DNS router's address on this network
	// and the network's zone when the topology does not say.
	Resolver Resolver
	// Records are extra A records in this network's zone.
	Records []*Record
	Src
}

// Record is a static A record of a zone, for hosts mailfleet does not manage.
type Record struct {
	Name    string // relative to the zone
	Address netip.Addr
	Src
}

type Resolver struct {
	Nameservers []Nameserver // order matters: by priority, then as written
	Search      []string
	Timeout     time.Duration
	Retries     int
	Src
}

type Nameserver struct {
	Address  netip.Addr
	Priority int // lower is tried first, as in the reference's DNR
	Src
}

type Router struct {
	Name       string
	Interfaces []RouterInterface // order as written
	DNS        bool              // runs BIND named serving every network's zones
	SSH        SSH
	Src
}

type RouterInterface struct {
	Network *Network
	Address netip.Addr
	Src
}

type Kernel struct {
	Name             string
	IPForward        bool
	FileMax          int
	LocalPortRange   [2]int
	TCPKeepaliveTime int // seconds
	TCPMaxSynBacklog int
	Somaxconn        int
	// Sysctl holds further keys, rendered as written.
	Sysctl map[string]string
	Src
}

type Node struct {
	Name     string
	Hostname string // DNS label; defaults to Name
	Network  *Network
	Address  netip.Addr
	Kernel   *Kernel // may be nil: no sysctl file is rendered
	SSH      SSH
	Fence    *FencePort // nil when the node has none
	Standby  bool       // a hot standby in the backend tier
	Src
}

// FQDN is the node's name in its network's zone.
func (n *Node) FQDN() string { return n.Hostname + "." + n.Network.Zone }

type SSH struct {
	User    string // default "root"
	Port    int    // default 22
	KeyFile string // optional private key path on the workstation
	Jump    *Node  // optional jump host
	Src
}

type FencePort struct {
	Device *FenceDevice
	Port   int
	Src
}

type FenceKind string

const (
	FencePower     FenceKind = "power"
	FenceIOBarrier FenceKind = "io_barrier"
)

type FenceDevice struct {
	Name     string
	Kind     FenceKind
	Agent    string // Pacemaker fence agent, e.g. "fence_apc"
	Address  netip.Addr
	Login    string
	Password Secret
	Ports    int
	Src
}

type Storage struct {
	Name  string
	Disks []*Disk
	Src
}

type Disk struct {
	Name    string
	Storage *Storage
	// Nodes that can reach this disk; empty means every backend node.
	Nodes      []*Node
	Partitions []*Partition
	Src
}

type Partition struct {
	Name   string
	Disk   *Disk
	Device string // e.g. /dev/sdb1
	FSType string // default "ext4"; "none" with Options "bind" bind-mounts Device, a directory
	// Options are the mount options (mount -o), comma separated; "" for
	// the defaults. The Filesystem resource gets them as its options.
	Options string
	// Mountpoint is where the service that uses it mounts it; derived from
	// its use when not written (/var/opt/<instance>/domains|queue|run,
	// /var/lib/ldap).
	Mountpoint string
	Src
}

type Scheduler string

const (
	LeastConn         Scheduler = "least_conn"
	WeightedLeastConn Scheduler = "weighted_least_conn"
	RoundRobin        Scheduler = "round_robin"
)

type Balancer struct {
	Name          string
	Nodes         []*Node // one, or two for a VRRP pair (first is master)
	ProxyProtocol bool    // send PROXY v2 to the front-ends
	VRRP          VRRP
	Services      []*BalancedService
	Src
}

type VRRP struct {
	RouterID  int // virtual_router_id, default 51
	Interface string
	// Advert is the advertisement interval (advert_interval); 0: the
	// default, DefaultVRRPAdvert, or 1 s with a password.
	Advert time.Duration
	// Password, when set, asks for VRRPv2's simple authentication (RFC
	// 2338, removed from the protocol by RFC 3768): VRRPv2 advertises in
	// whole seconds only. Without it the pair speaks VRRPv3 (RFC 5798),
	// which has no authentication, with sub-second adverts.
	Password Secret
	Src
}

// DefaultVRRPAdvert is the VRRPv3 advertisement interval: a backup takes the
// VIPs over 3 intervals plus a skew (about 0.7 s) after the master falls
// silent.
const DefaultVRRPAdvert = 200 * time.Millisecond

// HasPassword says whether the topology sets a VRRP password (VRRPv2).
func (v VRRP) HasPassword() bool { return v.Password.Source != "" || v.Password.Value != "" }

// AdvertInterval is the advertisement interval in effect.
func (v VRRP) AdvertInterval() time.Duration {
	switch {
	case v.Advert > 0:
		return v.Advert
	case v.HasPassword():
		return time.Second
	}
	return DefaultVRRPAdvert
}

type BalancedService struct {
	Name      string
	Protocol  string // smtp, imap, pop3 (decides the health check greeting)
	VIP       netip.Addr
	Port      int
	Scheduler Scheduler
	Backends  []*RealServer // order as written
	Health    HealthCheck
	Src
}

type RealServer struct {
	Node   *Node
	Port   int // defaults to the front-end's listener port for the protocol
	Weight int // default 1
	Src
}

type HealthCheck struct {
	Interval time.Duration // default 1s
	Timeout  time.Duration // default = interval
	Rise     int           // default 2
	Fall     int           // default 2
	Src
}

type LDAPTLS string

const (
	LDAPTLSNone     LDAPTLS = "none"
	LDAPTLSStartTLS LDAPTLS = "starttls"
	LDAPTLSLDAPS    LDAPTLS = "ldaps"
)

type Directory struct {
	Name            string
	Hostname        string // DNS label for the VIP in the backend zone, default "ldap"
	Base            string
	AdminDN         string
	AdminPassword   Secret
	ServiceDN       string
	ServicePassword Secret
	VIP             netip.Addr
	Port            int // default 389, 636 for ldaps
	TLSMode         LDAPTLS
	TLS             *TLS // certificate when TLSMode is not none
	Data            *Partition
	Nodes           []*Node  // preferred first
	Schemas         []string // schema names loaded, default core cosine inetorgperson misc
	Src
}

// URL is how clients reach the directory: its VIP, never a node.
func (d *Directory) URL() string {
	scheme := "ldap"
	if d.TLSMode == LDAPTLSLDAPS {
		scheme = "ldaps"
	}
	return scheme + "://" + netip.AddrPortFrom(d.VIP, uint16(d.Port)).String()
}

// LDAPConnector is the reference's named LDAP connector: how a tier finds
// accounts and authenticates them.
type LDAPConnector struct {
	Name             string
	URL              string // default: the directory's URL
	BindDN           string // default: the directory's service DN
	BindPassword     Secret // default: the directory's service password
	Base             string // default: the directory's base
	Filter           string // with %e, %u, %d placeholders
	HostAttribute    string // default "mailHost"
	RefuseDuplicates bool   // the reference's "use first returned field = no"
	Src
}

type TLS struct {
	Cert string // path on the host
	Key  string
	CA   string // optional CA bundle for client hops
	Src
}

type Frontend struct {
	Name            string
	Nodes           []*Node
	Sessions        int // expected concurrent sessions per node
	Domains         []string
	TrustedNetworks []netip.Prefix
	Connector       *LDAPConnector
	DefaultRoute    *Instance // nil: unknown accounts are refused
	IMAP            *ProxyService
	POP3            *ProxyService
	SMTP            *SMTPRouting
	BackendTLS      bool // TLS on the front-end → store hop
	Resolver        Resolver
	Src
}

type ProxyService struct {
	Port                int
	AuthenticateOnProxy bool
	TLS                 *TLS
	Src
}

type SMTPRouting struct {
	Port    int
	Routing bool
	LMTP    bool // deliver to the instances' LMTP listener
	TLS     *TLS
	Src
}

type Instance struct {
	Name        string
	Hostname    string // DNS label in the VIP's network zone
	VIP         netip.Addr
	Network     *Network // the network containing the VIP
	Storage     *Partition
	Queue       *Partition
	Run         *Partition
	Nodes       []*Node        // preferred first, then failover
	Listeners   map[string]int // smtp pop3 imap admin web lmtp
	AdminSecret Secret
	Connector   *LDAPConnector
	Resolver    Resolver
	LogName     string // carried by every log file name, default Name
	TLS         *TLS
	Src
}

// FQDN is the instance's name in its zone: the mailHost value of its accounts.
func (i *Instance) FQDN() string { return i.Hostname + "." + i.Network.Zone }

type Policy string

const (
	PolicyRandom         Policy = "random"
	PolicyWeightedRandom Policy = "weighted_random"
	PolicyLeastUsed      Policy = "least_used"
	PolicyDomain         Policy = "domain"
)

type Provisioning struct {
	Policy  Policy
	Weights map[string]int       // instance name → weight
	Domains map[string]*Instance // domain → home instance
	// Domain settings kept the same on every instance that has the domain.
	DefaultQuota int64 // bytes, 0 = unlimited
	AccountLimit int   // 0 = unlimited
	Src
}

type Vagrant struct {
	Box    string // default "debian/bookworm64"
	Memory int    // MiB per VM, default 1024
}
