package render

import (
	"bytes"
	"fmt"
	"github.com/mailfleet/mailfleet/internal/programs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// renderWith runs the given renderers on t as Render would, with opts.
func renderWith(t *testing.T, topo *spec.Topology, opts Options, steps ...func(*builder) error) *Output {
	t.Helper()
	b := newBuilder(topo)
	b.opts = opts
	for _, step := range steps {
		if err := step(b); err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// soleAction is f's action when it has exactly one, else nil.
func soleAction(f *File) *Action {
	if len(f.Actions) == 1 {
		return f.Actions[0]
	}
	return nil
}

// actionSummary is f's actions as "name@order" words, in their order.
func actionSummary(f *File) string {
	var words []string
	for _, a := range f.Actions {
		words = append(words, fmt.Sprintf("%s@%d", a.Name, a.Order))
	}
	return strings.Join(words, ", ")
}

func fileAt(t *testing.T, out *Output, node, path string) *File {
	t.Helper()
	h := out.Host(node)
	if h == nil {
		t.Fatalf("no host %s", node)
	}
	for _, f := range h.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("no %s on %s", path, node)
	return nil
}

// zoneRecords parses a rendered zone with miekg/dns and returns its records
// as "owner TYPE rdata" strings; the SOA gives its serial as rdata.
func zoneRecords(t *testing.T, origin string, content []byte) map[string]bool {
	t.Helper()
	zp := dns.NewZoneParser(bytes.NewReader(content), origin, "")
	rrs := map[string]bool{}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		data := dns.Field(rr, 1)
		if soa, ok := rr.(*dns.SOA); ok {
			data = dns.Field(soa, 3)
		}
		rrs[rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype]+" "+data] = true
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone %s does not parse: %v\n%s", origin, err, content)
	}
	return rrs
}

const (
	backZone  = bindZoneDir + "/db.backend.cluster"
	frontZone = bindZoneDir + "/db.front-end.cluster"
	backRev   = bindZoneDir + "/db.0.0.10.in-addr.arpa"
	frontRev  = bindZoneDir + "/db.100.51.198.in-addr.arpa"
)

func TestDNSReferenceRecords(t *testing.T) {
	out := renderWith(t, spectest.Reference(), Options{}, renderDNS)
	want := map[string][]string{
		backZone: {
			"backend.cluster. SOA 1",
			"backend.cluster. NS router.backend.cluster.",
			"router.backend.cluster. A 10.0.0.1",
			"axigenode1.backend.cluster. A 10.0.0.11",
			"axigenode2.backend.cluster. A 10.0.0.12",
			"standby.backend.cluster. A 10.0.0.13",
			"ldapnode.backend.cluster. A 10.0.0.100",
			"ldap.backend.cluster. A 10.0.0.210",
			"axigen1.backend.cluster. A 10.0.0.201",
			"axigen2.backend.cluster. A 10.0.0.202",
		},
		frontZone: {
			"front-end.cluster. SOA 1",
			"front-end.cluster. NS router.front-end.cluster.",
			"router.front-end.cluster. A 198.51.100.1",
			"loadbalancer.front-end.cluster. A 198.51.100.10",
			"loadbalancer2.front-end.cluster. A 198.51.100.11",
			"proxy1.front-end.cluster. A 198.51.100.101",
			"proxy2.front-end.cluster. A 198.51.100.102",
			"proxy3.front-end.cluster. A 198.51.100.103",
			"smtp.front-end.cluster. A 198.51.100.200",
			"pop3.front-end.cluster. A 198.51.100.201",
			"imap.front-end.cluster. A 198.51.100.202",
		},
		backRev: {
			"0.0.10.in-addr.arpa. NS router.backend.cluster.",
			"11.0.0.10.in-addr.arpa. PTR axigenode1.backend.cluster.",
			"201.0.0.10.in-addr.arpa. PTR axigen1.backend.cluster.",
			"210.0.0.10.in-addr.arpa. PTR ldap.backend.cluster.",
			"1.0.0.10.in-addr.arpa. PTR router.backend.cluster.",
		},
		frontRev: {
			"100.51.198.in-addr.arpa. NS router.front-end.cluster.",
			"200.100.51.198.in-addr.arpa. PTR smtp.front-end.cluster.",
			"101.100.51.198.in-addr.arpa. PTR proxy1.front-end.cluster.",
		},
	}
	parsed := map[string]map[string]bool{}
	for path, rrs := range want {
		origin := strings.TrimPrefix(path, bindZoneDir+"/db.") + "."
		parsed[path] = zoneRecords(t, origin, fileAt(t, out, "router", path).Content)
		for _, rr := range rrs {
			if !parsed[path][rr] {
				t.Errorf("%s lacks %q", path, rr)
			}
		}
	}
	// No address is shared in the reference, so forward and reverse agree
	// one to one: every A has its PTR and every PTR its A.
	ptr := map[string]string{}
	for _, path := range []string{backRev, frontRev} {
		for rr := range parsed[path] {
			if f := strings.Fields(rr); f[1] == "PTR" {
				ptr[f[0]] = f[2]
			}
		}
	}
	var as int
	for _, path := range []string{backZone, frontZone} {
		for rr := range parsed[path] {
			if f := strings.Fields(rr); f[1] == "A" {
				as++
				rev, _ := dns.ReverseAddr(f[2])
				if ptr[rev] != f[0] {
					t.Errorf("PTR of %s is %q, want %s", f[2], ptr[rev], f[0])
				}
			}
		}
	}
	if as != len(ptr) {
		t.Errorf("%d A records but %d PTR records", as, len(ptr))
	}
}

func TestDNSRouterHost(t *testing.T) {
	out := renderWith(t, spectest.Reference(), Options{}, renderDNS)
	h := out.Host("router")
	if strings.Join(h.Packages, " ") != "bind9" || strings.Join(h.Roles, " ") != "router" {
		t.Errorf("router packages %v roles %v, want [bind9] [router]", h.Packages, h.Roles)
	}
	if len(h.Files) != 6 {
		t.Errorf("router has %d files, want 4 zones, the fragment and named.conf", len(h.Files))
	}
	for _, f := range h.Files {
		header := "; generated by mailfleet, do not edit\n"
		if strings.HasSuffix(f.Path, ".conf") || strings.HasSuffix(f.Path, ".mailfleet") {
			header = "// generated by mailfleet, do not edit\n"
		}
		if !bytes.HasPrefix(f.Content, []byte(header)) {
			t.Errorf("%s does not open with %q", f.Path, header)
		}
		if a := soleAction(f); a == nil || a.Name != "reload named" || a.Order != OrderDaemon || !strings.Contains(a.Command, "systemctl enable --quiet named && systemctl reload-or-restart named") {
			t.Errorf("%s: action %+v, want reload named", f.Path, a)
		}
	}
	conf := string(fileAt(t, out, "router", bindFragment).Content)
	for _, s := range []string{
		"listen-on { 198.51.100.1; 10.0.0.1; };", "recursion yes;", "allow-recursion { localhost; 10.0.0.0/24; 198.51.100.0/24; };", "allow-query { any; };",
		`zone "0.0.10.in-addr.arpa" {` + "\n\ttype master;\n\tfile \"/etc/bind/mailfleet/db.0.0.10.in-addr.arpa\";",
	} {
		if !strings.Contains(conf, s) {
			t.Errorf("named.conf.mailfleet lacks %q", s)
		}
	}
	// A node gets no DNS file.
	if h := out.Host("axigenode1"); len(h.Files) != 0 {
		t.Errorf("axigenode1 got DNS files: %v", h.Files)
	}
}

// When names share an address, the host or service owns the PTR and the
// extra record only gets its A.
func TestDNSSharedAddressPTR(t *testing.T) {
	topo := spectest.Reference()
	back, front := topo.Networks[0], topo.Networks[1]
	back.Records = []*spec.Record{{Name: "mail", Address: netip.MustParseAddr("10.0.0.11")}}
	front.Records = []*spec.Record{{Name: "webmail", Address: netip.MustParseAddr("198.51.100.202")}}
	out := renderWith(t, topo, Options{}, renderDNS)
	fwd := zoneRecords(t, "backend.cluster.", fileAt(t, out, "router", backZone).Content)
	rev := zoneRecords(t, "0.0.10.in-addr.arpa.", fileAt(t, out, "router", backRev).Content)
	frev := zoneRecords(t, "100.51.198.in-addr.arpa.", fileAt(t, out, "router", frontRev).Content)
	for _, c := range []struct {
		rrs map[string]bool
		rr  string
	}{
		{fwd, "mail.backend.cluster. A 10.0.0.11"},
		{rev, "11.0.0.10.in-addr.arpa. PTR axigenode1.backend.cluster."},
		{frev, "202.100.51.198.in-addr.arpa. PTR imap.front-end.cluster."},
	} {
		if !c.rrs[c.rr] {
			t.Errorf("missing %q", c.rr)
		}
	}
	if rev["11.0.0.10.in-addr.arpa. PTR mail.backend.cluster."] || frev["202.100.51.198.in-addr.arpa. PTR webmail.front-end.cluster."] {
		t.Error("an extra record took a node's or service's PTR")
	}
}

func TestReverseZone(t *testing.T) {
	for _, c := range []struct{ prefix, zone string }{
		{"10.0.0.0/24", "0.0.10.in-addr.arpa"},
		{"10.0.0.128/25", "0.0.10.in-addr.arpa"}, // classless: the enclosing /24
		{"10.0.0.0/30", "0.0.10.in-addr.arpa"},
		{"172.16.0.0/16", "16.172.in-addr.arpa"},
		{"10.1.16.0/20", "1.10.in-addr.arpa"},
		{"172.16.0.0/12", "172.in-addr.arpa"},
		{"10.0.0.0/8", "10.in-addr.arpa"},
		{"2001:db8::/32", "8.b.d.0.1.0.0.2.ip6.arpa"},
		{"2001:db8:0:4::/62", "0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"}, // the enclosing /60,
	} {
		got, err := reverseZone(netip.MustParsePrefix(c.prefix))
		if err != nil || got != c.zone {
			t.Errorf("reverseZone(%s) = %q, %v; want %q", c.prefix, got, err, c.zone)
		}
	}
	if z, err := reverseZone(netip.MustParsePrefix("0.0.0.0/4")); err == nil {
		t.Errorf("reverseZone(0.0.0.0/4) = %q, want an error", z)
	}
}

// classless splits the reference's backend into two /25s and adds a /20, so
// the reverse zones are the enclosing ones and two networks share one.
func classless() *spec.Topology {
	topo := spectest.Reference()
	back := topo.Networks[0]
	back.CIDR = netip.MustParsePrefix("10.0.0.0/25")
	// The instance VIPs stay in the upper /25, a network of their own.
	vips := &spec.Network{Name: "vips", CIDR: netip.MustParsePrefix("10.0.0.128/25"), Zone: "vips.cluster",
		Records: []*spec.Record{{Name: "printer", Address: netip.MustParseAddr("10.0.0.129")}}}
	lab := &spec.Network{Name: "lab", CIDR: netip.MustParsePrefix("10.1.16.0/20"), Zone: "lab.cluster",
		Records: []*spec.Record{{Name: "@", Address: netip.MustParseAddr("10.1.17.5")}, {Name: "scanner", Address: netip.MustParseAddr("10.1.17.6")}}}
	topo.Networks = []*spec.Network{back, topo.Networks[1], lab, vips}
	return topo
}

func TestDNSClassless(t *testing.T) {
	out := renderWith(t, classless(), Options{}, renderDNS)
	rev := zoneRecords(t, "0.0.10.in-addr.arpa.", fileAt(t, out, "router", backRev).Content)
	for _, rr := range []string{
		"11.0.0.10.in-addr.arpa. PTR axigenode1.backend.cluster.",
		"201.0.0.10.in-addr.arpa. PTR axigen1.vips.cluster.",
		"129.0.0.10.in-addr.arpa. PTR printer.vips.cluster.",
	} {
		if !rev[rr] {
			t.Errorf("0.0.10.in-addr.arpa lacks %q", rr)
		}
	}
	lab := zoneRecords(t, "1.10.in-addr.arpa.", fileAt(t, out, "router", bindZoneDir+"/db.1.10.in-addr.arpa").Content)
	for _, rr := range []string{
		"1.10.in-addr.arpa. NS router.front-end.cluster.", // the router has no interface on lab
		"5.17.1.10.in-addr.arpa. PTR lab.cluster.",
		"6.17.1.10.in-addr.arpa. PTR scanner.lab.cluster.",
	} {
		if !lab[rr] {
			t.Errorf("1.10.in-addr.arpa lacks %q", rr)
		}
	}
}

// bindTool finds a BIND validator. CI installs bind9-utils; a machine
// without it must fail, not skip, so that a green run means validated.
func bindTool(t *testing.T, name string) string {
	t.Helper()
	return programs.Require(t, name)
}

// TestDNSValidators writes the router's files under a temporary root, with
// the absolute paths in named.conf rebased there, and runs named-checkzone
// on each zone and named-checkconf -z on the whole configuration.
func TestDNSValidators(t *testing.T) {
	checkzone, checkconf := bindTool(t, "named-checkzone"), bindTool(t, "named-checkconf")
	for name, topo := range map[string]*spec.Topology{"reference": spectest.Reference(), "classless": classless()} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			out := renderWith(t, topo, Options{}, renderDNS)
			for _, f := range out.Host("router").Files {
				content := bytes.ReplaceAll(f.Content, []byte(`"/`), []byte(`"`+root+`/`))
				writeUnder(t, filepath.Join(root, f.Path), content)
				if zone, ok := strings.CutPrefix(f.Path, bindZoneDir+"/db."); ok {
					if b, err := exec.Command(checkzone, zone, filepath.Join(root, f.Path)).CombinedOutput(); err != nil {
						t.Errorf("named-checkzone %s: %v\n%s\n%s", zone, err, b, f.Content)
					}
				}
			}
			// What Debian's bind9 package provides beside our files.
			writeUnder(t, filepath.Join(root, bindDir, "named.conf.default-zones"), nil)
			if err := os.MkdirAll(filepath.Join(root, bindWorkDir), 0o755); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(checkconf, "-z", filepath.Join(root, bindNamedConf)).CombinedOutput(); err != nil {
				t.Errorf("named-checkconf -z: %v\n%s", err, b)
			}
		})
	}
}

