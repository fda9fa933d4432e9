package initd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDebianKeepalivedService runs Debian's keepalived.service (Type=notify,
// ConditionFileNotEmpty, EnvironmentFile, ExecReload with $MAINPID) as the
// deploy action `systemctl reload-or-restart keepalived` drives it.
func TestDebianKeepalivedService(t *testing.T) {
	if _, err := os.Stat("/lib/systemd/system/keepalived.service"); err != nil {
		t.Fatalf("keepalived is not installed: %v", err)
	}
	n := newNode(t)
	etc := filepath.Join(n.dir, "etc-keepalived")
	os.MkdirAll(etc, 0755)
	conf := filepath.Join(etc, "keepalived.conf")
	os.WriteFile(conf, nil, 0644)
	// VRRP needs a real interface: a veth pair inside the node's namespace
	n.extra = []string{"mount --bind " + etc + " /etc/keepalived",
		"ip link add eth0 type veth peer name eth1", "ip link set eth1 up", "ip link set eth0 up",
		"ip addr add 192.0.2.10/24 dev eth0"}
	n.start()
	// an empty configuration: the condition fails, the unit is skipped, not failed
	if _, errOut, code := n.ctl("reload-or-restart", "keepalived"); code != 0 {
		t.Fatalf("skipped start: %d %s", code, errOut)
	}
	if st := n.prop("keepalived", "ActiveState"); st != "inactive" {
		t.Fatalf("with an empty config: %s", st)
	}
	os.WriteFile(conf, []byte("global_defs {\n  router_id lab1\n}\nvrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 100\n  virtual_ipaddress {\n    192.0.2.77/24\n  }\n}\n"), 0644)
	n.must("reload-or-restart", "keepalived")
	pid := n.mainPID("keepalived")
	if st := n.prop("keepalived", "ActiveState"); st != "active" || !pidAlive(pid) || procComm(pid) != "keepalived" {
		t.Fatalf("keepalived: %s pid %d (%s)\n%s", st, pid, procComm(pid), readFile(t, filepath.Join(n.logs, "mailfleet-lab", "keepalived.service.log")))
	}
	n.must("reload-or-restart", "keepalived")
	// The point: a reload that restarted keepalived would show a new main
	// PID by now (its start takes a few milliseconds).
	time.Sleep(200 * time.Millisecond)
	if p := n.mainPID("keepalived"); p != pid || n.prop("keepalived", "ActiveState") != "active" {
		t.Errorf("reload changed the main PID %d -> %d", pid, p)
	}
	var children []int
	for _, p := range n.nsPIDs() {
		if procComm(p) == "keepalived" && p != pid {
			children = append(children, p)
		}
	}
	n.must("stop", "keepalived")
	for _, p := range append(children, pid) {
		if pidAlive(p) {
			t.Errorf("keepalived process %d left after stop", p)
		}
	}
	if out, _, _ := n.ctl("status", "keepalived"); !strings.Contains(out, "inactive (dead)") {
		t.Errorf("status: %s", out)
	}
}
