package render

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/programs"
	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

var clMembers = []string{"axigenode1", "axigenode2", "ldapnode", "standby"}

// clTool finds a validator. A missing one fails the test with the Debian
// package to install: CI installs them, so a skip would hide a hole.
func clTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if programs.Package(name) != pkg {
		t.Fatalf("%s belongs to %s, not %s (internal/programs)", name, programs.Package(name), pkg)
	}
	return programs.Require(t, name)
}

func clWrite(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClusterFilesReference(t *testing.T) {
	topo := spectest.Reference()
	out := renderWith(t, topo, Options{}, renderCluster)
	key := NewKeys(topo.Site.Secret.Value).Bytes("corosync/authkey", 256)
	for i, node := range clMembers {
		h := out.Host(node)
		if got := strings.Join(h.Roles, ","); node == "ldapnode" || node == "standby" {
			if got != "backend,directory" {
				t.Errorf("%s roles = %s, want backend,directory", node, got)
			}
		} else if got != "backend" {
			t.Errorf("%s roles = %s, want backend", node, got)
		}
		for _, p := range clusterPackages {
			if !slices.Contains(h.Packages, p) {
				t.Errorf("%s lacks package %s: %v", node, p, h.Packages)
			}
		}
		if dir := node == "ldapnode" || node == "standby"; dir != slices.Contains(h.Packages, "slapd") {
			t.Errorf("%s: slapd package = %v, want %v", node, !dir, dir)
		}

		// corosync first everywhere (64), Pacemaker in the next phase (66).
		const stack = "restart corosync@64, start pacemaker@66"
		conf := fileAt(t, out, node, corosyncConfPath)
		if conf.Sensitive || conf.Mode != 0o644 || actionSummary(conf) != stack {
			t.Errorf("%s corosync.conf: mode %o sensitive %v actions %s", node, conf.Mode, conf.Sensitive, actionSummary(conf))
		}
		ak := fileAt(t, out, node, corosyncKeyPath)
		if !ak.Sensitive || ak.Mode != 0o400 || ak.Owner != "root" || !bytes.Equal(ak.Content, key) || actionSummary(ak) != stack {
			t.Errorf("%s authkey: mode %o sensitive %v %d bytes, from the site secret %v, actions %s",
				node, ak.Mode, ak.Sensitive, len(ak.Content), bytes.Equal(ak.Content, key), actionSummary(ak))
		}
		cib := fileAt(t, out, node, cibPath)
		if !cib.Sensitive || cib.Mode != 0o600 {
			t.Errorf("%s cib.xml: mode %o sensitive %v", node, cib.Mode, cib.Sensitive)
		}
		// Only the first member by name loads the CIB.
		if i == 0 {
			if a := soleAction(cib); a == nil || a.Name != "load cib" || a.Order != OrderCluster ||
				!strings.HasSuffix(a.Command, "cibadmin --replace --xml-file "+cibPath) {
				t.Errorf("%s cib.xml actions = %s", node, actionSummary(cib))
			}
		} else if len(cib.Actions) > 0 {
			t.Errorf("%s cib.xml actions = %s, want none (only %s loads it)", node, actionSummary(cib), clMembers[0])
		}
		rhcs := fileAt(t, out, node, rhcsConfPath)
		if !rhcs.Sensitive || rhcs.Mode != 0o600 || len(rhcs.Actions) > 0 {
			t.Errorf("%s cluster.conf: mode %o sensitive %v actions %s", node, rhcs.Mode, rhcs.Sensitive, actionSummary(rhcs))
		}
		// Every member gets the same bytes.
		first := out.Host(clMembers[0])
		for _, f := range h.Files {
			if g := fileAt(t, out, first.Node, f.Path); !bytes.Equal(f.Content, g.Content) {
				t.Errorf("%s differs between %s and %s", f.Path, node, first.Node)
			}
		}
	}
	for _, node := range []string{"proxy1", "loadbalancer", "router"} {
		if h := out.Host(node); len(h.Files) != 0 || slices.Contains(h.Roles, "backend") {
			t.Errorf("%s is not a backend node but has %d files, roles %v", node, len(h.Files), h.Roles)
		}
	}
}

// coroSection is a parsed corosync.conf section: key: value lines and
// subsections by name, in order.
type coroSection struct {
	vals map[string]string
	subs map[string][]*coroSection
}

func parseCorosync(t *testing.T, content []byte) *coroSection {
	t.Helper()
	newSection := func() *coroSection {
		return &coroSection{vals: map[string]string{}, subs: map[string][]*coroSection{}}
	}
	stack := []*coroSection{newSection()}
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		cur := stack[len(stack)-1]
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasSuffix(line, "{"):
			s := newSection()
			name := strings.TrimSpace(strings.TrimSuffix(line, "{"))
			cur.subs[name] = append(cur.subs[name], s)
			stack = append(stack, s)
		case line == "}":
			if len(stack) == 1 {
				t.Fatalf("corosync.conf:%d: unbalanced }", n)
			}
			stack = stack[:len(stack)-1]
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("corosync.conf:%d: %q is not key: value", n, line)
			}
			cur.vals[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if len(stack) != 1 {
		t.Fatal("corosync.conf: unclosed section")
	}
	return stack[0]
}

func TestCorosyncConf(t *testing.T) {
	out := renderWith(t, spectest.Reference(), Options{}, renderCluster)
	conf := parseCorosync(t, fileAt(t, out, "standby", corosyncConfPath).Content)
	totem := conf.subs["totem"][0].vals
	for k, want := range map[string]string{"cluster_name": "example", "transport": "knet", "token": "500",
		"token_coefficient": "0", "consensus": "600", "crypto_cipher": "aes256", "crypto_hash": "sha256",
		"keyfile": corosyncKeyPath} {
		if totem[k] != want {
			t.Errorf("totem %s = %q, want %q", k, totem[k], want)
		}
	}
	nodes := conf.subs["nodelist"][0].subs["node"]
	want := [][3]string{{"10.0.0.11", "1", "axigenode1"}, {"10.0.0.12", "2", "axigenode2"}, {"10.0.0.100", "3", "ldapnode"}, {"10.0.0.13", "4", "standby"}}
	if len(nodes) != len(want) {
		t.Fatalf("%d nodes in the nodelist, want %d", len(nodes), len(want))
	}
	for i, n := range nodes {
		if got := [3]string{n.vals["ring0_addr"], n.vals["nodeid"], n.vals["name"]}; got != want[i] {
			t.Errorf("node %d = %v, want %v", i, got, want[i])
		}
	}
	q := conf.subs["quorum"][0].vals
	if q["provider"] != "corosync_votequorum" || q["two_node"] != "" {
		t.Errorf("quorum = %v, want votequorum without two_node for four nodes", q)
	}
	if l := conf.subs["logging"][0].vals; l["logfile"] != corosyncLogPath || l["to_logfile"] != "yes" {
		t.Errorf("logging = %v", l)
	}
}

// TestCorosyncCheck runs corosync -t on the rendered corosync.conf. It
// only passes on a host that owns one of the nodelist's addresses, so it runs
// in a network namespace of its own (unshare -n) holding axigenode1's
// address on its loopback: nothing leaves the namespace.
func TestCorosyncCheck(t *testing.T) {
	corosync := clTool(t, "corosync", "corosync")
	unshare := clTool(t, "unshare", "util-linux")
	ip := clTool(t, "ip", "iproute2")
	if os.Geteuid() != 0 {
		t.Fatal("corosync -t runs in a network namespace of its own, which needs root (as CI has)")
	}
	topo := spectest.Reference()
	out := renderWith(t, topo, Options{}, renderCluster)
	dir := t.TempDir()
	key := clWrite(t, dir, "authkey", fileAt(t, out, "axigenode1", corosyncKeyPath).Content)
	conf := strings.NewReplacer(corosyncKeyPath, key, corosyncLogPath, filepath.Join(dir, "corosync.log")).
		Replace(string(fileAt(t, out, "axigenode1", corosyncConfPath).Content))
	path := clWrite(t, dir, "corosync.conf", []byte(conf))
	check := func(addr string) error {
		script := ip + " link set lo up && " + ip + " addr add " + addr + "/32 dev lo && exec " + corosync + " -t -c " + path
		msg, err := exec.Command(unshare, "--net", "sh", "-c", script).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, msg)
		}
		return nil
	}
	if err := check("10.0.0.11"); err != nil {
		t.Errorf("corosync -t on axigenode1: %v", err)
	}
	// The check is real: a host that owns no member address fails it.
	if err := check("10.0.0.99"); err == nil {
		t.Error("corosync -t passed on a host that is no member")
	}
}

