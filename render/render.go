// Package render turns a validated topology into the files every host needs.
// It is a pure function: no file system, no network, no clock; maps are
// iterated in sorted order, and random material is derived from the site
// secret, so the same topology gives the same bytes on every run.
//
// render must not import remote or runtime/* except runtime/config, the
// daemon contract.
package render

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/mailfleet/mailfleet/spec"
)

// Action is what a change to a file (or a binary) triggers on its host.
// Order decides the sequence (lower first): kernel settings, then the
// resolver, then daemons, then the cluster. apply runs the actions in global
// phases: every host's actions of one order finish before any action of a
// higher order starts anywhere, and an action that several changed files of
// a host name (by Name) runs once on that host.
type Action struct {
	// Name is stable and short ("restart mailfleetd-frontend"); the manifest
	// and plans show it.
	Name string `json:"name"`
	// Command runs on the host with /bin/sh -c.
	Command string `json:"command"`
	Order   int    `json:"order"`
}

// Well-known action orders.
const (
	OrderSysctl = 10
	OrderResolv = 20
	OrderDaemon = 50
	// OrderCorosync (re)starts corosync on every backend node, with
	// Pacemaker stopped, and OrderPacemaker starts Pacemaker only once
	// every node's corosync runs: a node that is merely later than the
	// others is then a member when the first Pacemaker starts, and
	// start-up fencing does not shoot it.
	OrderCorosync  = 64
	OrderPacemaker = 66
	// OrderCluster loads the CIB; OrderLDAPBase loads the directory's base
	// entries once slapd, started by the cluster, answers on its VIP.
	OrderCluster  = 70
	OrderLDAPBase = 72
)

// File is one file on one host.
type File struct {
	Path      string      // absolute path on the host
	Mode      fs.FileMode // permission bits
	Owner     string
	Group     string
	Content   []byte // may be shared with other hosts' files (see builder.add): never modify it in place
	Sensitive bool   // contains a secret: never shown in plans or logs
	// Actions are what a change to the file triggers, sorted by Order (then
	// Name); empty: nothing to do when it changes. The Action values may be
	// shared with other files: never modify them in place.
	Actions []*Action
}

// Binary is a program apply installs on a host from the admin's own build
// (render does not have its bytes: the CLI fills them in), with the actions
// a changed binary triggers, sorted by Order (then Name).
type Binary struct {
	Path    string // absolute path on the host
	Name    string // which program: "mailfleetd"
	Mode    fs.FileMode
	Actions []*Action
}

// Host is everything render decided for one host.
type Host struct {
	Node    string // the node's (or router's) name: a DNS label
	Address string // where the admin reaches it (first address)
	SSH     spec.SSH
	Roles   []string // sorted: balancer, frontend, backend, directory, router
	// Packages are the Debian packages the host's roles need.
	Packages []string
	// Setup are shell commands (/bin/sh -c) apply runs on every apply,
	// before it writes any file: quick and idempotent (creating the
	// system user the files and units name, say). In order; none may
	// depend on a rendered file.
	Setup []string
	// Binaries are the programs apply installs from the local build,
	// sorted by Path.
	Binaries []Binary
	Files    []*File // sorted by Path
}

// Output is the rendered desired state of a whole site.
type Output struct {
	Hosts []*Host // sorted by Node
}

// Host returns the host called name, or nil. Render sorts Hosts by Node, so
// the host is found by binary search; only a name not found that way (an
// Output put together out of order) costs a full scan.
func (o *Output) Host(name string) *Host {
	i := sort.Search(len(o.Hosts), func(i int) bool { return o.Hosts[i].Node >= name })
	if i < len(o.Hosts) && o.Hosts[i].Node == name {
		return o.Hosts[i]
	}
	for _, h := range o.Hosts {
		if h.Node == name {
			return h
		}
	}
	return nil
}

// Options change what is rendered.
type Options struct {
	// AllowUnknownSecrets renders placeholders for secrets that could not be
	// read (used by graph and tests); build leaves it false and fails.
	AllowUnknownSecrets bool
	// Current returns a file as it is now on a host (from the hosts during a
	// plan, or from the previous build's output directory), so that DNS zone
	// serials only grow: a zone whose records did not change keeps the
	// serial it has; a changed zone gets one larger than it. nil: none known.
	Current func(node, path string) ([]byte, bool)
}

