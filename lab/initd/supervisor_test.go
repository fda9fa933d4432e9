package initd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
)

func TestStartStopRestartOnFailure(t *testing.T) {
	testutil.Long(t)
	n := newNode(t)
	n.writeUnit("crashy.service", `[Unit]
Description=restarts on failure
[Service]
ExecStart=/bin/sleep 1000
Restart=on-failure
RestartSec=200ms
`)
	n.writeUnit("fragile.service", `[Service]
ExecStart=/bin/sleep 1000
Restart=no
`)
	n.start()
	n.must("start", "crashy", "fragile.service")
	for _, u := range []string{"crashy", "fragile"} {
		if out, _, code := n.ctl("is-active", u); code != 0 || out != "active\n" {
			t.Fatalf("is-active %s: %q %d", u, out, code)
		}
	}
	p1, f1 := n.mainPID("crashy"), n.mainPID("fragile")
	if p1 == 0 || f1 == 0 || !pidAlive(p1) {
		t.Fatalf("main PIDs %d %d", p1, f1)
	}
	syscall.Kill(p1, syscall.SIGKILL)
	syscall.Kill(f1, syscall.SIGKILL)
	var p2 int
	testutil.Until(t, 5*time.Second, "crashy restarted", func() bool {
		p2 = n.mainPID("crashy")
		return p2 != 0 && p2 != p1 && n.prop("crashy", "ActiveState") == "active"
	})
	if r := n.prop("crashy", "NRestarts"); r != "1" {
		t.Errorf("NRestarts %s", r)
	}
	testutil.Until(t, 5*time.Second, "fragile failed", func() bool { return n.prop("fragile", "ActiveState") == "failed" })
	// The point: a restart would come after the default RestartSec (100 ms);
	// five times that passes and fragile is still failed.
	time.Sleep(500 * time.Millisecond)
	if st := n.prop("fragile", "ActiveState"); st != "failed" {
		t.Errorf("Restart=no unit restarted: %s", st)
	}
	if out, _, code := n.ctl("is-failed", "fragile"); code != 0 || out != "failed\n" {
		t.Errorf("is-failed: %q %d", out, code)
	}
	if _, _, code := n.ctl("is-active", "-q", "fragile"); code != 3 {
		t.Errorf("is-active of a failed unit: exit %d, want 3", code)
	}
	if res := n.prop("fragile", "Result"); res != "signal" {
		t.Errorf("Result %q", res)
	}
	// a clean stop is not restarted
	n.must("stop", "crashy")
	testutil.Until(t, 5*time.Second, "crashy stopped", func() bool { return n.prop("crashy", "ActiveState") == "inactive" && !pidAlive(p2) })
	// The point: twice crashy's RestartSec (200 ms) passes without a restart.
	time.Sleep(400 * time.Millisecond)
	if st := n.prop("crashy", "ActiveState"); st != "inactive" {
		t.Errorf("after stop: %s (restarted)", st)
	}
	// kill: SIGTERM is a clean end, Restart=on-failure does not restart
	n.must("start", "crashy")
	p3 := n.mainPID("crashy")
	n.must("kill", "crashy")
	testutil.Until(t, 3*time.Second, "killed", func() bool { return n.prop("crashy", "ActiveState") == "inactive" })
	if pidAlive(p3) {
		t.Errorf("kill: %d alive", p3)
	}
	if _, errOut, code := n.ctl("kill", "--kill-whom=main", "-s", "HUP", "crashy"); code != 1 || !strings.Contains(errOut, "No main process") {
		t.Errorf("kill of an inactive unit: %d %q", code, errOut)
	}
	n.must("reset-failed", "fragile")
	if st := n.prop("fragile", "ActiveState"); st != "inactive" {
		t.Errorf("after reset-failed: %s", st)
	}
	// unknown unit
	_, errOut, code := n.ctl("start", "nonexistent")
	if code != 5 || errOut != "Failed to start nonexistent.service: Unit nonexistent.service not found.\n" {
		t.Errorf("unknown unit: %d %q", code, errOut)
	}
	if out, _, code := n.ctl("is-active", "nonexistent"); code != 3 || out != "inactive\n" {
		t.Errorf("is-active unknown: %q %d", out, code)
	}
}

