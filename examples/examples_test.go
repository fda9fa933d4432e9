package examples

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

func TestExamplesDiagnostics(t *testing.T) {
	dirs := []string{"reference", "reference-as-written", "lab"}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			want, err := spectest.Expected(dir)
			if err != nil {
				t.Fatal(err)
			}
			got, ds := spectest.Diagnose(dir, spectest.NoEnv)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("diagnostics differ from the markers\n got:\n  %s\nwant:\n  %s\nfull:\n%v", strings.Join(got, "\n  "), strings.Join(want, "\n  "), ds)
			}
		})
	}
}

func TestReferenceAsWrittenFindsEveryInconsistency(t *testing.T) {
	_, ds := spectest.Diagnose("reference-as-written", spectest.NoEnv)
	if !ds.HasErrors() {
		t.Fatal("the reference as written validates, but the document is inconsistent")
	}
	// The inconsistencies of the white paper, each a distinct finding.
	for _, summary := range []string{
		"Duplicate FQDN",                                    // proxy2 and proxy3 named proxy1 (5.2)
		"Conflicting DNS name",                              // ldap .200 vs .210, axigen1/2 .211 vs .201/.202, smtp/pop3/imap (5.2 vs 5.3, 5.5.4)
		"VIP is a node address",                             // balancer virtual server 140.0.0.10 (5.3)
		"Missing node address",                              // the hot standby (4.2.2, 5.5.4)
		"Connector points at a node, not the directory VIP", // ldap://10.0.0.100 (5.4.1, 5.5.8)
		"Connector binds as the directory admin",            // BindDN admin on the tiers (5.4.1, 5.5.8)
		"Invalid LDAP filter",                               // objectType (5.4.1, 5.5.8)
		"Secret in plain text",                              // rootpw secret (5.5.5)
		"Partition used twice",                              // queuePath on the run partition (5.5.6)
		"Unused partition",                                  // the queue partition then holds nothing
		"Duplicate mount point",                             // .../queue and .../queue (5.5.6)
		"Reference to undeclared node",                      // clusvcadm backend_axigen1_node (5.5.7)
		"No nodes",                                          // AXIGEN1 never started (5.5.7)
		"Node cannot reach storage",                         // LDAP on all backend nodes vs its LUN (5.5.1 vs 5.5.5)
		"Search list not led by the network's zone",         // front-end resolv.conf (5.4.1)
		"Inconsistent nameservers",                          // DNR 140.0.0.1 vs resolv.conf 10.0.0.1 (5.4.1)
	} {
		found := false
		for _, d := range ds {
			if d.Summary == summary && d.Severity == spec.Error {
				found = true
			}
		}
		if !found {
			t.Errorf("no %q error", summary)
		}
	}
}

func TestExamplesFormatted(t *testing.T) {
	files, _ := filepath.Glob("*/*.hcl")
	sub, _ := filepath.Glob("*/*/*.hcl")
	files = append(files, sub...)
	if len(files) == 0 {
		t.Fatal("no example files found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if out := hclwrite.Format(b); !bytes.Equal(out, b) {
			t.Errorf("%s is not formatted; run mailfleet fmt %s", f, filepath.Dir(f))
		}
	}
}
