package initd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func rootValue(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile(keyPath(key))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// runShim runs the sysctl shim; in a throwaway network namespace when
// netns, followed by a second invocation in the same namespace (to read
// back).
func runShim(t *testing.T, netns bool, args []string, then ...string) (string, string, int) {
	t.Helper()
	bin := testBinary(t)
	var cmd *exec.Cmd
	if netns {
		script := `"$0" "$@"; rc=$?; `
		if len(then) > 0 {
			script += `INITD_TEST_ROLE=sysctl "$0" ` + strings.Join(then, " ") + `; `
		}
		script += `exit $rc`
		cmd = exec.Command("unshare", append([]string{"--net", "sh", "-c", script, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = append(os.Environ(), roleEnv+"=sysctl")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestSysctlShimNamespaceKeys(t *testing.T) {
	requireRoot(t)
	keys := []string{"net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_keepalive_time",
		"net.ipv4.tcp_max_syn_backlog", "net.ipv4.ip_forward", "fs.file-max", "vm.swappiness", "kernel.pid_max"}
	before := map[string]string{}
	for _, k := range keys {
		before[k] = rootValue(t, k)
	}
	t.Cleanup(func() {
		// should nothing hold, put the machine back as it was
		for _, k := range keys {
			if v := rootValue(t, k); v != before[k] {
				t.Errorf("%s changed on the machine: %q -> %q; restoring", k, before[k], v)
				os.WriteFile(keyPath(k), []byte(before[k]), 0)
			}
		}
	})
	n, _ := strconv.Atoi(before["net.core.somaxconn"])
	kt, _ := strconv.Atoi(before["net.ipv4.tcp_keepalive_time"])
	sb, _ := strconv.Atoi(before["net.ipv4.tcp_max_syn_backlog"])
	fwd := "1"
	if before["net.ipv4.ip_forward"] == "1" {
		fwd = "0"
	}
	fm, _ := strconv.Atoi(before["fs.file-max"])
	want := map[string]string{
		"net.core.somaxconn":           strconv.Itoa(n + 17),
		"net.ipv4.ip_local_port_range": "20001\t30001",
		"net.ipv4.tcp_keepalive_time":  strconv.Itoa(kt + 13),
		"net.ipv4.tcp_max_syn_backlog": strconv.Itoa(sb + 11),
		"net.ipv4.ip_forward":          fwd,
	}
	conf := filepath.Join(t.TempDir(), "60-mailfleet.conf")
	os.WriteFile(conf, []byte(`# generated
net.ipv4.ip_forward = `+fwd+`
fs.file-max = `+strconv.Itoa(fm+1000)+`
net.ipv4.ip_local_port_range = 20001 30001
net.ipv4.tcp_keepalive_time = `+want["net.ipv4.tcp_keepalive_time"]+`
net.ipv4.tcp_max_syn_backlog = `+want["net.ipv4.tcp_max_syn_backlog"]+`
net.core.somaxconn = `+want["net.core.somaxconn"]+`
vm.swappiness = 7
; a comment
-net.ipv4.does_not_exist = 1
net.core.netdev_max_backlog = 5000
`), 0644)
	readBack := []string{"net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_keepalive_time",
		"net.ipv4.tcp_max_syn_backlog", "net.ipv4.ip_forward"}
	out, errOut, code := runShim(t, true, []string{"-p", conf}, readBack...)
	if code != 0 {
		t.Fatalf("sysctl -p: exit %d\n%s%s", code, out, errOut)
	}
	for _, k := range readBack {
		if !strings.Contains(out, k+" = "+want[k]+"\n") {
			t.Errorf("%s not written in the namespace:\n%s", k, out)
		}
	}
	for _, k := range []string{"fs.file-max", "vm.swappiness", "net.core.netdev_max_backlog"} {
		if !strings.Contains(errOut, "sysctl: "+k+" is machine-wide; skipped in the lab\n") {
			t.Errorf("no note for %s: %q", k, errOut)
		}
	}
	// -w, several keys, and a bad one
	out, errOut, code = runShim(t, true, []string{"-w", "net.core.somaxconn=" + want["net.core.somaxconn"], "kernel.pid_max=99999", "fs.file-max=1000"})
	if code != 0 || out != "net.core.somaxconn = "+want["net.core.somaxconn"]+"\n" || strings.Count(errOut, "machine-wide") != 2 {
		t.Errorf("-w: %d %q %q", code, out, errOut)
	}
	if _, errOut, code := runShim(t, true, []string{"-w", "net.ipv4.not_a_key=1"}); code != 1 || !strings.Contains(errOut, "cannot stat") {
		t.Errorf("unknown key: %d %q", code, errOut)
	}
	if out, _, code := runShim(t, true, []string{"-q", "-w", "net.ipv4.ip_forward=" + fwd}); code != 0 || out != "" {
		t.Errorf("-q: %d %q", code, out)
	}
	// reading, in the machine's namespace too
	if out, _, code := runShim(t, false, []string{"-n", "net.core.somaxconn"}); code != 0 || out != before["net.core.somaxconn"]+"\n" {
		t.Errorf("read: %d %q", code, out)
	}
	if out, _, code := runShim(t, false, []string{"net.ipv4.ip_forward"}); code != 0 || out != "net.ipv4.ip_forward = "+before["net.ipv4.ip_forward"]+"\n" {
		t.Errorf("read: %d %q", code, out)
	}
	// in the machine's own network namespace every key is machine-wide
	// (the value written is the current one, so a mistake changes nothing)
	_, errOut, code = runShim(t, false, []string{"-w", "net.ipv4.ip_forward=" + before["net.ipv4.ip_forward"], "fs.file-max=" + before["fs.file-max"]})
	if code != 0 || strings.Count(errOut, "machine-wide; skipped") != 2 {
		t.Errorf("initial namespace: %d %q", code, errOut)
	}
}

// TestGlobalNetKeysCoverKernel checks globalNetKeys against this kernel:
// every net.* key that a new network namespace lacks or cannot write is
// in the list (device directories aside).
func TestGlobalNetKeysCoverKernel(t *testing.T) {
	requireRoot(t)
	list := func(netns bool) map[string]bool {
		script := `cd /proc/sys && find net -type f -perm -u+w | sort; echo ---; find net -type f | sort`
		var cmd *exec.Cmd
		if netns {
			cmd = exec.Command("unshare", "--net", "sh", "-c", script)
		} else {
			cmd = exec.Command("sh", "-c", script)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		w, all, _ := strings.Cut(string(out), "---\n")
		m := map[string]bool{}
		for _, k := range strings.Fields(all) {
			m[strings.ReplaceAll(k, "/", ".")] = false
		}
		for _, k := range strings.Fields(w) {
			m[strings.ReplaceAll(k, "/", ".")] = true
		}
		return m
	}
	root, child := list(false), list(true)
	var missing []string
	for k, rootWritable := range root {
		if strings.Contains(k, ".conf.") || strings.Contains(k, ".neigh.") || !rootWritable {
			continue
		}
		writable, ok := child[k]
		if ok && writable {
			if machineWide(k, false) {
				t.Errorf("%s is per namespace but listed as global", k)
			}
			continue
		}
		if !machineWide(k, false) {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("net keys a namespace lacks or cannot write, not in globalNetKeys: %v", missing)
	}
}