func TestFailedStartMessageAndStartLimit(t *testing.T) {
	n := newNode(t)
	n.writeUnit("bad.service", `[Service]
ExecStartPre=/bin/false
ExecStart=/bin/sleep 1000
`)
	n.writeUnit("flappy.service", `[Unit]
StartLimitBurst=3
StartLimitIntervalSec=30s
[Service]
ExecStart=/bin/sh -c 'exit 7'
Restart=always
RestartSec=50ms
`)
	n.writeUnit("skipped.service", `[Unit]
ConditionPathExists=/nonexistent/file
[Service]
ExecStart=/bin/sleep 1000
`)
	n.writeUnit("prevented.service", `[Service]
ExecStart=/bin/sh -c 'exit 255'
Restart=on-failure
RestartPreventExitStatus=255
`)
	n.start()
	_, errOut, code := n.ctl("start", "bad")
	want := "Job for bad.service failed because the control process exited with error code.\nSee \"systemctl status bad.service\" and \"journalctl -xeu bad.service\" for details.\n"
	if code != 1 || errOut != want {
		t.Errorf("failed start: %d %q", code, errOut)
	}
	if st := n.prop("bad", "ActiveState"); st != "failed" {
		t.Errorf("bad: %s", st)
	}
	n.must("start", "flappy")
	testutil.Until(t, 5*time.Second, "start limit hit", func() bool { return n.prop("flappy", "Result") == "start-limit-hit" })
	if st := n.prop("flappy", "ActiveState"); st != "failed" {
		t.Errorf("flappy: %s", st)
	}
	if _, errOut, code := n.ctl("start", "flappy"); code != 1 || !strings.Contains(errOut, "attempted too often") {
		t.Errorf("start after limit: %d %q", code, errOut)
	}
	// a false condition skips, it does not fail
	if _, errOut, code := n.ctl("start", "skipped"); code != 0 {
		t.Errorf("skipped: %d %q", code, errOut)
	}
	if st := n.prop("skipped", "ActiveState"); st != "inactive" {
		t.Errorf("skipped: %s", st)
	}
	n.must("start", "prevented")
	testutil.Until(t, 3*time.Second, "prevented failed", func() bool { return n.prop("prevented", "ActiveState") == "failed" })
	// The point: six times prevented's RestartSec (50 ms) pass without a
	// restart.
	time.Sleep(300 * time.Millisecond)
	if r := n.prop("prevented", "NRestarts"); r != "0" {
		t.Errorf("RestartPreventExitStatus: %s restarts", r)
	}
}

func TestNotifyReadiness(t *testing.T) {
	testutil.Long(t)
	n := newNode(t)
	bin := testBinary(t)
	n.writeUnit("slowready.service", fmt.Sprintf(`[Service]
Type=notify
Environment=%s=notifyd
ExecStart=%s 1s
`, roleEnv, bin))
	n.writeUnit("slowerready.service", fmt.Sprintf(`[Service]
Type=notify
Environment=%s=notifyd
ExecStart=%s 4s
`, roleEnv, bin))
	n.writeUnit("neverready.service", fmt.Sprintf(`[Service]
Type=notify
Environment=%s=notifyd
TimeoutStartSec=1
ExecStart=%s never
`, roleEnv, bin))
	n.start()
	t0 := time.Now()
	n.must("start", "slowready")
	if d := time.Since(t0); d < time.Second {
		t.Errorf("start returned after %s, before READY=1", d)
	}
	if st := n.prop("slowready", "ActiveState"); st != "active" {
		t.Errorf("after start: %s", st)
	}
	if s := n.prop("slowready", "StatusText"); s != "serving" {
		t.Errorf("STATUS=: %q", s)
	}
	_, errOut, code := n.ctl("start", "neverready")
	if code != 1 || !strings.Contains(errOut, "Job for neverready.service failed because a timeout was exceeded.") {
		t.Errorf("timeout: %d %q", code, errOut)
	}
	if st := n.prop("neverready", "ActiveState"); st != "failed" {
		t.Errorf("neverready: %s", st)
	}
	for _, p := range n.nsPIDs() {
		if strings.Contains(procCmdline(p), " never") {
			t.Errorf("process of the timed-out unit left: %d %s", p, procCmdline(p))
		}
	}
	// --no-block returns at once
	t0 = time.Now()
	n.must("start", "--no-block", "slowerready")
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("--no-block took %s", d)
	}
	if st := n.prop("slowerready", "ActiveState"); st != "activating" {
		t.Errorf("--no-block: %s right after", st)
	}
	testutil.Until(t, 10*time.Second, "active", func() bool { return n.prop("slowerready", "ActiveState") == "active" })
}

