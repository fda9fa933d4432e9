package render

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/ocf/shim"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// What apply needs besides file contents: the actions of every file, the
// setup commands and the binaries of every host.

func renderReference(t *testing.T, topo *spec.Topology) *Output {
	t.Helper()
	out, err := Render(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every file's and binary's actions are sorted by Order (then Name), with no
// name twice, and each is valid sh.
func TestActionsSortedAndShell(t *testing.T) {
	sh := clTool(t, "sh", "dash")
	out := renderReference(t, spectest.Reference())
	checked := map[string]bool{}
	check := func(where string, acts []*Action) {
		for i, a := range acts {
			if i > 0 {
				p := acts[i-1]
				if p.Order > a.Order || p.Order == a.Order && p.Name >= a.Name {
					t.Errorf("%s: actions %q then %q are out of order or twice", where, p.Name, a.Name)
				}
			}
			if a.Name == "" || a.Command == "" || a.Order <= 0 {
				t.Errorf("%s: action %+v", where, *a)
			}
			if checked[a.Command] {
				continue
			}
			checked[a.Command] = true
			if msg, err := exec.Command(sh, "-n", "-c", a.Command).CombinedOutput(); err != nil {
				t.Errorf("%s: %s: %q is not valid sh: %v\n%s", where, a.Name, a.Command, err, msg)
			}
		}
	}
	for _, h := range out.Hosts {
		for _, f := range h.Files {
			check(h.Node+":"+f.Path, f.Actions)
		}
		for _, b := range h.Binaries {
			check(h.Node+":"+b.Path, b.Actions)
		}
	}
}

// The actions each kind of file triggers, by name and order.
func TestActionsByFile(t *testing.T) {
	out := renderReference(t, spectest.Reference())
	for _, c := range []struct{ node, path, want string }{
		{"axigenode1", sysctlConf, "apply sysctl@10"},
		{"axigenode1", corosyncConfPath, "restart corosync@64, start pacemaker@66"},
		{"standby", corosyncKeyPath, "restart corosync@64, start pacemaker@66"},
		{"axigenode1", cibPath, "load cib@70"},
		{"standby", cibPath, ""},
		{"standby", slapdConfPath, "restart slapd@50"},
		{"ldapnode", ldapBaseLDIF, "load ldap base@72"},
		{"standby", ldapBaseLDIF, "load ldap base@72"},
		{"standby", ldapAdminSecret, ""},
		{"standby", storeAgentPath, ""},
		{"proxy1", frontendConfigPath, "restart mailfleetd-frontend@50"},
		{"loadbalancer", balancerConfigPath, "reload mailfleetd-balancer@50"},
		{"loadbalancer", "/etc/keepalived/keepalived.conf", "reload keepalived@50"},
		{"proxy1", daemonUnitDir + "/mailfleetd-frontend.service", "daemon-reload@49"},
	} {
		if got := actionSummary(fileAt(t, out, c.node, c.path)); got != c.want {
			t.Errorf("%s %s: actions %q, want %q", c.node, c.path, got, c.want)
		}
	}
}

func TestCorosyncThenPacemaker(t *testing.T) {
	c, p := restartCorosyncAction(), startPacemakerAction()
	if c.Command != "systemctl stop pacemaker; systemctl enable --quiet corosync pacemaker; systemctl restart corosync" ||
		p.Command != "systemctl start pacemaker" || !(c.Order < p.Order && p.Order < loadCIBAction().Order) {
		t.Errorf("cluster stack actions %+v, %+v", *c, *p)
	}
}

// mailfleet's OCF agents are shims to mailfleetd (runtime/ocf): mount and
// vip on every node that may run an instance or the directory, store on the
// instances' nodes, with the mailfleetd binary, and nowhere else.
func TestOCFAgentFiles(t *testing.T) {
	top := spectest.Reference()
	out := renderReference(t, top)
	want := map[string]map[string]bool{}
	for _, i := range top.Instances {
		for _, n := range i.Nodes {
			want[n.Name] = map[string]bool{"mount": true, "vip": true, "store": true}
		}
	}
	for _, n := range top.Directory.Nodes {
		if want[n.Name] == nil {
			want[n.Name] = map[string]bool{"mount": true, "vip": true}
		}
	}
	for _, h := range out.Hosts {
		got := map[string]bool{}
		for _, f := range h.Files {
			name, ok := strings.CutPrefix(f.Path, shim.Dir+"/")
			if !ok {
				continue
			}
			got[name] = true
			if !bytes.Equal(f.Content, shim.Script(name, daemonBinary)) || f.Mode != 0o755 || f.Owner != "root" ||
				f.Group != "root" || f.Sensitive || len(f.Actions) > 0 {
				t.Errorf("%s: %s %o %s:%s sensitive=%v actions=%s", h.Node, f.Path, f.Mode, f.Owner, f.Group, f.Sensitive, actionSummary(f))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want[h.Node]) && len(got)+len(want[h.Node]) > 0 {
			t.Errorf("%s: agents %v, want %v", h.Node, got, want[h.Node])
		}
		hasBinary := slices.ContainsFunc(h.Binaries, func(b Binary) bool { return b.Path == daemonBinary })
		if len(got) > 0 && !hasBinary {
			t.Errorf("%s: agents without %s", h.Node, daemonBinary)
		}
	}
}

// The store resource runs as the daemons' user and owns the directories the
// store writes.
func TestStoreResourceUser(t *testing.T) {
	topo := spectest.Reference()
	out := renderReference(t, topo)
	cib := clParseCIB(t, fileAt(t, out, "standby", cibPath).Content)
	inst := topo.Instances[0]
	if got := cib.param(storeResourceID(inst), "user"); got != "mailfleet" {
		t.Errorf("store user %q", got)
	}
	want := inst.Storage.Mountpoint + " " + inst.Queue.Mountpoint + " " + inst.Run.Mountpoint + " " + storeLogDir
	if got := cib.param(storeResourceID(inst), "dirs"); got != want {
		t.Errorf("store dirs %q, want %q", got, want)
	}
	// 10000 sessions on each of 3 front-end nodes, 3 descriptors each, and
	// headroom: what the unit's LimitNOFILE would have been.
	if got := cib.param(storeResourceID(inst), "nofile"); got != "91024" {
		t.Errorf("store nofile %q, want 91024", got)
	}
	if got := cib.param(slapdResourceID(topo.Directory), "ignore_suffix"); got != topo.Directory.Base {
		t.Errorf("slapd ignore_suffix %q, want the base (the monitor must not need the base entry)", got)
	}
}

// The mailfleet user and group are made on every host whose files or units
// name them, and only there.
func TestSetupDaemonUser(t *testing.T) {
	out := renderReference(t, spectest.Reference())
	sh := clTool(t, "sh", "dash")
	for _, h := range out.Hosts {
		needs := slices.Contains(h.Roles, "balancer") || slices.Contains(h.Roles, "frontend") ||
			(slices.Contains(h.Roles, "backend") && h.Node != "ldapnode")
		if has := slices.Equal(h.Setup, createDaemonUser); has != needs {
			t.Errorf("%s (%v): setup %q, want the mailfleet user %v", h.Node, h.Roles, h.Setup, needs)
		}
		for _, c := range h.Setup {
			if msg, err := exec.Command(sh, "-n", "-c", c).CombinedOutput(); err != nil {
				t.Errorf("%s: setup %q is not valid sh: %v\n%s", h.Node, c, err, msg)
			}
		}
	}
	want := []string{
		"getent group mailfleet >/dev/null || groupadd --system mailfleet",
		"getent passwd mailfleet >/dev/null || useradd --system --gid mailfleet --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin mailfleet",
	}
	if !slices.Equal(createDaemonUser, want) {
		t.Errorf("setup %q", createDaemonUser)
	}
}

// A bind-mounted directory partition is given to openldap at setup.
func TestSetupBindMountedDirectory(t *testing.T) {
	topo := spectest.Reference()
	d := *topo.Directory.Data
	d.Device, d.FSType, d.Options = "/srv/san/ldap data", "none", "bind"
	topo.Directory.Data = &d
	out := renderReference(t, topo)
	want := "if [ -d '/srv/san/ldap data' ] && getent passwd openldap >/dev/null; then chown openldap:openldap '/srv/san/ldap data'; fi"
	for _, n := range []string{"ldapnode", "standby"} {
		if !slices.Contains(out.Host(n).Setup, want) {
			t.Errorf("%s: setup %q lacks %q", n, out.Host(n).Setup, want)
		}
	}
	if got := clParseCIB(t, fileAt(t, out, "standby", cibPath).Content).param(topo.Directory.Name+"-data", "options"); got != "bind" {
		t.Errorf("data Filesystem options %q, want bind", got)
	}
}

func TestPartitionOptions(t *testing.T) {
	topo := spectest.Reference()
	p := *topo.Instances[0].Storage
	p.Options = "noatime,nodiratime"
	topo.Instances[0].Storage = &p
	out := renderReference(t, topo)
	cib := clParseCIB(t, fileAt(t, out, "standby", cibPath).Content)
	if got := cib.param(topo.Instances[0].Name+"-storage", "options"); got != "noatime,nodiratime" {
		t.Errorf("storage options %q", got)
	}
	if got := cib.param(topo.Instances[0].Name+"-queue", "options"); got != "" {
		t.Errorf("queue options %q, want none", got)
	}
}

// Every host that runs mailfleetd gets the binary, with the restarts of its
// daemons there; the directory's nodes run it as their resource agents only.
func TestBinaries(t *testing.T) {
	out := renderReference(t, spectest.Reference())
	want := map[string]string{
		"loadbalancer":  "restart mailfleetd-balancer@50",
		"loadbalancer2": "restart mailfleetd-balancer@50",
		"proxy1":        "restart mailfleetd-frontend@50",
		"proxy2":        "restart mailfleetd-frontend@50",
		"proxy3":        "restart mailfleetd-frontend@50",
		"axigenode1":    "restart store AXIGEN1@50",
		"axigenode2":    "restart store AXIGEN2@50",
		"standby":       "restart store AXIGEN1@50, restart store AXIGEN2@50",
		"ldapnode":      "",
	}
	for _, h := range out.Hosts {
		w, ok := want[h.Node]
		if !ok {
			if len(h.Binaries) > 0 {
				t.Errorf("%s: binaries %+v, want none", h.Node, h.Binaries)
			}
			continue
		}
		if len(h.Binaries) != 1 {
			t.Errorf("%s: binaries %+v", h.Node, h.Binaries)
			continue
		}
		b := h.Binaries[0]
		if got := actionSummary(&File{Actions: b.Actions}); b.Path != "/usr/local/bin/mailfleetd" || b.Name != "mailfleetd" ||
			b.Mode != 0o755 || got != w {
			t.Errorf("%s: binary %s %s %o actions %q, want %q", h.Node, b.Path, b.Name, b.Mode, got, w)
		}
	}
	b := newBuilder(spectest.Reference())
	if err := b.addBinary("proxy1", daemonBinary, daemonBinaryName, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.addBinary("proxy1", daemonBinary, daemonBinaryName, 0o700); err == nil {
		t.Error("two modes for one binary were taken")
	}
}

// loadLDAPBaseAction's command, run against stand-ins for the LDAP and
// Pacemaker tools.
func TestLoadLDAPBaseScript(t *testing.T) {
	testutil.Long(t)
	sh := clTool(t, "sh", "dash")
	d := *spectest.Reference().Directory
	d.TLSMode, d.TLS = spec.LDAPTLSStartTLS, &spec.TLS{Cert: "/c", Key: "/k", CA: "/etc/ssl/ca.crt"}
	cmd := loadLDAPBaseAction(&d).Command
	for _, c := range []struct {
		name     string
		locate   string // crm_resource's answer; the node is "me"
		addRC    int
		addErr   string
		wantRC   int
		wantAdd  bool
		searches string // ldapsearch exit codes in turn (the last repeats)
	}{
		{"loads on the slapd node", "me", 0, "", 0, true, "255 255 32"},
		{"entries that exist", "me", 68, "ldap_add: Already exists (68)\n\tadditional info: x\nldap_add: Already exists (68)", 0, true, "0"},
		{"another error", "me", 68, "ldap_add: Insufficient access (50)\nldap_add: Already exists (68)", 68, true, "0"},
		{"a failed add", "me", 49, "ldap_bind: Invalid credentials (49)", 49, true, "0"},
		{"not the slapd node", "other", 0, "", 0, false, "32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "log")
			stub := func(name, body string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(dir, "searches"), []byte(c.searches), 0o644)
			stub("ldapsearch", `echo "ldapsearch $LDAPTLS_CACERT $*" >>`+log+`
set -- $(cat `+dir+`/searches); rc=$1; [ $# -gt 1 ] && shift; echo "$@" >`+dir+`/searches; exit $rc`)
			stub("crm_resource", "echo "+c.locate)
			stub("crm_node", "echo me")
			stub("ldapadd", `echo "ldapadd $*" >>`+log+`; printf '%b\n' '`+strings.ReplaceAll(c.addErr, "\n", `\n`)+`' >&2; exit `+strconv.Itoa(c.addRC))
			run := exec.Command(sh, "-c", cmd)
			run.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			outb, err := run.CombinedOutput()
			rc := 0
			if ee, ok := err.(*exec.ExitError); ok {
				rc = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			logb, _ := os.ReadFile(log)
			if rc != c.wantRC || strings.Contains(string(logb), "ldapadd ") != c.wantAdd {
				t.Errorf("exit %d, want %d; log:\n%s\noutput:\n%s", rc, c.wantRC, logb, outb)
			}
			if !strings.Contains(string(logb), "ldapsearch /etc/ssl/ca.crt -x -o nettimeout=5 -H ldap://10.0.0.210:389 -ZZ -b dc=example,dc=com -s base") {
				t.Errorf("the wait does not search the VIP with StartTLS and the CA:\n%s", logb)
			}
			if c.wantAdd && !strings.Contains(string(logb), "ldapadd -x -c -H ldapi:/// -D cn=admin,dc=example,dc=com -y "+ldapAdminSecret+" -f "+ldapBaseLDIF) {
				t.Errorf("ldapadd not as expected:\n%s", logb)
			}
		})
	}
}

// The restarts of cluster resources act only where the cluster runs the
// resource: not on another node, and not before the cluster runs at all,
// when crm_resource and crm_node both print nothing (a first apply runs
// these order-50 actions before corosync and Pacemaker start).
func TestRestartOnlyWhereItRuns(t *testing.T) {
	sh := clTool(t, "sh", "dash")
	ref := spectest.Reference()
	for _, a := range []*Action{restartSlapdAction(ref.Directory), restartStoreAction(ref.Instances[0])} {
		for _, c := range []struct {
			name, locate, node string
			locateRC           int
			restart            bool
		}{
			{"runs here", "me", "me", 0, true},
			{"runs elsewhere", "other", "me", 0, false},
			{"no cluster yet", "", "", 1, false},
			{"runs nowhere", "", "me", 0, false},
		} {
			t.Run(a.Name+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				log := filepath.Join(dir, "log")
				stub := func(name, body string) {
					if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				stub("crm_resource", `case "$*" in *--restart*) echo "restart $*" >>`+log+`; exit 0;; esac; `+
					`[ -n "`+c.locate+`" ] && echo `+c.locate+`; exit `+strconv.Itoa(c.locateRC))
				stub("crm_node", `[ -n "`+c.node+`" ] && echo `+c.node+`; [ -n "`+c.node+`" ]`)
				run := exec.Command(sh, "-c", a.Command)
				run.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
				out, err := run.CombinedOutput()
				if err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				logb, _ := os.ReadFile(log)
				if got := strings.Contains(string(logb), "restart "); got != c.restart {
					t.Errorf("restarted: %v, want %v (%s)", got, c.restart, logb)
				}
			})
		}
	}
}