// Render produces every host's files. t must have passed spec.Validate
// without errors.
func Render(t *spec.Topology, opts Options) (*Output, error) {
	if !opts.AllowUnknownSecrets {
		if missing := unknownSecrets(t); len(missing) > 0 {
			return nil, fmt.Errorf("render: secrets not available: %v", missing)
		}
	}
	b := newBuilder(t)
	b.opts = opts
	steps := []struct {
		name string
		fn   func(*builder) error
	}{
		{"dns", renderDNS},
		{"resolv", renderResolv},
		{"sysctl", renderSysctl},
		{"balancer", renderBalancer},
		{"keepalived", renderKeepalived},
		{"frontend", renderFrontend},
		{"store", renderStore},
		{"ldap", renderLDAP},
		{"cluster", renderCluster},
		{"units", renderUnits},
		{"setup", renderSetup},
		{"vagrant", renderVagrant},
	}
	for _, s := range steps {
		if err := s.fn(b); err != nil {
			return nil, fmt.Errorf("render/%s: %w", s.name, err)
		}
	}
	return b.output()
}

// builder collects files per host while the artifact renderers run.
type builder struct {
	t     *spec.Topology
	opts  Options
	keys  *Keys
	hosts map[string]*Host
	// files finds a host's file by path, so that add and addDaemonFileOnce
	// need not scan the host's files.
	files map[hostPath]*File
	// frontendOf is the front-end of each front-end node (the first one
	// that lists it), made on first use by frontendOfNode.
	frontendOf map[*spec.Node]*spec.Frontend
	// Workstation files (the Vagrantfile) go to a pseudo-host.
}

// hostPath names one file of one host.
type hostPath struct{ node, path string }

// WorkstationHost is the pseudo-host that holds files meant for the admin's
// workstation rather than a node (the Vagrantfile).
const WorkstationHost = "_workstation"

func newBuilder(t *spec.Topology) *builder {
	b := &builder{t: t, keys: NewKeys(t.Site.Secret.Value), hosts: map[string]*Host{},
		files: map[hostPath]*File{}}
	for _, r := range t.Routers {
		h := b.host(r.Name)
		if len(r.Interfaces) > 0 {
			h.Address = r.Interfaces[0].Address.String()
		}
		h.SSH = r.SSH
		h.addRole("router")
	}
	for _, n := range t.Nodes {
		h := b.host(n.Name)
		h.Address = n.Address.String()
		h.SSH = n.SSH
	}
	return b
}

func (b *builder) host(name string) *Host {
	h := b.hosts[name]
	if h == nil {
		h = &Host{Node: name}
		b.hosts[name] = h
	}
	return h
}

func (h *Host) addRole(role string) {
	for _, r := range h.Roles {
		if r == role {
			return
		}
	}
	h.Roles = append(h.Roles, role)
	sort.Strings(h.Roles)
}

func (h *Host) addPackages(pkgs ...string) {
	seen := map[string]bool{}
	for _, p := range h.Packages {
		seen[p] = true
	}
	for _, p := range pkgs {
		if !seen[p] {
			seen[p] = true
			h.Packages = append(h.Packages, p)
		}
	}
	sort.Strings(h.Packages)
}

// file returns the file at path on host node, or nil.
func (b *builder) file(node, path string) *File { return b.files[hostPath{node, path}] }

// add puts f on host node; a second file at the same path is a program fault.
//
// Content is never changed once a file is added: one rendering of a file
// that is the same on many hosts (the CIB, a unit, resolv.conf) is shared by
// all their File values.
func (b *builder) add(node string, f *File) error {
	h := b.host(node)
	key := hostPath{node, f.Path}
	if b.files[key] != nil {
		return fmt.Errorf("two files at %s on %s", f.Path, node)
	}
	if f.Owner == "" {
		f.Owner = "root"
	}
	if f.Group == "" {
		f.Group = "root"
	}
	if f.Mode == 0 {
		f.Mode = 0o644
	}
	if f.Sensitive && f.Mode&0o027 != 0 {
		return fmt.Errorf("%s on %s holds a secret but has mode %o (want 0600 or 0640)", f.Path, node, f.Mode)
	}
	acts, err := actionList(f.Actions...)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", f.Path, node, err)
	}
	f.Actions = acts
	h.Files = append(h.Files, f)
	b.files[key] = f
	return nil
}

