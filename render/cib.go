package render

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
)

// The Pacemaker CIB: resources, groups, constraints and fencing of the
// backend cluster, built as a document (cibDoc) and written by cibXML.

type cibDoc struct {
	XMLName      xml.Name  `xml:"cib"`
	ValidateWith string    `xml:"validate-with,attr"`
	AdminEpoch   int       `xml:"admin_epoch,attr"`
	Epoch        int       `xml:"epoch,attr"`
	NumUpdates   int       `xml:"num_updates,attr"`
	Config       cibConfig `xml:"configuration"`
	Status       struct{}  `xml:"status"`
}

type cibConfig struct {
	CRMConfig []cibAttrs `xml:"crm_config>cluster_property_set"`
	// Nodes stays empty: Pacemaker fills it from the corosync membership
	// (the ids and names of corosync.conf's nodelist). Entries written
	// here, without the status the cluster keeps beside them, would only
	// make crm_verify see unclean nodes.
	Nodes       struct{}       `xml:"nodes"`
	Resources   cibResources   `xml:"resources"`
	Constraints cibConstraints `xml:"constraints"`
	RscDefaults []cibAttrs     `xml:"rsc_defaults>meta_attributes"`
}

type cibConstraints struct {
	Locations   []cibLocation   `xml:"rsc_location"`
	Colocations []cibColocation `xml:"rsc_colocation"`
	Orders      []cibOrder      `xml:"rsc_order"`
}

// cibColocation keeps Rsc on the node where WithRsc runs.
type cibColocation struct {
	ID      string `xml:"id,attr"`
	Rsc     string `xml:"rsc,attr"`
	WithRsc string `xml:"with-rsc,attr"`
	Score   string `xml:"score,attr"`
}

// cibOrder starts Then after First (and stops it before).
type cibOrder struct {
	ID    string `xml:"id,attr"`
	First string `xml:"first,attr"`
	Then  string `xml:"then,attr"`
	Kind  string `xml:"kind,attr"`
}

type cibResources struct {
	Groups     []cibGroup     `xml:"group"`
	Primitives []cibPrimitive `xml:"primitive"`
}

type cibGroup struct {
	ID         string         `xml:"id,attr"`
	Primitives []cibPrimitive `xml:"primitive"`
}

type cibPrimitive struct {
	ID       string    `xml:"id,attr"`
	Class    string    `xml:"class,attr"`
	Provider string    `xml:"provider,attr,omitempty"`
	Type     string    `xml:"type,attr"`
	Params   *cibAttrs `xml:"instance_attributes,omitempty"`
	Meta     *cibAttrs `xml:"meta_attributes,omitempty"`
	Ops      []cibOp   `xml:"operations>op"`
}

// cibAttrs is a set of nvpairs: a cluster_property_set, instance_attributes
// or meta_attributes, by where it is put.
type cibAttrs struct {
	ID    string      `xml:"id,attr"`
	Pairs []cibNVPair `xml:"nvpair"`
}