func TestForkingPIDFile(t *testing.T) {
	n := newNode(t)
	n.writeUnit("forky.service", `[Service]
Type=forking
PIDFile=/run/forky.pid
ExecStart=/bin/sh -c '/bin/sleep 1000 & echo $! > /run/forky.pid'
ExecStopPost=/bin/rm -f /run/forky.pid
`)
	n.start()
	n.must("start", "forky")
	pid := n.mainPID("forky")
	if pid == 0 || !pidAlive(pid) || !strings.HasPrefix(procCmdline(pid), "/bin/sleep 1000") {
		t.Fatalf("main PID %d (%s)", pid, procCmdline(pid))
	}
	// the daemon was orphaned and reparented to the supervisor (subreaper)
	if pp := ppid(pid); pp != n.pid {
		t.Errorf("parent of the daemon: %d, supervisor %d", pp, n.pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	testutil.Until(t, 3*time.Second, "forky failed", func() bool { return n.prop("forky", "ActiveState") == "failed" })
	if z := zombie(pid); z {
		t.Errorf("daemon %d not reaped", pid)
	}
	n.must("start", "forky")
	pid = n.mainPID("forky")
	n.must("stop", "forky")
	if pidAlive(pid) {
		t.Errorf("daemon %d survived stop", pid)
	}
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	p, _ := strconv.Atoi(f[1])
	return p
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0] == "Z"
}

func TestRequiresRestartSemantics(t *testing.T) {
	testutil.Long(t)
	n := newNode(t)
	journal := filepath.Join(n.dir, "journal")
	rec := func(what string) string { return fmt.Sprintf("/bin/sh -c 'echo %s >> %s'", what, journal) }
	n.writeUnit("coro.service", fmt.Sprintf(`[Unit]
Description=corosync-like
Requires=network-online.target
After=network-online.target
[Service]
ExecStartPre=%s
ExecStart=/bin/sleep 1000
ExecStopPost=%s
`, rec("start-coro"), rec("stop-coro")))
	n.writeUnit("pace.service", fmt.Sprintf(`[Unit]
Description=pacemaker-like
After=coro.service
Requires=coro.service
Wants=dbus.service
[Service]
ExecStartPre=%s
ExecStart=/bin/sleep 1000
ExecStopPost=%s
`, rec("start-pace"), rec("stop-pace")))
	n.start()
	n.must("start", "pace")
	if got := readFile(t, journal); got != "start-coro\nstart-pace\n" {
		t.Fatalf("start pulls in the requirement first: %q", got)
	}
	if st := n.prop("dbus", "ActiveState"); st != "inactive" {
		t.Errorf("Wants=dbus.service started it in the lab: %s", st)
	}
	os.WriteFile(journal, nil, 0644)
	c1, p1 := n.mainPID("coro"), n.mainPID("pace")
	n.must("restart", "coro")
	if got := readFile(t, journal); got != "stop-pace\nstop-coro\nstart-coro\nstart-pace\n" {
		t.Errorf("restart coro: %q", got)
	}
	c2, p2 := n.mainPID("coro"), n.mainPID("pace")
	if c2 == c1 || p2 == p1 || pidAlive(c1) || pidAlive(p1) {
		t.Errorf("restart: coro %d->%d pace %d->%d", c1, c2, p1, p2)
	}
	os.WriteFile(journal, nil, 0644)
	n.must("restart", "coro", "pace")
	if got := readFile(t, journal); got != "stop-pace\nstop-coro\nstart-coro\nstart-pace\n" {
		t.Errorf("restart coro pace: %q", got)
	}
	os.WriteFile(journal, nil, 0644)
	n.must("stop", "coro")
	if got := readFile(t, journal); got != "stop-pace\nstop-coro\n" {
		t.Errorf("stop coro: %q", got)
	}
	for _, u := range []string{"coro", "pace"} {
		if st := n.prop(u, "ActiveState"); st != "inactive" {
			t.Errorf("%s: %s", u, st)
		}
	}
	// a failed requirement fails the dependent
	n.writeUnit("coro.service.d/broken.conf", "[Service]\nExecStartPre=/bin/false\n")
	n.must("daemon-reload")
	_, errOut, code := n.ctl("start", "pace")
	if code != 1 || !strings.Contains(errOut, "A dependency job for pace.service failed.") {
		t.Errorf("dependency failure: %d %q", code, errOut)
	}
}

func TestEnableBootAndShutdown(t *testing.T) {
	n := newNode(t)
	n.writeUnit("web@.service", `[Unit]
Description=web %i
[Service]
ExecStart=/bin/sh -c 'echo %N %I; exec /bin/sleep 1000'
[Install]
WantedBy=multi-user.target
Alias=www@.service
`)
	n.writeUnit("tree.service", `[Service]
ExecStart=/bin/sh -c '/bin/sleep 1001 & (setsid /bin/sleep 1002 &); exec /bin/sleep 1003'
[Install]
WantedBy=multi-user.target
`)
	n.start()
	if out, _, code := n.ctl("is-enabled", "web@a1"); code != 1 || out != "disabled\n" {
		t.Errorf("is-enabled before: %q %d", out, code)
	}
	_, errOut, _ := n.ctl("enable", "web@a1")
	link := filepath.Join(n.units, "multi-user.target.wants", "web@a1.service")
	if dst, err := os.Readlink(link); err != nil || dst != "/etc/systemd/system/web@.service" {
		t.Fatalf("enable link: %q %v (%s)", dst, err, errOut)
	}
	if !strings.Contains(errOut, "Created symlink /etc/systemd/system/multi-user.target.wants/web@a1.service → /etc/systemd/system/web@.service.") {
		t.Errorf("enable output %q", errOut)
	}
	if _, errOut, _ := n.ctl("enable", "--quiet", "--now", "tree"); errOut != "" {
		t.Errorf("--quiet printed %q", errOut)
	}
	if st := n.prop("tree", "ActiveState"); st != "active" {
		t.Errorf("enable --now: %s", st)
	}
	if out, _, code := n.ctl("is-enabled", "web@a1", "tree"); code != 0 || out != "enabled\nenabled\n" {
		t.Errorf("is-enabled: %q %d", out, code)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if left := n.nsPIDs(); len(left) != 0 {
		t.Fatalf("left after SIGTERM: %v", left)
	}
	n.start()
	testutil.Until(t, 5*time.Second, "booted", func() bool {
		return n.prop("web@a1", "ActiveState") == "active" && n.prop("tree", "ActiveState") == "active"
	})
	testutil.Until(t, 2*time.Second, "log", func() bool {
		return strings.Contains(readFile(t, filepath.Join(n.logs, "mailfleet-lab", "web@a1.service.log")), "web@a1 a1\n")
	})
	// alias of the template, by name
	if id := n.prop("www@a1", "Id"); id != "web@a1.service" {
		t.Errorf("alias: %q", id)
	}
	var pids []int
	testutil.Until(t, 2*time.Second, "tree processes", func() bool {
		pids = pids[:0]
		for _, p := range n.nsPIDs() {
			if strings.HasPrefix(procCmdline(p), "/bin/sleep 100") {
				pids = append(pids, p)
			}
		}
		return len(pids) == 4
	})
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if pidAlive(p) {
			t.Errorf("process %d (%s) survived the supervisor's SIGTERM", p, procCmdline(p))
		}
	}
	if left := n.nsPIDs(); len(left) != 0 {
		t.Errorf("left after SIGTERM: %v", left)
	}
	if !strings.Contains(n.stderr.String(), "stopped; exiting") {
		t.Errorf("supervisor log: %s", n.stderr)
	}
	if n.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("supervisor exit %d", n.cmd.ProcessState.ExitCode())
	}
	// disable works offline
	cmdOut, errOut, code := n.ctl("--root", filepath.Join(n.dir, "root"), "disable", "web@a1")
	if code != 0 || !strings.Contains(errOut, `Removed "/etc/systemd/system/multi-user.target.wants/web@a1.service".`) {
		t.Errorf("offline disable: %d %q %q", code, cmdOut, errOut)
	}
	if _, err := os.Lstat(link); err == nil {
		t.Errorf("link still there")
	}
}