// clTwoNodes is the reference with one instance and no directory: two
// backend nodes.
func clTwoNodes() *spec.Topology {
	topo := spectest.Reference()
	topo.Instances = topo.Instances[:1]
	topo.Directory = nil
	return topo
}

func TestClusterTwoNodes(t *testing.T) {
	out := renderWith(t, clTwoNodes(), Options{}, renderCluster)
	conf := parseCorosync(t, fileAt(t, out, "axigenode1", corosyncConfPath).Content)
	if q := conf.subs["quorum"][0].vals; q["two_node"] != "1" {
		t.Errorf("quorum = %v, want two_node: 1", q)
	}
	if n := len(conf.subs["nodelist"][0].subs["node"]); n != 2 {
		t.Errorf("%d nodes, want 2", n)
	}
	if out.Host("ldapnode").Files != nil {
		t.Error("ldapnode is in no node list but got files")
	}
	cib := clParseCIB(t, fileAt(t, out, "axigenode1", cibPath).Content)
	if got := cib.param("fence-apc1", "pcmk_delay_max"); got == "" {
		t.Error("two nodes: the stonith resource has no pcmk_delay_max against a fence race")
	}
	if got := cib.param("fence-apc1", "pcmk_host_map"); got != "axigenode1:2;standby:4" {
		t.Errorf("pcmk_host_map = %q", got)
	}
	rhcs := clParseRHCS(t, fileAt(t, out, "axigenode1", rhcsConfPath).Content)
	if rhcs.CMan == nil || rhcs.CMan.TwoNode != "1" || rhcs.CMan.ExpectedVotes != "1" {
		t.Errorf("cluster.conf cman = %+v, want two_node 1, expected_votes 1", rhcs.CMan)
	}
}

