package render

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// scaleTopologies are examples/reference and a generated site, decoded and
// validated.
func scaleTopologies(t *testing.T) map[string]*spec.Topology {
	t.Helper()
	out := map[string]*spec.Topology{}
	load := func(name, dir string, opts decode.Options) {
		topo, _, ds := decode.Load(dir, opts)
		if topo != nil {
			ds = append(ds, spec.Validate(topo)...)
		}
		if ds.HasErrors() {
			t.Fatalf("%s: %v", name, ds)
		}
		out[name] = topo
	}
	load("reference", "../examples/reference", decode.Options{RequireSecrets: true})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(spectest.Generate(100)), 0o644); err != nil {
		t.Fatal(err)
	}
	load("generated", dir, decode.Options{Env: spectest.GenerateEnv})
	return out
}

// The front-end configs are spliced together from a node part and the
// instance table encoded once; the bytes must be those of encoding each
// node's whole config, and the daemon must read them.
func TestFrontendDocumentIsWholeEncoding(t *testing.T) {
	for name, topo := range scaleTopologies(t) {
		out, err := Render(topo, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nodes := 0
		for _, fe := range topo.Frontends {
			for _, n := range fe.Nodes {
				cfg, err := frontendConfig(topo, fe, n)
				if err != nil {
					t.Fatal(err)
				}
				want, err := cfgJSON(cfg)
				if err != nil {
					t.Fatal(err)
				}
				got := fileAt(t, out, n.Name, frontendConfigPath).Content
				if !bytes.Equal(got, want) {
					t.Errorf("%s: %s: spliced frontend.json differs from the whole encoding:\n%s", name, n.Name,
						firstDifference(string(want), string(got)))
				}
				var back config.Frontend
				if err := config.Decode(got, &back); err != nil {
					t.Errorf("%s: %s: %v", name, n.Name, err)
				}
				if len(back.Instances) != len(topo.Instances) {
					t.Errorf("%s: %s: %d instances, want %d", name, n.Name, len(back.Instances), len(topo.Instances))
				}
				nodes++
			}
		}
		if nodes == 0 {
			t.Errorf("%s: no front-end nodes", name)
		}
	}
}

// An instance table the daemon would refuse is still refused.
func TestFrontendBadTableRefused(t *testing.T) {
	topo := scaleTopologies(t)["generated"]
	table, err := newFrontendTable(topo)
	if err != nil {
		t.Fatal(err)
	}
	if table.err != nil {
		t.Fatalf("good table refused: %v", table.err)
	}
	if err := config.ValidateInstances(map[string]config.InstanceRoute{"x.example": {Name: "x", SMTP: "nowhere"}}); err == nil {
		t.Error("a route without a port was accepted")
	}
	if err := config.ValidateInstances(nil); err == nil {
		t.Error("an empty table was accepted")
	}
}

// cibXML writes by hand what encoding/xml would write for the CIB.
func TestCIBXMLMatchesEncodingXML(t *testing.T) {
	check := func(name string, doc *cibDoc) {
		t.Helper()
		want, err := clusterXMLDoc(doc)
		if err != nil {
			t.Fatal(err)
		}
		if got := cibXML(doc); !bytes.Equal(got, want) {
			t.Errorf("%s: cibXML differs from encoding/xml:\n%s", name, firstDifference(string(want), string(got)))
		}
	}
	for name, topo := range scaleTopologies(t) {
		doc, err := buildCIB(topo, clusterMembers(topo))
		if err != nil {
			t.Fatal(err)
		}
		check(name, doc)
	}
	// Every optional part absent, then present with values to escape.
	check("empty", &cibDoc{})
	odd := []string{"", "plain", `q"uote`, "a'pos", "a&b", "<tag>", "tab\there", "new\nline", "cr\rx",
		"ünïcödé", "bad\xffutf8", "\x01ctl", "\uFFFD", "del\x7f", "emoji 📬"}
	doc := &cibDoc{ValidateWith: odd[2], AdminEpoch: 7, Epoch: -1, NumUpdates: 3}
	for i, s := range odd {
		doc.Config.CRMConfig = append(doc.Config.CRMConfig, *cibNewAttrs(s, "k", s, s, "v"))
		p := cibNewPrimitive(s, s, odd[(i+1)%len(odd)], s, []string{s, s}, []cibOpTiming{{s, s, s}})
		if i%2 == 0 {
			p.Meta = cibNewAttrs(s+"m", "provides", s)
		}
		if i%3 == 0 {
			p.Params = nil
			p.Ops = nil
		}
		doc.Config.Resources.Primitives = append(doc.Config.Resources.Primitives, p)
		doc.Config.Resources.Groups = append(doc.Config.Resources.Groups, cibGroup{ID: s, Primitives: []cibPrimitive{p}})
		doc.Config.Constraints.Locations = append(doc.Config.Constraints.Locations, cibLocation{ID: s, Rsc: s, Node: s, Score: s})
		doc.Config.Constraints.Colocations = append(doc.Config.Constraints.Colocations, cibColocation{ID: s + "c", Rsc: s, WithRsc: s, Score: s})
		doc.Config.Constraints.Orders = append(doc.Config.Constraints.Orders, cibOrder{ID: s + "o", First: s, Then: s, Kind: s})
	}
	doc.Config.Resources.Groups = append(doc.Config.Resources.Groups, cibGroup{ID: "nothing"})
	check("odd", doc)
	doc.Config.RscDefaults = []cibAttrs{{ID: "no-pairs"}}
	check("odd with defaults", doc)
}