func TestServiceEnvironmentCredentialsLimits(t *testing.T) {
	n := newNode(t)
	envFile := filepath.Join(n.dir, "defaults")
	os.WriteFile(envFile, []byte("WORDS=\"x   two  words\"\nFROMFILE=yes\n"), 0644)
	n.writeUnit("envy.service", fmt.Sprintf(`[Unit]
Description=environment and credentials
[Service]
Type=oneshot
RemainAfterExit=yes
User=nobody
Environment="SPACED=a  b" FROMFILE=no
EnvironmentFile=%s
EnvironmentFile=-/nonexistent/file
RuntimeDirectory=envy envy/sub
RuntimeDirectoryMode=0750
StateDirectory=envy
LogsDirectory=envy
LimitNOFILE=4321:5432
WorkingDirectory=/tmp
PrivateTmp=yes
ProtectSystem=full
NoNewPrivileges=yes
ExecStart=/bin/sh -c 'echo uid=$(id -u) gid=$(id -g) nofile=$(ulimit -n) hard=$(ulimit -Hn) pwd=$(pwd) home=$HOME lang=$LANG path=$PATH inv=$${#INVOCATION_ID} spaced="$SPACED" fromfile=$FROMFILE'
ExecStart=/bin/echo $WORDS ${WORDS}
ExecStart=-/bin/false
ExecStartPost=+/bin/sh -c 'echo post-uid=$(id -u)'
`, envFile))
	n.writeUnit("quiet.service", `[Service]
Type=oneshot
StandardOutput=null
ExecStart=/bin/echo should not be logged
`)
	n.writeUnit("template@.service", `[Service]
ExecStart=/bin/sleep 1000
`)
	n.start()
	n.must("start", "envy")
	if st := n.prop("envy", "SubState"); st != "exited" {
		t.Errorf("oneshot RemainAfterExit: %s", st)
	}
	logText := readFile(t, filepath.Join(n.logs, "mailfleet-lab", "envy.service.log"))
	want := "uid=65534 gid=65534 nofile=4321 hard=5432 pwd=/tmp home=/nonexistent lang=C.UTF-8 path=" + labPath +
		" inv=32 spaced=a  b fromfile=yes\nx two words x   two  words\npost-uid=0\n"
	if logText != want {
		t.Errorf("log:\n%q\nwant\n%q", logText, want)
	}
	// the supervisor's view of the directories, from inside the node
	out, err := exec.Command("nsenter", fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.pid), "stat", "-c", "%n %U %a",
		"/run/envy", "/run/envy/sub", "/var/lib/envy", "/var/log/envy").CombinedOutput()
	if err != nil || string(out) != "/run/envy nobody 750\n/run/envy/sub nobody 750\n/var/lib/envy nobody 755\n/var/log/envy nobody 755\n" {
		t.Errorf("directories: %v\n%s", err, out)
	}
	n.must("start", "quiet")
	if _, err := os.Stat(filepath.Join(n.logs, "mailfleet-lab", "quiet.service.log")); err == nil {
		t.Errorf("StandardOutput=null wrote a log")
	}
	if st := n.prop("quiet", "ActiveState"); st != "inactive" {
		t.Errorf("oneshot without RemainAfterExit: %s", st)
	}
	_, errOut, code := n.ctl("start", "template@")
	if code != 1 || !strings.Contains(errOut, "is missing the instance name") {
		t.Errorf("template without instance: %d %q", code, errOut)
	}
	n.must("stop", "envy")
	out, _ = exec.Command("nsenter", fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.pid), "ls", "/run").CombinedOutput()
	if strings.Contains(string(out), "envy") {
		t.Errorf("RuntimeDirectory left after stop: %s", out)
	}
}