// The CIB as a test reads it, independent of the renderer's types.
type clCIB struct {
	XMLName      xml.Name `xml:"cib"`
	ValidateWith string   `xml:"validate-with,attr"`
	AdminEpoch   *string  `xml:"admin_epoch,attr"`
	Epoch        *string  `xml:"epoch,attr"`
	NumUpdates   *string  `xml:"num_updates,attr"`
	FeatureSet   *string  `xml:"crm_feature_set,attr"`
	Props        []clNV   `xml:"configuration>crm_config>cluster_property_set>nvpair"`
	Groups       []struct {
		ID         string     `xml:"id,attr"`
		Primitives []clCIBRsc `xml:"primitive"`
	} `xml:"configuration>resources>group"`
	Primitives []clCIBRsc `xml:"configuration>resources>primitive"`
	Locations  []struct {
		Rsc   string `xml:"rsc,attr"`
		Node  string `xml:"node,attr"`
		Score string `xml:"score,attr"`
	} `xml:"configuration>constraints>rsc_location"`
	Colocations []struct {
		Rsc     string `xml:"rsc,attr"`
		WithRsc string `xml:"with-rsc,attr"`
		Score   string `xml:"score,attr"`
	} `xml:"configuration>constraints>rsc_colocation"`
	Orders []struct {
		First string `xml:"first,attr"`
		Then  string `xml:"then,attr"`
		Kind  string `xml:"kind,attr"`
	} `xml:"configuration>constraints>rsc_order"`
	Defaults []clNV `xml:"configuration>rsc_defaults>meta_attributes>nvpair"`
}

// needs lists what group needs, as "rsc=kind" of the primitives that are
// colocated with it and ordered before it.
func (c *clCIB) needs(group string) string {
	var s []string
	for _, col := range c.Colocations {
		if col.WithRsc != group || col.Score != "INFINITY" {
			continue
		}
		ordered := false
		for _, o := range c.Orders {
			ordered = ordered || o.First == col.Rsc && o.Then == group && o.Kind == "Mandatory"
		}
		if r := c.rsc(col.Rsc); r != nil && ordered {
			s = append(s, col.Rsc+"="+r.Type)
		}
	}
	return strings.Join(s, " ")
}

type clNV struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type clCIBRsc struct {
	ID       string `xml:"id,attr"`
	Class    string `xml:"class,attr"`
	Provider string `xml:"provider,attr"`
	Type     string `xml:"type,attr"`
	Params   []clNV `xml:"instance_attributes>nvpair"`
	Ops      []struct {
		Name     string `xml:"name,attr"`
		Interval string `xml:"interval,attr"`
		Timeout  string `xml:"timeout,attr"`
	} `xml:"operations>op"`
}

func clParseCIB(t *testing.T, content []byte) *clCIB {
	t.Helper()
	var c clCIB
	if err := xml.Unmarshal(content, &c); err != nil {
		t.Fatalf("cib.xml does not parse: %v", err)
	}
	return &c
}

func (c *clCIB) rsc(id string) *clCIBRsc {
	for i := range c.Primitives {
		if c.Primitives[i].ID == id {
			return &c.Primitives[i]
		}
	}
	for _, g := range c.Groups {
		for i := range g.Primitives {
			if g.Primitives[i].ID == id {
				return &g.Primitives[i]
			}
		}
	}
	return nil
}

func (c *clCIB) param(rsc, name string) string {
	if r := c.rsc(rsc); r != nil {
		for _, p := range r.Params {
			if p.Name == name {
				return p.Value
			}
		}
	}
	return ""
}

