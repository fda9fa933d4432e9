package render

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/templates"
)

// Where the cluster's files go on every backend node.
const (
	corosyncConfPath = "/etc/corosync/corosync.conf"
	corosyncKeyPath  = "/etc/corosync/authkey"
	corosyncLogPath  = "/var/log/corosync/corosync.log"
	cibPath          = "/etc/mailfleet/cib.xml"
	rhcsConfPath     = "/etc/cluster/cluster.conf"

	// corosyncKeyBytes is what corosync-keygen writes by default.
	corosyncKeyBytes = 256
	// cibSchema is the oldest schema of Pacemaker 2.x, which every 2.x
	// release validates. crm_feature_set is left for the cluster to stamp:
	// a hand-written one newer than the installed Pacemaker made the cluster
	// reject every update (LAB-NOTES).
	cibSchema = "pacemaker-3.0"
	// cibStickiness is added per active member of a group, so a group of
	// three or more members sticks with 300 or more, above any location
	// score: after a failover an instance stays where it runs, and going
	// home is a deliberate relocation (a second interruption, at a time the
	// admin picks), as with the reference's clusvcadm -r.
	cibStickiness = 100
	// storeAgentPath is the store's OCF agent (ocf:mailfleet:store); the
	// legacy cluster.conf runs it as the instances' shared script resource.
	storeAgentPath = "/usr/lib/ocf/resource.d/mailfleet/store"
)

// Corosync totem timings: a node is declared lost token + consensus after
// it stops answering, the first step of every failover. 500 ms (and the
// 1.2× consensus corosync requires) halves LAB-NOTES' 1000/1200 and was
// measured in the lab (bench/failover) without a spurious failover under a
// full test-suite load: corosync runs with real-time priority, so a busy
// machine does not delay its token. token_coefficient 0 keeps corosync
// from adding 650 ms per node beyond two. The rendered file says so too.
const (
	totemToken            = 500
	totemTokenCoefficient = 0
	totemConsensus        = 600
)

var clusterPackages = []string{"corosync", "fence-agents", "kmod", "pacemaker", "resource-agents"}

// restartCorosyncAction (re)starts corosync with Pacemaker stopped, on every
// backend node whose corosync.conf or authkey changed; startPacemakerAction
// starts Pacemaker in the next phase. apply finishes every host's actions of
// one order before any of a higher order starts, so every node's corosync
// runs before the first Pacemaker does: a node that is merely late is a
// member by then, and the others' start-up fencing does not shoot it. Both
// are enabled, so that a rebooted node joins on its own; on a first apply
// nothing runs yet and the same two steps bring the cluster up.
func restartCorosyncAction() *Action {
	return &Action{Name: "restart corosync",
		Command: "systemctl stop pacemaker; systemctl enable --quiet corosync pacemaker; systemctl restart corosync",
		Order:   OrderCorosync}
}

func startPacemakerAction() *Action {
	return &Action{Name: "start pacemaker", Command: "systemctl start pacemaker", Order: OrderPacemaker}
}

// clusterStackActions are what a change of corosync.conf or the authkey
// triggers.
func clusterStackActions() []*Action {
	return mustActions(restartCorosyncAction(), startPacemakerAction())
}

// loadCIBAction replaces the running CIB with the rendered one. The CIB
// manager needs a moment after Pacemaker (re)starts before it answers, so the
// command waits for it (two minutes at most) rather than fail the apply.
func loadCIBAction() *Action {
	return &Action{Name: "load cib",
		Command: "i=0; until cibadmin --query --scope nodes >/dev/null 2>&1 || [ $i -ge 120 ]; do i=$((i+1)); sleep 1; done; " +
			"cibadmin --replace --xml-file " + cibPath,
		Order: OrderCluster}
}

// clusterMembers returns the backend nodes (spec's BackendNodes: every node
// of an instance's or the directory's node list, sorted by name). A
// member's corosync node id is its position in this list plus one.
func clusterMembers(t *spec.Topology) []*spec.Node { return t.BackendNodes() }