func TestStopInterruptsStartAndShutdownDuringStart(t *testing.T) {
	n := newNode(t)
	bin := testBinary(t)
	n.writeUnit("hung.service", fmt.Sprintf(`[Service]
Type=notify
Environment=%s=notifyd
ExecStart=%s never
[Install]
WantedBy=multi-user.target
`, roleEnv, bin))
	n.start()
	n.must("start", "--no-block", "hung")
	testutil.Until(t, 5*time.Second, "activating", func() bool { return n.prop("hung", "ActiveState") == "activating" })
	t0 := time.Now()
	n.must("stop", "hung")
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("stop of a starting unit took %s", d)
	}
	if st := n.prop("hung", "ActiveState"); st != "inactive" && st != "failed" {
		t.Errorf("after stop: %s", st)
	}
	// enabled: boot starts it and SIGTERM arrives while it waits for READY=1
	n.must("enable", "hung")
	n.stop()
	n.start()
	testutil.Until(t, 5*time.Second, "activating", func() bool { return n.prop("hung", "ActiveState") == "activating" })
	t0 = time.Now()
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("shutdown during a start took %s", d)
	}
	if left := n.nsPIDs(); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

// TestAmbientCapabilities: the rendered mailfleetd units run as an
// unprivileged user that binds the mail ports with CAP_NET_BIND_SERVICE.
func TestAmbientCapabilities(t *testing.T) {
	n := newNode(t)
	listen := `/usr/bin/perl -MIO::Socket::INET -e '$$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:143", Listen => 5, ReuseAddr => 1) or die "bind: $$!\n"; print "bound uid=$$<\n"; $$|=1; sleep 1000'`
	n.writeUnit("capable.service", `[Service]
User=nobody
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ExecStart=`+listen+`
`)
	n.writeUnit("incapable.service", `[Service]
User=nobody
ExecStart=`+listen+`
`)
	n.start()
	n.must("start", "capable", "incapable")
	logs := filepath.Join(n.logs, "mailfleet-lab")
	testutil.Until(t, 5*time.Second, "bound", func() bool {
		return strings.Contains(readFile(t, filepath.Join(logs, "capable.service.log")), "bound uid=65534")
	})
	testutil.Until(t, 5*time.Second, "refused", func() bool {
		return strings.Contains(readFile(t, filepath.Join(logs, "incapable.service.log")), "bind: Permission denied")
	})
	if st := n.prop("capable", "ActiveState"); st != "active" {
		t.Errorf("capable: %s", st)
	}
}