func (c *clCIB) locations(rsc string) string {
	var s []string
	for _, l := range c.Locations {
		if l.Rsc == rsc {
			s = append(s, l.Node+"="+l.Score)
		}
	}
	return strings.Join(s, " ")
}

func TestCIBReference(t *testing.T) {
	out := renderWith(t, spectest.Reference(), Options{}, renderCluster)
	cib := clParseCIB(t, fileAt(t, out, "axigenode1", cibPath).Content)

	if cib.ValidateWith != "pacemaker-3.0" || cib.AdminEpoch == nil || cib.Epoch == nil || cib.NumUpdates == nil {
		t.Errorf("cib attributes: validate-with %q, admin_epoch/epoch/num_updates present: %v %v %v",
			cib.ValidateWith, cib.AdminEpoch != nil, cib.Epoch != nil, cib.NumUpdates != nil)
	}
	if cib.FeatureSet != nil {
		t.Errorf("crm_feature_set = %q: leave it for the cluster to stamp", *cib.FeatureSet)
	}
	props := map[string]string{}
	for _, p := range cib.Props {
		props[p.Name] = p.Value
	}
	if props["stonith-enabled"] != "true" || props["no-quorum-policy"] != "stop" || props["symmetric-cluster"] != "false" ||
		props["batch-limit"] != "30" || props["load-threshold"] != "1000%" || props["node-action-limit"] != "20" {
		t.Errorf("crm_config = %v", props)
	}
	if len(cib.Defaults) != 1 || cib.Defaults[0].Name != "resource-stickiness" || cib.Defaults[0].Value != "100" {
		t.Errorf("rsc_defaults = %v", cib.Defaults)
	}

	// Groups: the service; the partitions and the VIP beside it, started
	// before it, all at once.
	var groups []string
	for _, g := range cib.Groups {
		var members []string
		for _, p := range g.Primitives {
			members = append(members, p.ID+"="+p.Class+":"+p.Provider+":"+p.Type)
			for _, op := range p.Ops {
				if op.Name == "monitor" && (op.Interval == "" || op.Interval == "0s" || op.Timeout == "") {
					t.Errorf("%s monitor: interval %q timeout %q", p.ID, op.Interval, op.Timeout)
				}
			}
			if len(p.Ops) == 0 || p.Ops[0].Name != "monitor" {
				t.Errorf("%s has no monitor operation", p.ID)
			}
		}
		groups = append(groups, g.ID+"["+strings.Join(members, " ")+"]")
	}
	want := []string{
		"AXIGEN1[AXIGEN1-store=ocf:mailfleet:store]",
		"AXIGEN2[AXIGEN2-store=ocf:mailfleet:store]",
		"ldap[ldap-slapd=ocf:heartbeat:slapd]",
	}
	if strings.Join(groups, "\n") != strings.Join(want, "\n") {
		t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(groups, "\n"), strings.Join(want, "\n"))
	}
	for g, want := range map[string]string{
		"AXIGEN1": "AXIGEN1-storage=mount AXIGEN1-queue=mount AXIGEN1-run=mount AXIGEN1-ip=vip",
		"AXIGEN2": "AXIGEN2-storage=mount AXIGEN2-queue=mount AXIGEN2-run=mount AXIGEN2-ip=vip",
		"ldap":    "ldap-data=mount ldap-ip=vip",
	} {
		if got := cib.needs(g); got != want {
			t.Errorf("%s needs %q, want %q", g, got, want)
		}
	}
	for rsc, params := range map[string]map[string]string{
		"AXIGEN1-storage": {"device": "/dev/sdb1", "directory": "/var/opt/AXIGEN1/domains", "fstype": "ext4"},
		"AXIGEN2-run":     {"device": "/dev/sdc3", "directory": "/var/opt/AXIGEN2/run", "fstype": "ext4"},
		"AXIGEN1-ip":      {"ip": "10.0.0.201", "cidr_netmask": "24"},
		"AXIGEN2-store":   {"config": "/etc/mailfleet/store-AXIGEN2.json"},
		"ldap-data":       {"device": "/dev/sda1", "directory": "/var/lib/ldap"},
		"ldap-ip":         {"ip": "10.0.0.210", "cidr_netmask": "24"},
		"ldap-slapd":      {"config": "/etc/ldap/slapd.conf", "services": "ldap://10.0.0.210:389/ ldapi:///", "user": "openldap"},
		"fence-apc1": {"ip": "10.0.0.250", "username": "apc", "password": "fence-pw",
			"pcmk_host_map": "axigenode1:2;axigenode2:3;ldapnode:1;standby:4"},
	} {
		for name, value := range params {
			if got := cib.param(rsc, name); got != value {
				t.Errorf("%s %s = %q, want %q", rsc, name, got, value)
			}
		}
	}
	if f := cib.rsc("fence-apc1"); f == nil || f.Class != "stonith" || f.Type != "fence_apc" || f.Provider != "" {
		t.Errorf("fence-apc1 = %+v, want a stonith:fence_apc primitive", f)
	}
	if cib.param("fence-apc1", "pcmk_delay_max") != "" {
		t.Error("pcmk_delay_max set with four nodes: only two-node clusters race")
	}

	for rsc, want := range map[string]string{
		"AXIGEN1":     "axigenode1=200 standby=100",
		"AXIGEN2":     "axigenode2=200 standby=100",
		"ldap":        "ldapnode=200 standby=100",
		"fence-apc1":  "axigenode1=0 axigenode2=0 ldapnode=0 standby=0",
		"AXIGEN1-run": "axigenode1=0 standby=0",
		"ldap-ip":     "ldapnode=0 standby=0",
	} {
		if got := cib.locations(rsc); got != want {
			t.Errorf("locations of %s = %q, want %q", rsc, got, want)
		}
	}
}

