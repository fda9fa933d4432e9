package ocf

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/programs"
	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/ocf/shim"
)

// TestMain lets the test binary stand in for mailfleetd: run as
// "TESTBINARY ocf AGENT ACTION" (by a shim), it is the agent.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "ocf" {
		if os.Getenv("OCF_TEST_NICENESS") != "" {
			fmt.Fprintf(os.Stderr, "niceness %d\n", niceness())
		}
		os.Exit(Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// installShim writes agent name's shim for this test binary in a directory
// nobody may enter (ocf-tester runs meta-data as nobody).
func installShim(t *testing.T, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		os.Chmod(d, 0o755)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "mailfleetd")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, shim.Script(name, exe), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShimWithoutBinary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mount")
	os.WriteFile(p, shim.Script("mount", filepath.Join(dir, "missing")), 0o755)
	out, err := exec.Command(p, "monitor").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ErrInstalled || !strings.Contains(string(out), "ocf-exit-reason:") {
		t.Fatalf("shim without its binary: %v %s (want exit 5 and a reason)", err, out)
	}
}

// The shim runs an agent's actions at niceness -10 (Pacemaker starts it at
// 0), its meta-data as it was asked (ocf-tester asks as nobody).
func TestShimNiceness(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a negative niceness: root only")
	}
	agent := installShim(t, "vip")
	for action, want := range map[string]string{"monitor": "niceness -10", "meta-data": "niceness 0"} {
		cmd := exec.Command(agent, action)
		cmd.Env = append(os.Environ(), "OCF_TEST_NICENESS=1", "OCF_RESKEY_ip=10.255.255.1")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("%s: %q, want %q", action, out, want)
		}
	}
}