func TestMaskedAndRemainAfterExit(t *testing.T) {
	n := newNode(t)
	n.writeUnit("once.service", "[Service]\nExecStart=/bin/true\nRemainAfterExit=yes\n")
	n.writeUnit("hidden.service", "[Service]\nExecStart=/bin/sleep 1000\n")
	n.start()
	n.must("start", "once")
	testutil.Until(t, 3*time.Second, "exited", func() bool { return n.prop("once", "SubState") == "exited" })
	if st := n.prop("once", "ActiveState"); st != "active" {
		t.Errorf("RemainAfterExit: %s", st)
	}
	// a changed unit file is noticed on the next start, without daemon-reload
	n.writeUnit("once.service", "[Service]\nExecStart=/bin/echo version two\nRemainAfterExit=yes\n")
	n.must("restart", "once")
	testutil.Until(t, 3*time.Second, "new ExecStart", func() bool {
		return strings.Contains(readFile(t, filepath.Join(n.logs, "mailfleet-lab", "once.service.log")), "version two")
	})
	// a unit file in /etc/systemd/system cannot be masked; one in /lib can
	if _, _, code := n.ctl("mask", "hidden"); code != 1 {
		t.Errorf("mask of a unit in /etc: %d", code)
	}
	n.must("mask", "ssh")
	if out, _, code := n.ctl("is-enabled", "ssh"); code != 1 || out != "masked\n" {
		t.Errorf("is-enabled masked: %d %q", code, out)
	}
	if _, errOut, code := n.ctl("start", "ssh"); code != 1 || errOut != "Failed to start ssh.service: Unit ssh.service is masked.\n" {
		t.Errorf("start masked: %d %q", code, errOut)
	}
	n.must("unmask", "ssh")
	if _, err := os.Lstat(filepath.Join(n.units, "ssh.service")); err == nil {
		t.Errorf("unmask left the link")
	}
}