// renderCluster writes the Corosync and Pacemaker configuration of every
// backend node, and the reference's RHCS cluster.conf for legacy sites.
func renderCluster(b *builder) error {
	members := clusterMembers(b.t)
	if len(members) == 0 {
		return nil
	}
	directory := map[*spec.Node]bool{}
	if d := b.t.Directory; d != nil {
		for _, n := range d.Nodes {
			directory[n] = true
		}
	}

	corosync, err := corosyncConf(b.t, members)
	if err != nil {
		return err
	}
	cib, err := buildCIB(b.t, members)
	if err != nil {
		return err
	}
	cibContent, err := b.clusterVersioned(members, cibPath, cib.stamped, cibAdminEpoch)
	if err != nil {
		return err
	}
	rhcs := buildRHCS(b.t, members)
	rhcsContent, err := b.clusterVersioned(members, rhcsConfPath, rhcs.stamped, rhcsConfigVersion)
	if err != nil {
		return err
	}
	authkey := b.keys.Bytes("corosync/authkey", corosyncKeyBytes)

	for i, n := range members {
		h := b.host(n.Name)
		h.addRole("backend")
		h.addPackages(clusterPackages...)
		if directory[n] {
			h.addRole("directory")
			h.addPackages("slapd", "ldap-utils")
		}
		files := []*File{
			{Path: corosyncConfPath, Content: corosync, Actions: clusterStackActions()},
			{Path: corosyncKeyPath, Mode: 0o400, Content: authkey, Sensitive: true, Actions: clusterStackActions()},
			{Path: cibPath, Mode: 0o600, Content: cibContent, Sensitive: true},
			{Path: rhcsConfPath, Mode: 0o600, Content: rhcsContent, Sensitive: true},
		}
		// Every member holds the CIB, so that an admin can load it from any
		// of them, but one load is enough: a second replace with the same
		// admin_epoch would be refused as old data once the cluster has
		// raised the epoch. The first member by name loads it, the same
		// node on every apply, so the plan shows one load.
		if i == 0 {
			files[2].Actions = []*Action{loadCIBAction()}
		}
		for _, f := range files {
			if err := b.add(n.Name, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// clusterVersioned renders a file whose consumer only takes a copy with a
// larger version than the one it has (the CIB's admin_epoch, cluster.conf's
// config_version). Render is pure, so the version comes from the files the
// members have now (Options.Current): the largest version found is kept when
// the file rendered with it is the one already there, and grows by one when
// anything else changed; with no current file it is 1.
func (b *builder) clusterVersioned(members []*spec.Node, path string, render func(version int) ([]byte, error), version func([]byte) (int, bool)) ([]byte, error) {
	type current struct {
		version int
		content []byte
	}
	var found []current
	highest := 0
	if b.opts.Current != nil {
		for _, n := range members {
			content, ok := b.opts.Current(n.Name, path)
			if !ok {
				continue
			}
			v, ok := version(content)
			if !ok {
				continue // unreadable: it is replaced by a larger version anyway
			}
			found = append(found, current{v, content})
			highest = max(highest, v)
		}
	}
	if highest > 0 {
		same, err := render(highest)
		if err != nil {
			return nil, err
		}
		for _, c := range found {
			if c.version == highest && bytes.Equal(c.content, same) {
				return same, nil
			}
		}
	}
	return render(highest + 1)
}

// clusterRootInt reads integer attribute name of an XML document's root.
func clusterRootInt(content []byte, name string) (int, bool) {
	dec := xml.NewDecoder(bytes.NewReader(content))
	for {
		tok, err := dec.Token()
		if err != nil {
			return 0, false
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range se.Attr {
			if a.Name.Local == name {
				v, err := strconv.Atoi(a.Value)
				return v, err == nil && v >= 0
			}
		}
		return 0, false
	}
}

func cibAdminEpoch(content []byte) (int, bool)     { return clusterRootInt(content, "admin_epoch") }
func rhcsConfigVersion(content []byte) (int, bool) { return clusterRootInt(content, "config_version") }

// clusterXMLDoc is an XML declaration, the generated-file comment and v.
func clusterXMLDoc(v any) ([]byte, error) {
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString("<!-- generated by mailfleet, do not edit -->\n")
	buf.Write(body)
	buf.WriteString("\n")
	return buf.Bytes(), nil
}

// clusterVIPNetwork returns the topology network that holds vip, or nil.
func clusterVIPNetwork(t *spec.Topology, vip netip.Addr) *spec.Network {
	for _, n := range t.Networks {
		if n.CIDR.Contains(vip) {
			return n
		}
	}
	return nil
}

// ldapDataDir is where the directory's database lives.
func ldapDataDir(d *spec.Directory) string {
	if d.Data != nil && d.Data.Mountpoint != "" {
		return d.Data.Mountpoint
	}
	return "/var/lib/ldap"
}

// clusterPartition is one shared partition of a service and its role.
type clusterPartition struct {
	role string // storage, queue, run, data: the suffix of its resource id
	p    *spec.Partition
}

func instancePartitions(i *spec.Instance) []clusterPartition {
	var out []clusterPartition
	for _, c := range []clusterPartition{{"storage", i.Storage}, {"queue", i.Queue}, {"run", i.Run}} {
		if c.p != nil {
			out = append(out, c)
		}
	}
	return out
}

func partitionFSType(p *spec.Partition) string {
	if p.FSType == "" {
		return "ext4"
	}
	return p.FSType
}

// --- corosync.conf ---

type corosyncView struct {
	Cluster                            string
	Token, TokenCoefficient, Consensus int
	KeyFile, LogFile                   string
	Nodes                              []corosyncNodeView
	TwoNode                            bool
}

type corosyncNodeView struct {
	Name, Address string
	ID            int
}

func corosyncConf(t *spec.Topology, members []*spec.Node) ([]byte, error) {
	v := corosyncView{Cluster: t.Site.Cluster, Token: totemToken, TokenCoefficient: totemTokenCoefficient,
		Consensus: totemConsensus, KeyFile: corosyncKeyPath, LogFile: corosyncLogPath, TwoNode: len(members) == 2}
	for i, n := range members {
		v.Nodes = append(v.Nodes, corosyncNodeView{Name: n.Name, Address: n.Address.String(), ID: i + 1})
	}
	return templates.Execute("corosync.conf.tmpl", v)
}

// --- the Pacemaker CIB ---

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

func cibFilesystem(id string, p *spec.Partition, mountpoint string) cibPrimitive {
	params := []string{"device", p.Device, "directory", mountpoint, "fstype", partitionFSType(p)}
	if p.Options != "" {
		params = append(params, "options", p.Options)
	}
	return cibNewPrimitive(id, "ocf", "heartbeat", "Filesystem", params, cibFSOps)
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

// cibIPaddr2 is a VIP; IPaddr2 sends the gratuitous ARP that makes the
// network find it on its new node at once.
func cibIPaddr2(id string, vip netip.Addr, network *spec.Network) cibPrimitive {
	params := []string{"ip", vip.String()}
	if network != nil {
		params = append(params, "cidr_netmask", strconv.Itoa(network.CIDR.Bits()))
	}
	return cibNewPrimitive(id, "ocf", "heartbeat", "IPaddr2", params, cibIPOps)
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
			needs = append(needs, cibFilesystem(i.Name+"-"+c.role, c.p, c.p.Mountpoint))
		}
		network := i.Network
		if network == nil {
			network = clusterVIPNetwork(t, i.VIP)
		}
		needs = append(needs, cibIPaddr2(i.Name+"-ip", i.VIP, network))
		service(i.Name, i.Nodes,
			cibNewPrimitive(storeResourceID(i), "ocf", "mailfleet", "store", storeAgentParams(t, i), cibStoreOps), needs)
	}

	if d := t.Directory; d != nil {
		var needs []cibPrimitive
		if d.Data != nil {
			needs = append(needs, cibFilesystem(d.Name+"-data", d.Data, ldapDataDir(d)))
		}
		needs = append(needs, cibIPaddr2(d.Name+"-ip", d.VIP, clusterVIPNetwork(t, d.VIP)))
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
			// searched: the monitor checks the process (and IPaddr2
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

type rhcsCluster struct {
	XMLName       xml.Name          `xml:"cluster"`
	Name          string            `xml:"name,attr"`
	ConfigVersion int               `xml:"config_version,attr"`
	CMan          *rhcsCMan         `xml:"cman,omitempty"`
	Totem         rhcsTotem         `xml:"totem"`
	Nodes         []rhcsNode        `xml:"clusternodes>clusternode"`
	FenceDevices  []rhcsFenceDevice `xml:"fencedevices>fencedevice"`
	RM            rhcsRM            `xml:"rm"`
}

type rhcsCMan struct {
	TwoNode       int `xml:"two_node,attr"`
	ExpectedVotes int `xml:"expected_votes,attr"`
}

type rhcsTotem struct {
	Token     int `xml:"token,attr"`
	Consensus int `xml:"consensus,attr"`
}

type rhcsNode struct {
	Name    string       `xml:"name,attr"`
	NodeID  int          `xml:"nodeid,attr"`
	Votes   int          `xml:"votes,attr"`
	Fence   *rhcsFence   `xml:"fence,omitempty"`
	Unfence *rhcsUnfence `xml:"unfence,omitempty"`
}

type rhcsFence struct {
	Methods []rhcsMethod `xml:"method"`
}

type rhcsUnfence struct {
	Devices []rhcsFenceRef `xml:"device"`
}

type rhcsMethod struct {
	Name    string         `xml:"name,attr"`
	Devices []rhcsFenceRef `xml:"device"`
}

type rhcsFenceRef struct {
	Name   string `xml:"name,attr"`
	Port   string `xml:"port,attr,omitempty"`
	Action string `xml:"action,attr,omitempty"`
}

type rhcsFenceDevice struct {
	Name   string `xml:"name,attr"`
	Agent  string `xml:"agent,attr"`
	IPAddr string `xml:"ipaddr,attr,omitempty"`
	Login  string `xml:"login,attr,omitempty"`
	Passwd string `xml:"passwd,attr,omitempty"`
}

type rhcsRM struct {
	Domains   []rhcsDomain  `xml:"failoverdomains>failoverdomain"`
	Resources []rhcsScript  `xml:"resources>script"`
	Services  []rhcsService `xml:"service"`
}

type rhcsDomain struct {
	Name       string           `xml:"name,attr"`
	Ordered    int              `xml:"ordered,attr"`
	Restricted int              `xml:"restricted,attr"`
	NoFailback int              `xml:"nofailback,attr"`
	Nodes      []rhcsDomainNode `xml:"failoverdomainnode"`
}

type rhcsDomainNode struct {
	Name     string `xml:"name,attr"`
	Priority int    `xml:"priority,attr"`
}

type rhcsScript struct {
	Name string `xml:"name,attr,omitempty"`
	File string `xml:"file,attr,omitempty"`
	Ref  string `xml:"ref,attr,omitempty"`
}

// rhcsService is a service of rgmanager, which starts its children by type:
// file systems, then the address, then the script, whatever their order.
type rhcsService struct {
	Name      string       `xml:"name,attr"`
	Domain    string       `xml:"domain,attr"`
	Autostart int          `xml:"autostart,attr"`
	Recovery  string       `xml:"recovery,attr"`
	FS        []rhcsFS     `xml:"fs"`
	IP        []rhcsIP     `xml:"ip"`
	Scripts   []rhcsScript `xml:"script"`
}

type rhcsFS struct {
	Name         string `xml:"name,attr"`
	Device       string `xml:"device,attr"`
	Mountpoint   string `xml:"mountpoint,attr"`
	FSType       string `xml:"fstype,attr"`
	Options      string `xml:"options,attr,omitempty"`
	ForceUnmount int    `xml:"force_unmount,attr"`
}

type rhcsIP struct {
	Address     string `xml:"address,attr"`
	MonitorLink int    `xml:"monitor_link,attr"`
}

// The shared script resources: the reference's "AXIGEN Script" is our store
// agent (rgmanager hands it the service name in OCF_RESKEY_service_name, as
// the reference relies on), and the directory runs Debian's slapd script.
const (
	rhcsStoreScript = "mailfleet-store"
	rhcsSlapdScript = "slapd"
)

func (c *rhcsCluster) stamped(version int) ([]byte, error) {
	d := *c
	d.ConfigVersion = version
	return clusterXMLDoc(&d)
}

// buildRHCS writes the topology as the reference's own cluster.conf, for
// sites that still run the Red Hat Cluster Suite. Node names are FQDNs, since
// cman finds the local node by resolving them. As in the CIB, services do
// not fail back on their own (nofailback).
func buildRHCS(t *spec.Topology, members []*spec.Node) *rhcsCluster {
	c := &rhcsCluster{Name: t.Site.Cluster, Totem: rhcsTotem{Token: totemToken, Consensus: totemConsensus}}
	if len(members) == 2 {
		c.CMan = &rhcsCMan{TwoNode: 1, ExpectedVotes: 1}
	}
	used := map[*spec.FenceDevice]bool{}
	for i, n := range members {
		node := rhcsNode{Name: n.FQDN(), NodeID: i + 1, Votes: 1}
		if f := n.Fence; f != nil && f.Device != nil {
			ref := rhcsFenceRef{Name: f.Device.Name, Port: strconv.Itoa(f.Port)}
			node.Fence = &rhcsFence{Methods: []rhcsMethod{{Name: "1", Devices: []rhcsFenceRef{ref}}}}
			if f.Device.Kind == spec.FenceIOBarrier {
				ref.Action = "on"
				node.Unfence = &rhcsUnfence{Devices: []rhcsFenceRef{ref}}
			}
			used[f.Device] = true
		}
		c.Nodes = append(c.Nodes, node)
	}
	for _, fd := range t.Fences {
		if !used[fd] {
			continue
		}
		dev := rhcsFenceDevice{Name: fd.Name, Agent: fd.Agent, Login: fd.Login}
		if fd.Address.IsValid() {
			dev.IPAddr = fd.Address.String()
		}
		if fenceHasPassword(fd) {
			dev.Passwd = clusterSecretValue(fd.Password)
		}
		c.FenceDevices = append(c.FenceDevices, dev)
	}

	domain := func(name string, nodes []*spec.Node) {
		d := rhcsDomain{Name: name, Ordered: 1, Restricted: 1, NoFailback: 1}
		for pos, n := range nodes {
			d.Nodes = append(d.Nodes, rhcsDomainNode{Name: n.FQDN(), Priority: pos + 1})
		}
		c.RM.Domains = append(c.RM.Domains, d)
	}
	fs := func(name string, p *spec.Partition, mountpoint string) rhcsFS {
		return rhcsFS{Name: name, Device: p.Device, Mountpoint: mountpoint, FSType: partitionFSType(p), Options: p.Options, ForceUnmount: 1}
	}
	if len(t.Instances) > 0 {
		c.RM.Resources = append(c.RM.Resources, rhcsScript{Name: rhcsStoreScript, File: storeAgentPath})
	}
	if t.Directory != nil {
		c.RM.Resources = append(c.RM.Resources, rhcsScript{Name: rhcsSlapdScript, File: "/etc/init.d/slapd"})
	}
	for _, i := range t.Instances {
		domain(i.Name, i.Nodes)
		svc := rhcsService{Name: i.Name, Domain: i.Name, Autostart: 1, Recovery: "relocate",
			IP:      []rhcsIP{{Address: i.VIP.String(), MonitorLink: 1}},
			Scripts: []rhcsScript{{Ref: rhcsStoreScript}}}
		for _, p := range instancePartitions(i) {
			svc.FS = append(svc.FS, fs(i.Name+"-"+p.role, p.p, p.p.Mountpoint))
		}
		c.RM.Services = append(c.RM.Services, svc)
	}
	if d := t.Directory; d != nil {
		domain(d.Name, d.Nodes)
		svc := rhcsService{Name: d.Name, Domain: d.Name, Autostart: 1, Recovery: "relocate",
			IP:      []rhcsIP{{Address: d.VIP.String(), MonitorLink: 1}},
			Scripts: []rhcsScript{{Ref: rhcsSlapdScript}}}
		if d.Data != nil {
			svc.FS = append(svc.FS, fs(d.Name+"-data", d.Data, ldapDataDir(d)))
		}
		c.RM.Services = append(c.RM.Services, svc)
	}
	return c
}

// runsHere is a shell condition: the cluster runs resource rsc on this
// node. It is false when the cluster does not run (yet) or runs rsc
// nowhere: crm_resource then prints nothing, and an empty location must
// not match an empty node name.
func runsHere(rsc string) string {
	return `{ loc=$(crm_resource --quiet --locate --resource ` + rsc + ` 2>/dev/null); ` +
		`[ -n "$loc" ] && [ "$loc" = "$(crm_node --name 2>/dev/null)" ]; }`
}