func TestMetaDataAndUsage(t *testing.T) {
	for name, a := range Agents {
		var out, errb bytes.Buffer
		if rc := run([]string{name, "meta-data"}, func(string) string { return "" }, &out, &errb); rc != Success {
			t.Fatalf("%s meta-data: %d", name, rc)
		}
		var m metaXML
		if err := xml.Unmarshal(out.Bytes(), &m); err != nil || m.Name != a.Name || len(m.Params) != len(a.Params) {
			t.Errorf("%s meta-data: %v %+v", name, err, m)
		}
	}
	for _, args := range [][]string{nil, {"nope", "start"}, {"mount"}, {"mount", "start", "x"}} {
		var out, errb bytes.Buffer
		if rc := run(args, func(string) string { return "" }, &out, &errb); rc != ErrArgs || errb.Len() == 0 {
			t.Errorf("%q: %d %q, want OCF_ERR_ARGS and a usage", args, rc, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"mount", "reload"}, func(string) string { return "" }, &out, &errb); rc != ErrConfigured {
		// Parameters are checked first: a missing one is a configuration error.
		t.Errorf("reload without parameters: %d", rc)
	}
	env := map[string]string{"OCF_RESKEY_device": "/d", "OCF_RESKEY_directory": "/m", "OCF_RESKEY_fstype": "ext4"}
	if rc := run([]string{"mount", "reload"}, func(k string) string { return env[k] }, &out, &errb); rc != ErrUnimplemented {
		t.Errorf("reload: %d, want OCF_ERR_UNIMPLEMENTED", rc)
	}
	if rc := run([]string{"store", "start"}, func(k string) string {
		return map[string]string{"OCF_RESKEY_config": "c", "OCF_RESKEY_nofile": "many"}[k]
	}, &out, &errb); rc != ErrConfigured {
		t.Errorf("nofile=many: %d, want OCF_ERR_CONFIGURED", rc)
	}
}

// sh runs script with sh -ec under wrapper (unshare …) and returns its
// output, failing the test when it fails.
func sh(t *testing.T, wrapper []string, script string, env ...string) string {
	t.Helper()
	cmd := exec.Command(wrapper[0], append(wrapper[1:], "sh", "-ec", script)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", wrapper, err, out)
	}
	return string(out)
}

// TestMountAgent runs ocf-tester on the mount agent with a bind mount, then
// stops it while a process holds the partition: the stop ends that process
// and unmounts. All in a mount namespace of its own.
func TestMountAgent(t *testing.T) {
	testutil.Long(t)
	if os.Geteuid() != 0 {
		t.Skip("mounts: root only")
	}
	programs.Require(t, "ocf-tester", "xmllint", "unshare", "mount")
	agent := installShim(t, "mount")
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "san"), filepath.Join(dir, "mnt", "data")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "mail"), []byte("kept"), 0o644)
	out := sh(t, []string{"unshare", "--mount", "--propagation", "private"}, `
ocf-tester -n m1 -o device="$SRC" -o directory="$DST" -o fstype=none -o options=bind "$AGENT"
export OCF_ROOT=/usr/lib/ocf OCF_RESKEY_device="$SRC" OCF_RESKEY_directory="$DST" OCF_RESKEY_fstype=none OCF_RESKEY_options=bind
"$AGENT" start
echo "read: $(cat "$DST/mail")"
"$AGENT" monitor && echo monitor-running
(cd "$DST" && exec sleep 300) &
holder=$!
sleep 0.2
"$AGENT" stop && echo stopped
if kill -0 $holder 2>/dev/null; then echo holder-alive; else echo holder-ended; fi
grep -q " $DST " /proc/self/mountinfo && echo still-mounted || echo unmounted
rc=0; "$AGENT" monitor || rc=$?; echo "monitor-after-stop $rc"
rc=0; OCF_RESKEY_directory=relative "$AGENT" start || rc=$?; echo "relative $rc"
rc=0; OCF_RESKEY_device=/dev/no-such-disk OCF_RESKEY_fstype=ext4 OCF_RESKEY_options= "$AGENT" start || rc=$?; echo "missing-device $rc"
`, "AGENT="+agent, "SRC="+src, "DST="+dst)
	for _, want := range []string{"passed all tests", "read: kept", "monitor-running", "stopped", "holder-ended", "unmounted",
		"monitor-after-stop 7", "relative 6", "missing-device 5"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// TestVIPAgent runs ocf-tester on the vip agent in a network namespace of
// its own, then starts it and checks that a neighbour on the link learnt the
// address's new owner from the gratuitous ARP, with no request of its own.
func TestVIPAgent(t *testing.T) {
	testutil.Long(t)
	if os.Geteuid() != 0 {
		t.Skip("network namespaces: root only")
	}
	programs.Require(t, "ocf-tester", "xmllint", "unshare", "nsenter", "ip")
	if _, err := os.Stat(filepath.Join(haBin, "send_arp")); err != nil {
		t.Fatalf("resource-agents' send_arp is required: %v", err)
	}
	agent := installShim(t, "vip")
	out := sh(t, []string{"unshare", "--net"}, `
ip link set lo up
unshare --net sleep 60 &
peer=$!
trap 'kill $peer' EXIT
sleep 0.2
ip link add v0 type veth peer name v1
ip link set v1 netns $peer
ip link set v0 up
ip addr add 10.123.0.1/24 dev v0
nsenter -t $peer -n sh -c 'ip link set v1 up; ip addr add 10.123.0.2/24 dev v1; sysctl -qw net.ipv4.conf.v1.arp_accept=1'
ocf-tester -n vip1 -o ip=10.123.0.50 "$AGENT"
export OCF_ROOT=/usr/lib/ocf OCF_RESKEY_ip=10.123.0.50
"$AGENT" start
echo "addr: $(ip -o -4 addr show dev v0 | grep -o '10.123.0.50/[0-9]*')"
sleep 0.3
echo "mac: $(ip -o link show v0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)"
echo "neigh: $(nsenter -t $peer -n ip neigh show 10.123.0.50)"
"$AGENT" stop
echo "after-stop: $(ip -o -4 addr show dev v0 | grep -c 10.123.0.50 || true)"
rc=0; OCF_RESKEY_ip=10.124.0.5 "$AGENT" start || rc=$?; echo "other-network $rc"
rc=0; OCF_RESKEY_ip=not-an-ip "$AGENT" start || rc=$?; echo "bad-ip $rc"
`, "AGENT="+agent)
	for _, want := range []string{"passed all tests", "addr: 10.123.0.50/24", "after-stop: 0", "other-network 5", "bad-ip 6"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	var mac string
	for _, l := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(l, "mac: "); ok {
			mac = m
		}
	}
	if want := fmt.Sprintf("lladdr %s", mac); mac == "" || !strings.Contains(out, want) {
		t.Errorf("the neighbour did not learn %s from the announcement:\n%s", want, out)
	}
}