type cibNVPair struct {
	ID    string `xml:"id,attr"`
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type cibOp struct {
	ID       string `xml:"id,attr"`
	Name     string `xml:"name,attr"`
	Interval string `xml:"interval,attr"`
	Timeout  string `xml:"timeout,attr"`
}

type cibLocation struct {
	ID    string `xml:"id,attr"`
	Rsc   string `xml:"rsc,attr"`
	Node  string `xml:"node,attr"`
	Score string `xml:"score,attr"`
	// Discovery "exclusive": the cluster probes the resource only on the
	// nodes of such constraints, i.e. its node list; elsewhere it has
	// neither the disks nor (for a store) the agent, and a probe would
	// only log "not installed" errors.
	Discovery string `xml:"resource-discovery,attr,omitempty"`
}

// cibNewAttrs makes a set called id with the name/value pairs kv, the id of
// each pair being id-name.
func cibNewAttrs(id string, kv ...string) *cibAttrs {
	a := &cibAttrs{ID: id}
	for i := 0; i+1 < len(kv); i += 2 {
		a.Pairs = append(a.Pairs, cibNVPair{ID: id + "-" + kv[i], Name: kv[i], Value: kv[i+1]})
	}
	return a
}

// cibOpTiming is an operation's name, interval and timeout.
type cibOpTiming [3]string

// Operation timings by agent. Monitors notice a failed resource within
// seconds; start and stop timeouts leave room for a file system check and
// for the store to flush.
var (
	cibFSOps = []cibOpTiming{{"monitor", "20s", "40s"}, {"start", "0s", "60s"}, {"stop", "0s", "60s"}}
	cibIPOps = []cibOpTiming{{"monitor", "10s", "20s"}, {"start", "0s", "20s"}, {"stop", "0s", "20s"}}
	// The store is watched every second (its agent asks /healthz with a
	// 2 s limit): a store that dies is restarted within about 2 s, one that
	// hangs is stopped and started within about 10 s.
	cibStoreOps = []cibOpTiming{{"monitor", "1s", "5s"}, {"start", "0s", "60s"}, {"stop", "0s", "60s"}}
	cibSlapdOps = []cibOpTiming{{"monitor", "10s", "20s"}, {"start", "0s", "60s"}, {"stop", "0s", "60s"}}
	cibFenceOps = []cibOpTiming{{"monitor", "60s", "20s"}}
)

func cibNewPrimitive(id, class, provider, typ string, params []string, ops []cibOpTiming) cibPrimitive {
	p := cibPrimitive{ID: id, Class: class, Provider: provider, Type: typ}
	if len(params) > 0 {
		p.Params = cibNewAttrs(id+"-instance_attributes", params...)
	}
	for _, o := range ops {
		p.Ops = append(p.Ops, cibOp{ID: id + "-" + o[0] + "-interval-" + o[1], Name: o[0], Interval: o[1], Timeout: o[2]})
	}
	return p
}

// cibMount is a partition: mailfleet's mount agent (runtime/ocf), which
// takes the parameters of ocf:heartbeat:Filesystem that a site uses. The
// partitions' and the VIP's starts are most of a failover: the shell agents
// of resource-agents took 2–2.5 s for them on a busy node, these a few
// milliseconds.
func cibMount(id string, p *spec.Partition, mountpoint string) cibPrimitive {
	params := []string{"device", p.Device, "directory", mountpoint, "fstype", partitionFSType(p)}
	if p.Options != "" {
		params = append(params, "options", p.Options)
	}
	return cibNewPrimitive(id, "ocf", "mailfleet", "mount", params, cibFSOps)
}

// storeAgentParams are the parameters of instance i's ocf:mailfleet:store
// primitive: its config, and the user the agent runs the store as (the one
// the units of the other daemons name), with the directories the store
// writes, which the agent gives to that user at every start (a partition
// mounted afresh has a root-owned root), and its open files limit, sized
// for the sessions of every front-end node together (Pacemaker's own limit
// would be far too small).
func storeAgentParams(t *spec.Topology, i *spec.Instance) []string {
	var dirs []string
	for _, c := range instancePartitions(i) {
		dirs = append(dirs, c.p.Mountpoint)
	}
	dirs = append(dirs, storeLogDir)
	params := []string{"config", storeConfigPath(i), "user", daemonUser, "dirs", strings.Join(dirs, " "),
		"nofile", strconv.Itoa(storeCapacity(t)*storeFDsSession + daemonFDHeadroom)}
	// The monitor asks the store's /healthz on its admin listener (TLS
	// when the instance has a certificate), so that a hung store fails it.
	if port := i.Listeners["admin"]; port > 0 {
		scheme := "http"
		if i.TLS != nil {
			scheme = "https"
		}
		params = append(params, "health_url", scheme+"://"+netip.AddrPortFrom(i.VIP, uint16(port)).String()+"/healthz")
	}
	return params
}

// cibVIP is a VIP: mailfleet's vip agent (runtime/ocf, the parameters of
// ocf:heartbeat:IPaddr2), which sends the gratuitous ARP that makes the
// network find it on its new node at once.
func cibVIP(id string, vip netip.Addr, network *spec.Network) cibPrimitive {
	params := []string{"ip", vip.String()}
	if network != nil {
		params = append(params, "cidr_netmask", strconv.Itoa(network.CIDR.Bits()))
	}
	return cibNewPrimitive(id, "ocf", "mailfleet", "vip", params, cibIPOps)
}

// slapdResourceID names the slapd primitive of the directory's group.
func slapdResourceID(d *spec.Directory) string { return d.Name + "-slapd" }

// slapdServices are the URLs slapd listens on: the VIP, so that it moves
// with the VIP, and ldapi:/// for local tools. The slapd agent's monitor
// searches through the first one.
func slapdServices(d *spec.Directory) string { return d.URL() + "/ ldapi:///" }

// cibLocationScore is the preference for the node at pos in a node list:
// 200 for the first, then half the one before, never below 1.
func cibLocationScore(pos int) int {
	s := 200
	for i := 0; i < pos && s > 1; i++ {
		s /= 2
	}
	return s
}

// stamped renders the CIB with admin_epoch version: the one counter the
// cluster never raises itself, so a larger one makes a replace win whatever
// epoch the running CIB has reached.
func (c *cibDoc) stamped(version int) ([]byte, error) {
	d := *c
	d.AdminEpoch = version
	return cibXML(&d), nil
}

func buildCIB(t *spec.Topology, members []*spec.Node) (*cibDoc, error) {
	doc := &cibDoc{ValidateWith: cibSchema, Epoch: 1}
	cfg := &doc.Config
	cfg.CRMConfig = []cibAttrs{*cibNewAttrs("cib-bootstrap-options",
		// Never without fencing: an instance must run on one node at most,
		// also when a node stops answering.
		"stonith-enabled", "true",
		// A partition without quorum stops its resources; the side with
		// quorum fences it and takes them over.
		"no-quorum-policy", "stop",
		// Opt-in: a resource runs only where a location constraint lets it,
		// i.e. on the nodes of its node list, which reach its disks.
		"symmetric-cluster", "false",
		// A failover's starts run at once whatever the nodes' CPU load:
		// by default (batch-limit 0, load-threshold 80%) a busy node is
		// given one action at a time, which made failovers on a loaded
		// machine take twice as long. The actions are few and short.
		"batch-limit", "30",
		"load-threshold", "1000%",
		// and a node runs up to 20 at once (the default, twice its
		// cores, let a relocation's stops and starts queue two by two).
		"node-action-limit", "20",
	)}
	prefer := func(rsc string, nodes []*spec.Node) {
		for pos, n := range nodes {
			cfg.Constraints.Locations = append(cfg.Constraints.Locations, cibLocation{ID: "location-" + rsc + "-" + n.Name,
				Rsc: rsc, Node: n.Name, Score: strconv.Itoa(cibLocationScore(pos)), Discovery: "exclusive"})
		}
	}
	// A service is a group named after it, holding its daemon, and the
	// resources the daemon needs (partitions, VIP) beside it: each kept
	// where the group runs and started before it, all of them at once.
	// In one group they would start one after another, the slowest part
	// of a failover; the order still makes the daemon start last and stop
	// first. They may run on the service's nodes only (score 0: the
	// group's preferences decide), and are probed nowhere else.
	service := func(name string, nodes []*spec.Node, daemon cibPrimitive, needs []cibPrimitive) {
		cfg.Resources.Groups = append(cfg.Resources.Groups, cibGroup{ID: name, Primitives: []cibPrimitive{daemon}})
		prefer(name, nodes)
		for _, p := range needs {
			cfg.Resources.Primitives = append(cfg.Resources.Primitives, p)
			for _, n := range nodes {
				cfg.Constraints.Locations = append(cfg.Constraints.Locations, cibLocation{ID: "location-" + p.ID + "-" + n.Name,
					Rsc: p.ID, Node: n.Name, Score: "0", Discovery: "exclusive"})
			}
			cfg.Constraints.Colocations = append(cfg.Constraints.Colocations, cibColocation{ID: "colocation-" + p.ID,
				Rsc: p.ID, WithRsc: name, Score: "INFINITY"})
			cfg.Constraints.Orders = append(cfg.Constraints.Orders, cibOrder{ID: "order-" + p.ID,
				First: p.ID, Then: name, Kind: "Mandatory"})
		}
	}

	for _, i := range t.Instances {
		var needs []cibPrimitive
		for _, c := range instancePartitions(i) {
			needs = append(needs, cibMount(i.Name+"-"+c.role, c.p, c.p.Mountpoint))
		}
		network := i.Network
		if network == nil {
			network = clusterVIPNetwork(t, i.VIP)
		}
		needs = append(needs, cibVIP(i.Name+"-ip", i.VIP, network))
		service(i.Name, i.Nodes,
			cibNewPrimitive(storeResourceID(i), "ocf", "mailfleet", "store", storeAgentParams(t, i), cibStoreOps), needs)
	}

	if d := t.Directory; d != nil {
		var needs []cibPrimitive
		if d.Data != nil {
			needs = append(needs, cibMount(d.Name+"-data", d.Data, ldapDataDir(d)))
		}
		needs = append(needs, cibVIP(d.Name+"-ip", d.VIP, clusterVIPNetwork(t, d.VIP)))
		service(d.Name, d.Nodes, cibNewPrimitive(slapdResourceID(d), "ocf", "heartbeat", "slapd", []string{
			"config", slapdConfPath,
			"user", "openldap",
			"group", "openldap",
			"services", slapdServices(d),
			// The agent's monitor (and the end of its start) is an
			// anonymous base search of every suffix, which fails with
			// 32 until the base entry exists: on an empty database
			// slapd would never count as started, and "load ldap base"
			// could never add that entry. So the suffix is not
			// searched: the monitor checks the process (and the vip agent
			// the VIP).
			"ignore_suffix", d.Base,
		}, cibSlapdOps), needs)
	}

	// Each fence device may run on (nearly) every member: the constraints
	// grow with devices × members, so the room is made at once.
	wired := cibFencedMembers(members)
	n := len(cfg.Constraints.Locations)
	for _, fd := range t.Fences {
		if len(wired[fd]) > 0 {
			n += len(members)
		}
	}
	cfg.Constraints.Locations = slices.Grow(cfg.Constraints.Locations, n-len(cfg.Constraints.Locations))
	for _, fd := range t.Fences {
		p, fenced := cibStonith(fd, wired[fd], len(members))
		if p == nil {
			continue
		}
		cfg.Resources.Primitives = append(cfg.Resources.Primitives, *p)
		// The cluster is opt-in, so a fence device needs leave to run too:
		// on any member, except the one node it fences, which cannot fence
		// itself.
		for _, n := range members {
			if len(fenced) == 1 && fenced[0] == n {
				continue
			}
			cfg.Constraints.Locations = append(cfg.Constraints.Locations, cibLocation{ID: "location-" + p.ID + "-" + n.Name,
				Rsc: p.ID, Node: n.Name, Score: "0"})
		}
	}

	cfg.RscDefaults = []cibAttrs{*cibNewAttrs("rsc-options", "resource-stickiness", strconv.Itoa(cibStickiness))}

	if err := cibCheckIDs(doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// cibFencedMembers lists the members wired to each fence device, in the
// members' order.
func cibFencedMembers(members []*spec.Node) map[*spec.FenceDevice][]*spec.Node {
	wired := map[*spec.FenceDevice][]*spec.Node{}
	for _, n := range members {
		if n.Fence != nil && n.Fence.Device != nil {
			wired[n.Fence.Device] = append(wired[n.Fence.Device], n)
		}
	}
	return wired
}

// cibStonith is fence device fd as a stonith resource for the members wired
// to it, fenced (cibFencedMembers), in a cluster of size members; nil when
// none is wired. It returns fenced too.
func cibStonith(fd *spec.FenceDevice, fenced []*spec.Node, size int) (*cibPrimitive, []*spec.Node) {
	if len(fenced) == 0 {
		return nil, nil
	}
	hostMap := make([]string, len(fenced))
	for i, n := range fenced {
		hostMap[i] = n.Name + ":" + strconv.Itoa(n.Fence.Port)
	}
	var params []string
	if fd.Address.IsValid() {
		params = append(params, "ip", fd.Address.String())
	}
	if fd.Login != "" {
		params = append(params, "username", fd.Login)
	}
	if fenceHasPassword(fd) {
		params = append(params, "password", clusterSecretValue(fd.Password))
	}
	params = append(params, "pcmk_host_map", strings.Join(hostMap, ";"))
	if size == 2 {
		// Two nodes that lose each other both ask to fence: a random delay
		// lets one of them win instead of both powering off.
		params = append(params, "pcmk_delay_max", "5s")
	}
	p := cibNewPrimitive("fence-"+fd.Name, "stonith", "", fd.Agent, params, cibFenceOps)
	if fd.Kind == spec.FenceIOBarrier {
		// An I/O barrier cuts a node off the disks; the node must be let back
		// (unfenced) before it may run resources again.
		p.Meta = cibNewAttrs(p.ID+"-meta_attributes", "provides", "unfencing")
	}
	return &p, fenced
}

// clusterSecretValue is s's value, or, for renders that allow unknown
// secrets, a placeholder that names where it should have come from.
func clusterSecretValue(s spec.Secret) string {
	if s.Known {
		return s.Value
	}
	return "(secret not available: " + s.Source + ")"
}

// fenceHasPassword: a password that is set, or one the topology names but
// that could not be read (a placeholder then says which).
func fenceHasPassword(fd *spec.FenceDevice) bool {
	return fd.Password.Value != "" || (!fd.Password.Known && fd.Password.Source != "")
}

// cibCheckIDs makes sure every id of the CIB is unique and a valid XML ID:
// names that clash (an instance and the directory of one name, say) would
// make Pacemaker refuse the whole CIB.
//
// A large CIB has an id per fence device and member, so the common case,
// all good, is settled without a set of strings: every id is valid and no
// two have the same 64-bit hash (sorted, equal hashes are neighbours). Only
// when that fails are the ids compared as strings, to name the first bad
// one.
func cibCheckIDs(doc *cibDoc) error {
	valid := true
	var hashes []uint64
	if n := len(doc.Config.Constraints.Locations); n > 0 {
		hashes = make([]uint64, 0, n+64)
	}
	cibEachID(doc, func(id string) {
		valid = valid && cibIsID(id)
		hashes = append(hashes, cibHash(id))
	})
	if valid {
		slices.Sort(hashes)
		distinct := true
		for i := 1; i < len(hashes) && distinct; i++ {
			distinct = hashes[i] != hashes[i-1]
		}
		if distinct {
			return nil
		}
	}
	seen := map[string]bool{}
	var bad error
	cibEachID(doc, func(id string) {
		switch {
		case bad != nil:
		case !cibIsID(id):
			bad = fmt.Errorf("cib: %q is not a valid Pacemaker id (letters, digits, '-', '_', '.', starting with a letter or '_')", id)
		case seen[id]:
			bad = fmt.Errorf("cib: id %q is used twice", id)
		default:
			seen[id] = true
		}
	})
	return bad
}

// cibHash is the 64-bit FNV-1a hash of id.
func cibHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// cibEachID calls fn with every id of doc, in document order.
func cibEachID(doc *cibDoc, fn func(id string)) {
	attrs := func(a *cibAttrs) {
		if a == nil {
			return
		}
		fn(a.ID)
		for _, p := range a.Pairs {
			fn(p.ID)
		}
	}
	prim := func(p *cibPrimitive) {
		fn(p.ID)
		attrs(p.Params)
		attrs(p.Meta)
		for _, o := range p.Ops {
			fn(o.ID)
		}
	}
	c := &doc.Config
	for i := range c.CRMConfig {
		attrs(&c.CRMConfig[i])
	}
	for i := range c.Resources.Groups {
		g := &c.Resources.Groups[i]
		fn(g.ID)
		for j := range g.Primitives {
			prim(&g.Primitives[j])
		}
	}
	for i := range c.Resources.Primitives {
		prim(&c.Resources.Primitives[i])
	}
	for i := range c.Constraints.Locations {
		fn(c.Constraints.Locations[i].ID)
	}
	for i := range c.Constraints.Colocations {
		fn(c.Constraints.Colocations[i].ID)
	}
	for i := range c.Constraints.Orders {
		fn(c.Constraints.Orders[i].ID)
	}
	for i := range c.RscDefaults {
		attrs(&c.RscDefaults[i])
	}
}

// cibIsID reports whether s is an XML NCName made of ASCII letters, digits,
// '-', '_' and '.', which is what Pacemaker's schema wants of an id.
func cibIsID(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// --- the RHCS cluster.conf of the reference (legacy sites) ---