func TestCIBLocationScores(t *testing.T) {
	for pos, want := range []int{200, 100, 50, 25, 12, 6, 3, 1, 1, 1} {
		if got := cibLocationScore(pos); got != want {
			t.Errorf("score at %d = %d, want %d", pos, got, want)
		}
	}
}

func TestCIBVerify(t *testing.T) {
	crmVerify := clTool(t, "crm_verify", "pacemaker-cli-utils")
	for name, topo := range map[string]*spec.Topology{"reference": spectest.Reference(), "two-nodes": clTwoNodes()} {
		out := renderWith(t, topo, Options{}, renderCluster)
		p := clWrite(t, t.TempDir(), "cib.xml", fileAt(t, out, "axigenode1", cibPath).Content)
		cmd := exec.Command(crmVerify, "--xml-file", p, "-V")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: crm_verify: %v\n%s", name, err, msg)
		}
	}
}

// TestCIBPlacement runs the CIB through Pacemaker's own scheduler
// (crm_simulate): where each group starts, where it goes when its node
// fails, and that it does not come back on its own.
func TestCIBPlacement(t *testing.T) {
	testutil.Long(t)
	sim := clTool(t, "crm_simulate", "pacemaker-cli-utils")
	crmResource := clTool(t, "crm_resource", "pacemaker-cli-utils")
	dir := t.TempDir()
	out := renderWith(t, spectest.Reference(), Options{}, renderCluster)
	state := clWrite(t, dir, "cib.xml", fileAt(t, out, "axigenode1", cibPath).Content)
	step := 0
	// run applies an event, then lets the scheduler run until it has
	// nothing left to do (probes, starts, monitors).
	run := func(event ...string) {
		t.Helper()
		for i := 0; i < 4; i++ {
			step++
			next := filepath.Join(dir, "state"+strings.Repeat("+", step)+".xml")
			args := append([]string{"--xml-file", state, "--quorum", "1", "--simulate", "--save-output", next}, event...)
			msg, err := exec.Command(sim, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("crm_simulate %v: %v\n%s", args, err, msg)
			}
			state, event = next, nil
		}
	}
	where := func(rsc string) string {
		t.Helper()
		cmd := exec.Command(crmResource, "--quiet", "--locate", "--resource", rsc)
		cmd.Env = append(os.Environ(), "CIB_file="+state)
		msg, err := cmd.Output()
		if err != nil {
			t.Fatalf("crm_resource --locate %s: %v", rsc, err)
		}
		return strings.TrimSpace(string(msg))
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		for rsc, node := range want {
			if got := where(rsc); got != node {
				t.Errorf("%s: %s runs on %q, want %q", when, rsc, got, node)
			}
		}
	}

	run("--node-up", "axigenode1", "--node-up", "axigenode2", "--node-up", "ldapnode", "--node-up", "standby")
	check("all up", map[string]string{"AXIGEN1": "axigenode1", "AXIGEN1-store": "axigenode1", "AXIGEN2": "axigenode2",
		"ldap": "ldapnode", "ldap-slapd": "ldapnode"})
	if got := where("fence-apc1"); got == "" {
		t.Error("all up: the fence device runs nowhere (the opt-in cluster needs leave for it)")
	}

	check("all up", map[string]string{"AXIGEN1-storage": "axigenode1", "AXIGEN1-ip": "axigenode1", "ldap-data": "ldapnode"})

	run("--node-fail", "axigenode1")
	check("axigenode1 failed", map[string]string{"AXIGEN1": "standby", "AXIGEN1-ip": "standby", "AXIGEN1-storage": "standby",
		"AXIGEN1-queue": "standby", "AXIGEN1-run": "standby", "AXIGEN2": "axigenode2", "ldap": "ldapnode"})

	run("--node-up", "axigenode1")
	check("axigenode1 back", map[string]string{"AXIGEN1": "standby", "AXIGEN1-storage": "standby", "AXIGEN2": "axigenode2"})

	run("--node-fail", "ldapnode")
	check("ldapnode failed", map[string]string{"ldap": "standby", "ldap-slapd": "standby", "ldap-data": "standby", "ldap-ip": "standby"})
}