func writeUnder(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

// current serves the files of out as the hosts' current files.
func currentFrom(out *Output) func(node, path string) ([]byte, bool) {
	return func(node, path string) ([]byte, bool) {
		if h := out.Host(node); h != nil {
			for _, f := range h.Files {
				if f.Path == path {
					return f.Content, true
				}
			}
		}
		return nil, false
	}
}

func TestDNSSerial(t *testing.T) {
	first := renderWith(t, spectest.Reference(), Options{}, renderDNS)
	zone := fileAt(t, first, "router", backZone).Content
	serial := func(content []byte) string {
		for rr := range zoneRecords(t, "backend.cluster.", content) {
			if f := strings.Fields(rr); f[1] == "SOA" {
				return f[2]
			}
		}
		return ""
	}
	if s := serial(zone); s != "1" {
		t.Fatalf("first serial %s, want 1", s)
	}

	again := renderWith(t, spectest.Reference(), Options{}, renderDNS)
	for _, f := range first.Host("router").Files {
		if !bytes.Equal(f.Content, fileAt(t, again, "router", f.Path).Content) {
			t.Errorf("%s differs between two renders", f.Path)
		}
	}

	// The router has the zone at serial 7 with the same records: keep 7.
	at7 := bytes.Replace(zone, []byte(" 1 3600 "), []byte(" 7 3600 "), 1)
	files := map[string][]byte{backZone: at7}
	cur := func(node, path string) ([]byte, bool) { c, ok := files[path]; return c, ok }
	same := fileAt(t, renderWith(t, spectest.Reference(), Options{Current: cur}, renderDNS), "router", backZone).Content
	if !bytes.Equal(same, at7) {
		t.Errorf("unchanged zone with current serial 7 rendered as\n%s", same)
	}
	// An unchanged zone the router has as we rendered it stays byte-identical.
	if c := fileAt(t, renderWith(t, spectest.Reference(), Options{Current: currentFrom(first)}, renderDNS), "router", backZone).Content; !bytes.Equal(c, zone) {
		t.Errorf("re-render against its own output changed:\n%s", c)
	}

	// A changed zone grows by one, from what the router has.
	changed := spectest.Reference()
	changed.Networks[0].Records = []*spec.Record{{Name: "printer", Address: netip.MustParseAddr("10.0.0.50")}}
	grown := fileAt(t, renderWith(t, changed, Options{Current: cur}, renderDNS), "router", backZone).Content
	if s := serial(grown); s != "8" {
		t.Errorf("changed zone serial %s, want 8", s)
	}
	// The zones that did not change keep serial 1 (no current file).
	if s := serial(fileAt(t, renderWith(t, changed, Options{Current: cur}, renderDNS), "router", frontZone).Content); s != "1" {
		t.Errorf("front-end zone serial %s, want 1", s)
	}

	// A hand-written SOA over several lines is read too.
	files[backZone] = []byte("$TTL 1h\n@ IN SOA ns. root. (\n\t2024010101 ; serial\n\t1h 10m 1w 5m )\n")
	if s := serial(fileAt(t, renderWith(t, spectest.Reference(), Options{Current: cur}, renderDNS), "router", backZone).Content); s != "2024010102" {
		t.Errorf("serial after a hand-written 2024010101 is %s", s)
	}

	// A current file without a readable serial is an error, not a reset to 1.
	files[backZone] = []byte("garbage\n")
	b := newBuilder(spectest.Reference())
	b.opts.Current = cur
	if err := renderDNS(b); err == nil || !strings.Contains(err.Error(), "no SOA serial") {
		t.Errorf("renderDNS with an unreadable current zone: %v", err)
	}
}

// TestGoldenDNSResolvSysctl keeps the reference's DNS, resolver and kernel
// files as golden files: testdata/golden/<node>/<path>.
func TestGoldenDNSResolvSysctl(t *testing.T) {
	out := renderWith(t, spectest.Reference(), Options{}, renderDNS, renderResolv, renderSysctl)
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			checkGolden(t, h.Node+f.Path, f.Content)
		}
	}
}
