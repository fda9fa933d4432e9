// Package deptest checks the repository's layout rules: which of its
// packages may depend on which, directly or not. The rules are one table,
// Rules, checked over the real import graph by this package's test (in the
// shape of Tailscale's deptest). It imports nothing of mailfleet.
package deptest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// Module is the repository's module path.
const Module = "github.com/mailfleet/mailfleet"

// A Rule bans, for every package under one of Pkgs (paths relative to the
// module, or standard or third-party import paths for Banned), every
// dependency under one of Banned, except those under one of Allowed. A
// path covers itself and everything below it.
type Rule struct {
	Pkgs    []string
	Banned  []string
	Allowed []string
	Why     string
}

// mailfleet's packages by layer, for the rules below.
var (
	everyLayer = []string{"spec", "render", "remote", "runtime", "provision", "lab", "cluster", "cmd", "bench", "examples"}
	// Programs and remote sessions: what a pure compiler never needs (go-ldap,
	// which spec uses to parse DNs, pulls net/http in, so that cannot be
	// banned here).
	effects = []string{"os/exec", "golang.org/x/crypto/ssh", "github.com/pkg/sftp"}
)

// Rules is the layout of ARCHITECTURE.md as a table.
var Rules = []Rule{
	{Pkgs: []string{"internal"}, Banned: everyLayer,
		Why: "internal/ holds leaves that every layer may use"},
	{Pkgs: []string{"spec"}, Banned: append(everyLayer[1:], effects...), Allowed: []string{"runtime/config"},
		Why: "spec is the language: it reads a topology and knows the configs' constants, nothing else"},
	{Pkgs: []string{"render"}, Banned: append([]string{"remote", "runtime", "provision", "lab", "cluster", "cmd"}, effects...),
		Allowed: []string{"runtime/config", "runtime/ocf"},
		Why:     "render is pure: a topology in, files out; no network, no programs, no daemons"},
	{Pkgs: []string{"remote"}, Banned: []string{"spec", "render", "runtime", "provision", "lab", "cluster", "cmd"},
		Why: "remote moves files and runs actions over SSH; it knows no mail"},
	{Pkgs: []string{"runtime"}, Banned: []string{"spec", "render", "remote", "provision", "lab", "cluster", "cmd"},
		Why: "the daemons run from their rendered configs alone"},
	{Pkgs: []string{"runtime/frontend", "runtime/proxy", "runtime/router", "runtime/directory"},
		Banned: []string{"runtime/balancer", "runtime/store"}, Allowed: []string{"runtime/proxy/storetest", "runtime/proxy/proxytest"},
		Why: "the front-end is stateless and speaks to the store only over the network"},
	{Pkgs: []string{"runtime/balancer"}, Banned: []string{"runtime/store", "runtime/frontend", "runtime/proxy", "runtime/router", "runtime/directory"},
		Why: "the balancer is L4: it knows no mail protocol"},
	{Pkgs: []string{"runtime/store"}, Banned: []string{"runtime/frontend", "runtime/balancer", "runtime/proxy", "runtime/router"},
		Why: "the store is reached over the network"},
	{Pkgs: []string{"provision", "cluster"}, Banned: []string{"lab", "cmd", "remote", "runtime/store", "runtime/frontend", "runtime/balancer"},
		Allowed: []string{"provision/provisiontest"},
		Why:     "operations speak to a site through its public interfaces, not through daemon internals"},
	{Pkgs: []string{"cmd/mailfleet"}, Banned: []string{"runtime/store", "runtime/frontend", "runtime/balancer", "runtime/devcluster"},
		Why: "the admin's tool deploys the daemons; it does not link them"},
	{Pkgs: []string{"lab"}, Banned: []string{"render", "provision", "cluster", "cmd", "runtime/store", "runtime/frontend", "runtime/balancer"},
		Why: "the lab builds machines; what runs on them comes from render through remote"},
}

// Graph maps each package to every package it depends on, directly or not.
type Graph map[string][]string

// Load lists the module's packages (without their tests) and their
// dependencies with `go list`, run in dir (any directory of the module).
func Load(dir string) (Graph, error) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", Module+"/...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, stderr.Bytes())
	}
	g := Graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	return g, sc.Err()
}

// Check returns every broken rule, one line per package and dependency,
// sorted.
func Check(g Graph, rules []Rule) []string {
	var bad []string
	for pkg, deps := range g {
		for _, r := range rules {
			if !under(pkg, r.Pkgs) || under(pkg, r.Allowed) {
				continue
			}
			for _, d := range deps {
				if under(d, r.Banned) && !under(d, r.Allowed) {
					bad = append(bad, fmt.Sprintf("%s depends on %s: %s", rel(pkg), rel(d), r.Why))
				}
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// under says whether import path p is one of paths or below one; paths
// are relative to the module or, when they are not mailfleet's, whole
// import paths.
func under(p string, paths []string) bool {
	for _, q := range paths {
		full := q
		if !strings.Contains(strings.SplitN(q, "/", 2)[0], ".") && !isStd(q) {
			full = Module + "/" + q
		}
		if p == full || strings.HasPrefix(p, full+"/") {
			return true
		}
	}
	return false
}

// isStd tells the standard library's paths used in the rules from
// mailfleet's own top-level folders.
func isStd(p string) bool {
	switch strings.SplitN(p, "/", 2)[0] {
	case "os", "net", "crypto", "encoding", "io":
		return true
	}
	return false
}

func rel(p string) string { return strings.TrimPrefix(p, Module+"/") }