func TestCIBAdminEpoch(t *testing.T) {
	first := renderWith(t, spectest.Reference(), Options{}, renderCluster)
	v1 := fileAt(t, first, "axigenode1", cibPath).Content
	r1 := fileAt(t, first, "axigenode1", rhcsConfPath).Content
	if e, _ := cibAdminEpoch(v1); e != 1 {
		t.Fatalf("admin_epoch without a current CIB = %d, want 1", e)
	}
	current := func(files map[string][]byte) Options {
		return Options{Current: func(node, path string) ([]byte, bool) {
			c, ok := files[node+path]
			return c, ok
		}}
	}

	// Unchanged: the same bytes, so the plan finds nothing to do.
	same := renderWith(t, spectest.Reference(), current(map[string][]byte{"axigenode1" + cibPath: v1, "standby" + cibPath: v1,
		"axigenode1" + rhcsConfPath: r1}), renderCluster)
	if got := fileAt(t, same, "axigenode1", cibPath).Content; !bytes.Equal(got, v1) {
		t.Error("an unchanged CIB was rendered with other bytes")
	}
	if got := fileAt(t, same, "axigenode1", rhcsConfPath).Content; !bytes.Equal(got, r1) {
		t.Error("an unchanged cluster.conf was rendered with other bytes")
	}

	// Changed: admin_epoch and config_version grow past the largest found.
	changed := spectest.Reference()
	changed.Instances[0].Nodes = changed.Instances[0].Nodes[:1]
	old := bytes.Replace(v1, []byte(`admin_epoch="1"`), []byte(`admin_epoch="7"`), 1)
	grown := renderWith(t, changed, current(map[string][]byte{"axigenode1" + cibPath: v1, "standby" + cibPath: old,
		"axigenode2" + rhcsConfPath: r1}), renderCluster)
	if e, _ := cibAdminEpoch(fileAt(t, grown, "axigenode1", cibPath).Content); e != 8 {
		t.Errorf("admin_epoch after a change = %d, want 8", e)
	}
	if v, _ := rhcsConfigVersion(fileAt(t, grown, "ldapnode", rhcsConfPath).Content); v != 2 {
		t.Errorf("config_version after a change = %d, want 2", v)
	}

	// Back to the first topology, whose CIB some node still has at epoch 1:
	// the cluster holds a larger one now, so it must grow again.
	g := fileAt(t, grown, "axigenode1", cibPath).Content
	back := renderWith(t, spectest.Reference(), current(map[string][]byte{"axigenode1" + cibPath: g, "standby" + cibPath: v1}), renderCluster)
	if e, _ := cibAdminEpoch(fileAt(t, back, "axigenode1", cibPath).Content); e != 9 {
		t.Errorf("admin_epoch going back to an older CIB = %d, want 9", e)
	}
}

// The RHCS cluster.conf as a test reads it.
type clRHCS struct {
	XMLName       xml.Name `xml:"cluster"`
	Name          string   `xml:"name,attr"`
	ConfigVersion string   `xml:"config_version,attr"`
	CMan          *struct {
		TwoNode       string `xml:"two_node,attr"`
		ExpectedVotes string `xml:"expected_votes,attr"`
	} `xml:"cman"`
	Nodes []struct {
		Name    string `xml:"name,attr"`
		NodeID  string `xml:"nodeid,attr"`
		Methods []struct {
			Devices []struct {
				Name string `xml:"name,attr"`
				Port string `xml:"port,attr"`
			} `xml:"device"`
		} `xml:"fence>method"`
	} `xml:"clusternodes>clusternode"`
	FenceDevices []struct {
		Name   string `xml:"name,attr"`
		Agent  string `xml:"agent,attr"`
		IPAddr string `xml:"ipaddr,attr"`
		Login  string `xml:"login,attr"`
		Passwd string `xml:"passwd,attr"`
	} `xml:"fencedevices>fencedevice"`
	Domains []struct {
		Name    string `xml:"name,attr"`
		Ordered string `xml:"ordered,attr"`
		Nodes   []struct {
			Name     string `xml:"name,attr"`
			Priority string `xml:"priority,attr"`
		} `xml:"failoverdomainnode"`
	} `xml:"rm>failoverdomains>failoverdomain"`
	Scripts []struct {
		Name string `xml:"name,attr"`
		File string `xml:"file,attr"`
	} `xml:"rm>resources>script"`
	Services []struct {
		Name   string `xml:"name,attr"`
		Domain string `xml:"domain,attr"`
		FS     []struct {
			Device     string `xml:"device,attr"`
			Mountpoint string `xml:"mountpoint,attr"`
		} `xml:"fs"`
		IP []struct {
			Address string `xml:"address,attr"`
		} `xml:"ip"`
		Scripts []struct {
			Ref string `xml:"ref,attr"`
		} `xml:"script"`
	} `xml:"rm>service"`
}