// TestConcurrentClients: jobs, reloads and queries from several clients at
// once (run with -race, the supervisor's own race reports fail the test).
func TestConcurrentClients(t *testing.T) {
	testutil.Long(t)
	n := newNode(t)
	for _, u := range []string{"a", "b", "c"} {
		n.writeUnit(u+".service", "[Unit]\nAfter=a.service\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep 1000\nRestart=always\n")
	}
	n.writeUnit("c.service.d/dep.conf", "[Unit]\nRequires=b.service\nAfter=b.service\n")
	n.start()
	n.must("start", "a", "b", "c")
	deadline := time.Now().Add(3 * time.Second)
	errs := make(chan string, 100)
	done := make(chan struct{})
	jobs := [][]string{{"restart", "b"}, {"restart", "a", "c"}, {"daemon-reload"}, {"status", "a", "b", "c"}, {"reload-or-restart", "c"}, {"list-units"}}
	for _, job := range jobs {
		go func(args []string) {
			defer func() { done <- struct{}{} }()
			for time.Now().Before(deadline) {
				if _, errOut, code := n.ctl(args...); code != 0 && args[0] != "status" {
					errs <- fmt.Sprintf("%v: %d %s", args, code, errOut)
					return
				}
			}
		}(job)
	}
	for range jobs {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for _, u := range []string{"a", "b", "c"} {
		testutil.Until(t, 5*time.Second, u+" active", func() bool { return n.prop(u, "ActiveState") == "active" })
	}
}

// TestNice: Nice= sets the niceness of the service's processes (the
// cluster stack's drop-in runs recovery actions ahead of the mail load),
// and nothing else changes the supervisor's own.
func TestNice(t *testing.T) {
	n := newNode(t)
	n.writeUnit("eager.service", `[Service]
Type=oneshot
Nice=-7
ExecStart=/bin/sh -c 'echo nice=$(nice)'
`)
	n.writeUnit("plain.service", `[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo nice=$(nice)'
`)
	n.start()
	n.must("start", "eager")
	n.must("start", "plain")
	if got := readFile(t, filepath.Join(n.logs, "mailfleet-lab", "eager.service.log")); got != "nice=-7\n" {
		t.Errorf("Nice=-7: %q", got)
	}
	if got := readFile(t, filepath.Join(n.logs, "mailfleet-lab", "plain.service.log")); got != "nice=0\n" {
		t.Errorf("no Nice=: %q (the supervisor's own niceness leaked)", got)
	}
}