func (b *builder) output() (*Output, error) {
	names := make([]string, 0, len(b.hosts))
	for n := range b.hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	out := &Output{}
	for _, n := range names {
		h := b.hosts[n]
		sort.Slice(h.Files, func(i, j int) bool { return h.Files[i].Path < h.Files[j].Path })
		sort.Slice(h.Binaries, func(i, j int) bool { return h.Binaries[i].Path < h.Binaries[j].Path })
		out.Hosts = append(out.Hosts, h)
	}
	return out, nil
}

// createDaemonUser makes the mailfleet system group and user (no home, no
// login shell) unless they exist: idempotent, and quick when they do.
var createDaemonUser = []string{
	"getent group " + daemonGroup + " >/dev/null || groupadd --system " + daemonGroup,
	"getent passwd " + daemonUser + " >/dev/null || useradd --system --gid " + daemonGroup +
		" --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin " + daemonUser,
}

// renderSetup runs after the renderers that add files: every host with a
// file owned by the mailfleet user or group, a unit that runs as that user,
// or the store agent (which runs the stores as that user) gets the commands
// that create them, before apply writes the files (their owner must exist).
func renderSetup(b *builder) error {
	userLine := []byte("\nUser=" + daemonUser + "\n")
	for _, h := range b.hosts {
		for _, f := range h.Files {
			if f.Owner == daemonUser || f.Group == daemonGroup || f.Path == storeAgentPath ||
				(strings.HasPrefix(f.Path, daemonUnitDir+"/") && bytes.Contains(f.Content, userLine)) {
				h.addSetup(createDaemonUser...)
				break
			}
		}
	}
	return nil
}

// actionList is as, without nils and without a second action of one name,
// sorted by Order then Name: the form of File.Actions and Binary.Actions.
// Two different actions of one name are a program fault.
func actionList(as ...*Action) ([]*Action, error) {
	var out []*Action
	for _, a := range as {
		if a == nil {
			continue
		}
		dup := false
		for _, o := range out {
			if o.Name == a.Name {
				if *o != *a {
					return nil, fmt.Errorf("two different actions named %q", a.Name)
				}
				dup = true
			}
		}
		if !dup {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Order != out[j].Order {
			return out[i].Order < out[j].Order
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// mustActions is actionList for lists made in the code itself, whose names
// are distinct by construction.
func mustActions(as ...*Action) []*Action {
	out, err := actionList(as...)
	if err != nil {
		panic("render: " + err.Error())
	}
	return out
}

// addSetup appends setup commands to h, each once.
func (h *Host) addSetup(cmds ...string) {
	for _, c := range cmds {
		if !slices.Contains(h.Setup, c) {
			h.Setup = append(h.Setup, c)
		}
	}
}

// addBinary puts the program name at path on node, or adds acts to the
// actions of the one already there.
func (b *builder) addBinary(node, path, name string, mode fs.FileMode, acts ...*Action) error {
	h := b.host(node)
	for i := range h.Binaries {
		bin := &h.Binaries[i]
		if bin.Path != path {
			continue
		}
		if bin.Name != name || bin.Mode != mode {
			return fmt.Errorf("two different binaries at %s on %s", path, node)
		}
		merged, err := actionList(append(slices.Clone(bin.Actions), acts...)...)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", path, node, err)
		}
		bin.Actions = merged
		return nil
	}
	list, err := actionList(acts...)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", path, node, err)
	}
	h.Binaries = append(h.Binaries, Binary{Path: path, Name: name, Mode: mode, Actions: list})
	return nil
}

func unknownSecrets(t *spec.Topology) []string {
	var missing []string
	check := func(what string, s spec.Secret) {
		if !s.Known {
			missing = append(missing, what+" ("+s.Source+")")
		}
	}
	check("site secret", t.Site.Secret)
	if d := t.Directory; d != nil {
		check("directory admin_password", d.AdminPassword)
		check("directory service_password", d.ServicePassword)
	}
	for _, f := range t.Fences {
		check("fence "+f.Name+" password", f.Password)
	}
	for _, c := range t.Connectors {
		check("ldap_connector "+c.Name+" bind_password", c.BindPassword)
	}
	for _, i := range t.Instances {
		check("mail_instance "+i.Name+" admin_secret", i.AdminSecret)
	}
	for _, bl := range t.Balancers {
		if len(bl.Nodes) > 1 && bl.VRRP.HasPassword() {
			check("balancer "+bl.Name+" vrrp password", bl.VRRP.Password)
		}
	}
	return missing
}