func clParseRHCS(t *testing.T, content []byte) *clRHCS {
	t.Helper()
	var c clRHCS
	if err := xml.Unmarshal(content, &c); err != nil {
		t.Fatalf("cluster.conf does not parse: %v", err)
	}
	return &c
}

func TestRHCSClusterConf(t *testing.T) {
	out := renderWith(t, spectest.Reference(), Options{}, renderCluster)
	c := clParseRHCS(t, fileAt(t, out, "ldapnode", rhcsConfPath).Content)
	if c.Name != "example" || c.ConfigVersion != "1" || c.CMan != nil {
		t.Errorf("cluster name %q config_version %q cman %+v", c.Name, c.ConfigVersion, c.CMan)
	}
	var nodes []string
	for _, n := range c.Nodes {
		s := n.Name + "#" + n.NodeID
		for _, m := range n.Methods {
			for _, d := range m.Devices {
				s += " " + d.Name + ":" + d.Port
			}
		}
		nodes = append(nodes, s)
	}
	if got, want := strings.Join(nodes, ", "), "axigenode1.backend.cluster#1 apc1:2, axigenode2.backend.cluster#2 apc1:3, ldapnode.backend.cluster#3 apc1:1, standby.backend.cluster#4 apc1:4"; got != want {
		t.Errorf("clusternodes = %s\nwant %s", got, want)
	}
	if len(c.FenceDevices) != 1 || c.FenceDevices[0].Agent != "fence_apc" || c.FenceDevices[0].IPAddr != "10.0.0.250" ||
		c.FenceDevices[0].Login != "apc" || c.FenceDevices[0].Passwd != "fence-pw" {
		t.Errorf("fencedevices = %+v", c.FenceDevices)
	}
	var domains []string
	for _, d := range c.Domains {
		s := d.Name + " ordered=" + d.Ordered + ":"
		for _, n := range d.Nodes {
			s += " " + n.Name + "=" + n.Priority
		}
		domains = append(domains, s)
	}
	if got, want := strings.Join(domains, "; "), "AXIGEN1 ordered=1: axigenode1.backend.cluster=1 standby.backend.cluster=2; "+
		"AXIGEN2 ordered=1: axigenode2.backend.cluster=1 standby.backend.cluster=2; ldap ordered=1: ldapnode.backend.cluster=1 standby.backend.cluster=2"; got != want {
		t.Errorf("failoverdomains = %s\nwant %s", got, want)
	}
	var services []string
	for _, s := range c.Services {
		x := s.Name + "@" + s.Domain + ":"
		for _, fs := range s.FS {
			x += " " + fs.Device + "=" + fs.Mountpoint
		}
		for _, ip := range s.IP {
			x += " ip " + ip.Address
		}
		for _, sc := range s.Scripts {
			x += " script " + sc.Ref
		}
		services = append(services, x)
	}
	if got, want := strings.Join(services, "\n"), "AXIGEN1@AXIGEN1: /dev/sdb1=/var/opt/AXIGEN1/domains /dev/sdb2=/var/opt/AXIGEN1/queue /dev/sdb3=/var/opt/AXIGEN1/run ip 10.0.0.201 script mailfleet-store\n"+
		"AXIGEN2@AXIGEN2: /dev/sdc1=/var/opt/AXIGEN2/domains /dev/sdc2=/var/opt/AXIGEN2/queue /dev/sdc3=/var/opt/AXIGEN2/run ip 10.0.0.202 script mailfleet-store\n"+
		"ldap@ldap: /dev/sda1=/var/lib/ldap ip 10.0.0.210 script slapd"; got != want {
		t.Errorf("services:\n%s\nwant:\n%s", got, want)
	}
	scripts := map[string]string{}
	for _, s := range c.Scripts {
		scripts[s.Name] = s.File
	}
	if scripts["mailfleet-store"] != storeAgentPath || scripts["slapd"] != "/etc/init.d/slapd" {
		t.Errorf("script resources = %v", scripts)
	}
}

func TestClusterEscapesXML(t *testing.T) {
	topo := spectest.Reference()
	topo.Fences[0].Password.Value = `p<w>&"'`
	out := renderWith(t, topo, Options{}, renderCluster)
	if got := clParseCIB(t, fileAt(t, out, "standby", cibPath).Content).param("fence-apc1", "password"); got != topo.Fences[0].Password.Value {
		t.Errorf("cib password = %q, want %q", got, topo.Fences[0].Password.Value)
	}
	if got := clParseRHCS(t, fileAt(t, out, "standby", rhcsConfPath).Content).FenceDevices[0].Passwd; got != topo.Fences[0].Password.Value {
		t.Errorf("cluster.conf passwd = %q, want %q", got, topo.Fences[0].Password.Value)
	}
}

func TestClusterIDClash(t *testing.T) {
	topo := spectest.Reference()
	topo.Directory.Name = "AXIGEN1"
	b := newBuilder(topo)
	if err := renderCluster(b); err == nil || !strings.Contains(err.Error(), `"AXIGEN1" is used twice`) {
		t.Errorf("an instance and the directory of one name: err = %v", err)
	}
	topo = spectest.Reference()
	topo.Instances[0].Name = "1st"
	if err := renderCluster(newBuilder(topo)); err == nil || !strings.Contains(err.Error(), "not a valid Pacemaker id") {
		t.Errorf("an instance name that is no XML id: err = %v", err)
	}
}

func TestClusterNone(t *testing.T) {
	topo := spectest.Reference()
	topo.Instances, topo.Directory = nil, nil
	out := renderWith(t, topo, Options{}, renderCluster)
	for _, h := range out.Hosts {
		if len(h.Files) != 0 {
			t.Errorf("no instance and no directory, but %s has files", h.Node)
		}
	}
}

func TestClusterDeterministic(t *testing.T) {
	a := renderWith(t, spectest.Reference(), Options{}, renderCluster, renderLDAP)
	b := renderWith(t, spectest.Reference(), Options{}, renderCluster, renderLDAP)
	for _, h := range a.Hosts {
		for _, f := range h.Files {
			if g := fileAt(t, b, h.Node, f.Path); !bytes.Equal(f.Content, g.Content) || f.Mode != g.Mode {
				t.Errorf("%s on %s differs between two renders", f.Path, h.Node)
			}
		}
	}
}

func TestClusterGolden(t *testing.T) {
	out := renderWith(t, spectest.Reference(), Options{}, renderCluster)
	for _, p := range []string{corosyncConfPath, cibPath, rhcsConfPath} {
		checkGolden(t, "axigenode1"+p, fileAt(t, out, "axigenode1", p).Content)
	}
}

func TestClusterActionsAreShell(t *testing.T) {
	sh := clTool(t, "sh", "dash")
	topo := spectest.Reference()
	acts := []*Action{restartCorosyncAction(), startPacemakerAction(), loadCIBAction(), restartSlapdAction(topo.Directory),
		loadLDAPBaseAction(topo.Directory), restartStoreAction(topo.Instances[0])}
	for _, mode := range []spec.LDAPTLS{spec.LDAPTLSStartTLS, spec.LDAPTLSLDAPS} {
		d := *topo.Directory
		d.TLSMode, d.TLS = mode, &spec.TLS{Cert: "/etc/ssl/d.crt", Key: "/etc/ssl/d.key", CA: "/etc/ssl/ca it's.crt"}
		acts = append(acts, loadLDAPBaseAction(&d))
	}
	for _, a := range acts {
		if msg, err := exec.Command(sh, "-n", "-c", a.Command).CombinedOutput(); err != nil {
			t.Errorf("%s: %q is not valid sh: %v\n%s", a.Name, a.Command, err, msg)
		}
	}
}

func TestClusterUnknownSecrets(t *testing.T) {
	topo := spectest.Reference()
	topo.Fences[0].Password = spec.Secret{Source: "env MAILFLEET_FENCE"}
	topo.Directory.AdminPassword = spec.Secret{Source: "env MAILFLEET_LDAP_ADMIN"}
	out := renderWith(t, topo, Options{AllowUnknownSecrets: true}, renderCluster, renderLDAP)
	if got := clParseCIB(t, fileAt(t, out, "standby", cibPath).Content).param("fence-apc1", "password"); got != "(secret not available: env MAILFLEET_FENCE)" {
		t.Errorf("an unknown fence password renders as %q", got)
	}
	if conf := fileAt(t, out, "standby", slapdConfPath).Content; !bytes.Contains(conf, []byte("rootpw {SSHA}")) {
		t.Error("an unknown admin password left no rootpw")
	}
}
