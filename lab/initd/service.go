package initd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Paths the supervisor writes to.
const (
	labLogDir      = "/var/log/mailfleet-lab"
	notifyDir      = "/run/mailfleet-lab/notify"
	maxStopTimeout = 30 * time.Second
	pidFileWait    = 5 * time.Second
)

// Results, as systemd's Result= property.
const (
	resSuccess    = "success"
	resExitCode   = "exit-code"
	resSignal     = "signal"
	resTimeout    = "timeout"
	resResources  = "resources"
	resStartLimit = "start-limit-hit"
	resProtocol   = "protocol"
	resDependency = "dependency"
	resCoreDump   = "core-dump"
)

// service is the runtime state of one unit.
type service struct {
	m  *manager
	id string     // canonical name, never changes
	op sync.Mutex // one job at a time on this unit

	// guarded by m.mu; unit is replaced only with op held too
	unit         *unitFile
	active, sub  string
	result       string
	mainPID      int
	controlPID   int
	mainStatus   *exitStatus
	gen          int
	invocation   string
	invocations  []string
	since        time.Time
	starts       []time.Time
	nRestarts    int
	statusText   string
	env          map[string]string
	notify       *notifyListener
	restartAbort chan struct{}
	pendingDone  <-chan exitStatus // main's exit, until the start ends
	startCancel  chan struct{}     // closed to interrupt a start in progress
	conditionMsg string
}

func (s *service) isNoop() bool {
	return unitSuffix(s.id) != ".service"
}

// setState records a state change (caller holds m.mu).
func (s *service) setState(active, sub string) {
	if s.active != active {
		s.since = time.Now()
	}
	s.active, s.sub = active, sub
}

func (s *service) state() (string, string) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.active, s.sub
}

// jobError is a failed job, with the result that explains it.
type jobError struct {
	unit, result string
	msg          string
}

func (e *jobError) Error() string { return e.msg }

func (s *service) fail(result, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	s.m.logf("%s: %s", s.unit.Name, msg)
	return &jobError{unit: s.unit.Name, result: result, msg: msg}
}

func newInvocationID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// credentials resolves User=/Group= to a credential (nil: root), the
// user's home and name.
func credentials(sc *serviceConfig) (*syscall.Credential, string, string, error) {
	if sc.User == "" && sc.Group == "" {
		return nil, "/root", "root", nil
	}
	uname := sc.User
	if uname == "" {
		uname = "root"
	}
	var u *user.User
	var err error
	if _, e := strconv.Atoi(uname); e == nil {
		u, err = user.LookupId(uname)
	} else {
		u, err = user.Lookup(uname)
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("user %s: %w", uname, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if sc.Group != "" {
		g, err := user.LookupGroup(sc.Group)
		if err != nil {
			if n, e := strconv.Atoi(sc.Group); e == nil {
				gid = n
			} else {
				return nil, "", "", fmt.Errorf("group %s: %w", sc.Group, err)
			}
		} else {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	for _, gname := range sc.SupplementaryGroups {
		if g, err := user.LookupGroup(gname); err == nil {
			n, _ := strconv.Atoi(g.Gid)
			groups = append(groups, uint32(n))
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, u.HomeDir, u.Username, nil
}

// openOutput opens where a service's output goes.
func (s *service) openOutput(setting string, inherit *os.File) (*os.File, error) {
	switch {
	case setting == "null":
		return nil, nil
	case setting == "inherit" && inherit != nil:
		return inherit, nil
	case strings.HasPrefix(setting, "file:"), strings.HasPrefix(setting, "append:"):
		_, p, _ := strings.Cut(setting, ":")
		flags := os.O_WRONLY | os.O_CREATE
		if strings.HasPrefix(setting, "append:") {
			flags |= os.O_APPEND
		}
		return os.OpenFile(p, flags, 0644)
	case strings.HasPrefix(setting, "truncate:"):
		return os.OpenFile(strings.TrimPrefix(setting, "truncate:"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0644)
	}
	if inherit != nil && (setting == "" || setting == "inherit") {
		return inherit, nil
	}
	// journal, syslog, kmsg, tty, journal+console …: the unit's log file
	if err := os.MkdirAll(labLogDir, 0755); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(labLogDir, s.unit.Name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0640)
}

// runSpec prepares the process attributes shared by every command of a start.
type runCtx struct {
	env    map[string]string
	cred   *syscall.Credential
	dir    string
	stdout *os.File
	stderr *os.File
	nofile *unix.Rlimit
	umask  int
	nice   *int
	caps   []uintptr
}

func (c *runCtx) close() {
	if c.stdout != nil {
		c.stdout.Close()
	}
	if c.stderr != nil && c.stderr != c.stdout {
		c.stderr.Close()
	}
}

// prepare builds the run context of a start (or of a stop/reload of a
// running service).
func (s *service) prepare() (*runCtx, error) {
	sc := &s.unit.Service
	cred, home, uname, err := credentials(sc)
	if err != nil {
		return nil, err
	}
	base := map[string]string{
		"PATH":          labPath,
		"LANG":          "C.UTF-8",
		"HOME":          home,
		"INVOCATION_ID": s.invocation,
	}
	if sc.User != "" {
		base["USER"], base["LOGNAME"] = uname, uname
		base["SHELL"] = "/bin/sh"
	}
	env, err := serviceEnvironment(sc, base)
	if err != nil {
		return nil, err
	}
	env["INVOCATION_ID"] = s.invocation
	c := &runCtx{env: env, cred: cred, umask: -1}
	if cred != nil && cred.Uid != 0 {
		c.caps, err = parseCaps(sc.AmbientCapabilities)
		if err != nil {
			return nil, err
		}
	}
	if sc.hasUMask {
		c.umask = int(sc.UMask)
	}
	if sc.hasNice {
		c.nice = &sc.Nice
	}
	dir := sc.WorkingDirectory
	optionalDir := strings.HasPrefix(dir, "-")
	dir = strings.TrimPrefix(dir, "-")
	if dir == "~" {
		dir = home
	}
	if dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			if !optionalDir {
				return nil, fmt.Errorf("WorkingDirectory %s: not a directory", dir)
			}
			dir = ""
		}
	}
	if dir == "" {
		dir = "/"
	}
	c.dir = dir
	if v := sc.LimitNOFILE; v != "" {
		lim, err := parseRlimit(v)
		if err != nil {
			return nil, fmt.Errorf("LimitNOFILE=%s: %w", v, err)
		}
		c.nofile = &lim
	}
	c.stdout, err = s.openOutput(sc.StandardOutput, nil)
	if err != nil {
		return nil, err
	}
	errSetting := sc.StandardError
	if errSetting == "" {
		errSetting = "inherit"
	}
	if errSetting == "inherit" {
		c.stderr = c.stdout
	} else if c.stderr, err = s.openOutput(errSetting, nil); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func parseRlimit(v string) (unix.Rlimit, error) {
	one := func(s string) (uint64, error) {
		if s == "infinity" {
			return unix.RLIM_INFINITY, nil
		}
		return strconv.ParseUint(s, 10, 64)
	}
	soft, hard, both := strings.Cut(v, ":")
	c, err := one(soft)
	if err != nil {
		return unix.Rlimit{}, err
	}
	h := c
	if both {
		if h, err = one(hard); err != nil {
			return unix.Rlimit{}, err
		}
	}
	return unix.Rlimit{Cur: c, Max: h}, nil
}

// makeDirectories creates RuntimeDirectory= and friends, owned by the user.
func (s *service) makeDirectories(c *runCtx) error {
	sc := &s.unit.Service
	sets := []struct {
		base string
		dirs []string
		mode os.FileMode
	}{
		{"/run", sc.RuntimeDirectory, sc.RuntimeDirectoryMode},
		{"/var/lib", sc.StateDirectory, sc.StateDirectoryMode},
		{"/var/log", sc.LogsDirectory, sc.LogsDirectoryMode},
		{"/var/cache", sc.CacheDirectory, sc.CacheDirectoryMode},
		{"/etc", sc.ConfigurationDirectory, sc.ConfigurationDirectoryMode},
	}
	for _, set := range sets {
		for _, d := range set.dirs {
			d, _, _ = strings.Cut(d, ":")
			if d == "" || strings.Contains(d, "..") || filepath.IsAbs(d) {
				return fmt.Errorf("bad directory name %q", d)
			}
			p := filepath.Join(set.base, d)
			if err := os.MkdirAll(p, set.mode); err != nil {
				return err
			}
			if err := os.Chmod(p, set.mode); err != nil {
				return err
			}
			if c.cred != nil && set.base != "/etc" {
				if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *service) removeRuntimeDirectories() {
	sc := &s.unit.Service
	if sc.RuntimeDirectoryPreserve == "yes" {
		return
	}
	for _, d := range sc.RuntimeDirectory {
		d, _, _ = strings.Cut(d, ":")
		if d != "" && !strings.Contains(d, "..") && !filepath.IsAbs(d) {
			os.RemoveAll(filepath.Join("/run", d))
		}
	}
}

// spawnLine starts one Exec line with the run context.
func (s *service) spawnLine(c *runCtx, l execLine, extra map[string]string) (int, <-chan exitStatus, error) {
	env := c.env
	if len(extra) > 0 {
		env = make(map[string]string, len(c.env)+len(extra))
		for k, v := range c.env {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
	}
	argv := expandArgs(l.Args, env)
	path := lookPath(expandBraced(l.Path, env))
	cred, caps := c.cred, c.caps
	if l.Privileged {
		cred, caps = nil, nil
	}
	return s.m.reaper.spawn(spawnSpec{
		Path: path, Argv: argv, Env: envList(env), Dir: c.dir, Cred: cred,
		Stdout: c.stdout, Stderr: c.stderr, NoFile: c.nofile, UMask: c.umask, Nice: c.nice, AmbientCaps: caps,
	})
}

// runControl runs Exec lines one after the other, each to completion,
// as control processes. The first failing line without "-" stops it.
func (s *service) runControl(c *runCtx, what string, lines []string, timeout time.Duration, extra map[string]string) error {
	for _, raw := range lines {
		l, err := parseExecLine(raw)
		if err != nil {
			return s.fail(resResources, "%s: %v", what, err)
		}
		pid, done, err := s.spawnLine(c, l, extra)
		if err != nil {
			if l.IgnoreFailure {
				continue
			}
			return s.fail(resExitCode, "%s %s: %v", what, l.Path, err)
		}
		s.m.mu.Lock()
		s.controlPID = pid
		s.m.mu.Unlock()
		st, timedOut := waitTimeout(done, timeout)
		s.m.mu.Lock()
		s.controlPID = 0
		s.m.mu.Unlock()
		if timedOut {
			unix.Kill(pid, unix.SIGTERM)
			if _, t := waitTimeout(done, 5*time.Second); t {
				unix.Kill(pid, unix.SIGKILL)
				<-done
			}
			if l.IgnoreFailure {
				continue
			}
			return s.fail(resTimeout, "%s %s timed out", what, l.Path)
		}
		if !st.success() && !s.successStatus(st) && !l.IgnoreFailure {
			res := resExitCode
			if st.Signaled {
				res = resSignal
			}
			return s.fail(res, "%s %s %s", what, l.Path, st)
		}
	}
	return nil
}

func waitTimeout(done <-chan exitStatus, d time.Duration) (exitStatus, bool) {
	if d <= 0 {
		return <-done, false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case st := <-done:
		return st, false
	case <-t.C:
		return exitStatus{}, true
	}
}

// successStatus: SuccessExitStatus= lists extra clean exit codes and signals.
func (s *service) successStatus(st exitStatus) bool {
	return matchStatus(s.unit.Service.SuccessExitStatus, st)
}

func matchStatus(list []string, st exitStatus) bool {
	for _, v := range list {
		if st.Signaled {
			if sig, ok := parseSignal(v); ok && sig == st.Signal {
				return true
			}
			continue
		}
		if n, err := strconv.Atoi(v); err == nil && n == st.Code && !st.Unknown {
			return true
		}
	}
	return false
}

// cleanExit: exit 0, SuccessExitStatus, or SIGHUP/SIGINT/SIGTERM/SIGPIPE.
func (s *service) cleanExit(st exitStatus) bool {
	if st.Unknown || st.success() || s.successStatus(st) {
		return true
	}
	if st.Signaled {
		switch st.Signal {
		case unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGPIPE:
			return true
		}
	}
	return false
}

// shouldRestart applies Restart= to how the main process ended.
func (s *service) shouldRestart(st exitStatus, result string) bool {
	sc := &s.unit.Service
	if matchStatus(sc.RestartPreventExitStatus, st) {
		return false
	}
	clean := result == resSuccess && s.cleanExit(st)
	uncleanSignal := st.Signaled && !clean
	switch sc.Restart {
	case "always":
		return true
	case "on-success":
		return clean
	case "on-failure":
		return !clean
	case "on-abnormal":
		return uncleanSignal || result == resTimeout
	case "on-abort":
		return uncleanSignal
	case "on-watchdog":
		return false
	}
	return false
}

// notifyListener is a service's NOTIFY_SOCKET.
type notifyListener struct {
	conn      *net.UnixConn
	path      string
	ready     chan struct{}
	readyOnce sync.Once
	reloaded  chan struct{}
}

func (s *service) openNotify() (*notifyListener, error) {
	if err := os.MkdirAll(notifyDir, 0755); err != nil {
		return nil, err
	}
	p := filepath.Join(notifyDir, s.invocation[:16])
	os.Remove(p)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	os.Chmod(p, 0666)
	n := &notifyListener{conn: conn, path: p, ready: make(chan struct{}), reloaded: make(chan struct{}, 1)}
	go s.readNotify(n)
	return n, nil
}

func (n *notifyListener) close() {
	n.conn.Close()
	os.Remove(n.path)
}

func (s *service) readNotify(n *notifyListener) {
	buf := make([]byte, 4096)
	for {
		k, err := n.conn.Read(buf)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(buf[:k]), "\n") {
			key, val, _ := strings.Cut(line, "=")
			switch key {
			case "READY":
				if val == "1" {
					n.readyOnce.Do(func() { close(n.ready) })
					select {
					case n.reloaded <- struct{}{}:
					default:
					}
				}
			case "MAINPID":
				if pid, err := strconv.Atoi(val); err == nil && pid > 1 {
					s.setMainPID(pid)
				}
			case "STATUS":
				s.m.mu.Lock()
				s.statusText = val
				s.m.mu.Unlock()
			}
		}
	}
}

// setMainPID adopts a new main process (MAINPID=, PID file). While the
// service is still starting, the exit channel waits for the end of the start.
func (s *service) setMainPID(pid int) {
	s.m.mu.Lock()
	if s.mainPID == pid {
		s.m.mu.Unlock()
		return
	}
	s.mainPID = pid
	s.mainStatus = nil
	gen := s.gen
	running := s.active == "active" || s.active == "reloading"
	s.m.mu.Unlock()
	done := s.m.reaper.wait(pid)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.mainPID != pid || s.gen != gen {
		return
	}
	if running {
		go s.watchMain(gen, pid, done)
	} else {
		s.pendingDone = done
	}
}

// checkConditions evaluates Condition*= (false: skip) and Assert*= (false: fail).
func checkConditions(conds []condition) (bool, string) {
	// "|" conditions: at least one must hold; the others all must
	var triggers []bool
	for _, c := range conds {
		v := c.Value
		trigger := strings.HasPrefix(v, "|")
		v = strings.TrimPrefix(v, "|")
		neg := strings.HasPrefix(v, "!")
		v = strings.TrimPrefix(v, "!")
		name := strings.TrimPrefix(strings.TrimPrefix(c.Key, "Condition"), "Assert")
		ok := true
		switch name {
		case "PathExists":
			_, err := os.Stat(v)
			ok = err == nil
		case "PathExistsGlob":
			m, _ := filepath.Glob(v)
			ok = len(m) > 0
		case "PathIsDirectory":
			fi, err := os.Stat(v)
			ok = err == nil && fi.IsDir()
		case "PathIsSymbolicLink":
			fi, err := os.Lstat(v)
			ok = err == nil && fi.Mode()&os.ModeSymlink != 0
		case "PathIsReadWrite":
			ok = unix.Access(v, unix.W_OK) == nil
		case "FileNotEmpty":
			fi, err := os.Stat(v)
			ok = err == nil && fi.Mode().IsRegular() && fi.Size() > 0
		case "FileIsExecutable":
			fi, err := os.Stat(v)
			ok = err == nil && fi.Mode().IsRegular() && fi.Mode()&0111 != 0
		case "DirectoryNotEmpty":
			ents, err := os.ReadDir(v)
			ok = err == nil && len(ents) > 0
		default:
			// KernelCommandLine, Virtualization, Security, Capability, …:
			// true in the lab, whatever the negation
			continue
		}
		if neg {
			ok = !ok
		}
		if trigger {
			triggers = append(triggers, ok)
			continue
		}
		if !ok {
			return false, fmt.Sprintf("%s=%s", c.Key, c.Value)
		}
	}
	if len(triggers) > 0 {
		for _, t := range triggers {
			if t {
				return true, ""
			}
		}
		return false, "no trigger condition held"
	}
	return true, ""
}

var errSkipped = errors.New("condition failed: skipped")

// start runs one start job. The caller holds s.op.
func (s *service) start() error {
	m := s.m
	if s.isNoop() {
		m.mu.Lock()
		s.setState("active", "active")
		m.mu.Unlock()
		return nil
	}
	if labSkipped(s.id) {
		m.logf("%s: not run in the lab; skipped", s.id)
		return errSkipped
	}
	m.mu.Lock()
	if s.restartAbort != nil {
		close(s.restartAbort)
		s.restartAbort = nil
	}
	switch s.active {
	case "active", "reloading":
		m.mu.Unlock()
		return nil
	}
	if m.shuttingDown {
		m.mu.Unlock()
		return &jobError{unit: s.unit.Name, result: "canceled", msg: "Job for " + s.unit.Name + " canceled: the supervisor is shutting down."}
	}
	m.mu.Unlock()
	m.refresh(s)
	m.mu.Lock()
	u := s.unit
	if u.Masked {
		m.mu.Unlock()
		return &jobError{unit: u.Name, result: "masked", msg: "Failed to start " + u.Name + ": Unit " + u.Name + " is masked."}
	}
	if ok, why := checkConditions(u.Conditions); !ok {
		s.conditionMsg = why
		if s.active != "failed" {
			s.setState("inactive", "dead")
		}
		m.mu.Unlock()
		m.logf("%s: condition check resulted in it being skipped (%s)", u.Name, why)
		return errSkipped
	}
	s.conditionMsg = ""
	if ok, why := checkConditions(u.Asserts); !ok {
		s.setState("failed", "failed")
		m.mu.Unlock()
		return s.fail("assert", "assertion failed: %s", why)
	}
	now := time.Now()
	if u.StartLimitInterval > 0 && u.StartLimitBurst > 0 {
		kept := s.starts[:0]
		for _, t := range s.starts {
			if now.Sub(t) < u.StartLimitInterval {
				kept = append(kept, t)
			}
		}
		s.starts = kept
		if len(s.starts) >= u.StartLimitBurst {
			s.result = resStartLimit
			s.setState("failed", "failed")
			m.mu.Unlock()
			return s.fail(resStartLimit, "start request repeated too quickly, refusing to start")
		}
		s.starts = append(s.starts, now)
	}
	s.gen++
	s.invocation = newInvocationID()
	s.invocations = append(s.invocations, s.invocation)
	if len(s.invocations) > 16 {
		s.invocations = s.invocations[len(s.invocations)-16:]
	}
	s.mainPID, s.mainStatus, s.statusText, s.pendingDone = 0, nil, "", nil
	s.result = resSuccess
	s.setState("activating", "start-pre")
	s.startCancel = make(chan struct{})
	m.mu.Unlock()
	if u.Description != "" {
		m.logf("Starting %s (%s)...", u.Name, u.Description)
	} else {
		m.logf("Starting %s...", u.Name)
	}

	err := s.doStart()
	m.mu.Lock()
	defer m.mu.Unlock()
	s.startCancel = nil
	if err == errSkipped {
		s.setState("inactive", "dead")
		return err
	}
	if err != nil {
		var je *jobError
		if errors.As(err, &je) {
			s.result = je.result
		} else {
			s.result = resResources
		}
		s.setState("failed", "failed")
		return err
	}
	m.logf("Started %s.", u.Name)
	return nil
}

// doStart runs the start sequence; on error it has cleaned up.
func (s *service) doStart() error {
	m := s.m
	sc := &s.unit.Service
	c, err := s.prepare()
	if err != nil {
		s.cleanupAfterFailure(nil)
		return s.fail(resResources, "%v", err)
	}
	defer c.close()
	if err := s.makeDirectories(c); err != nil {
		s.cleanupAfterFailure(c)
		return s.fail(resResources, "%v", err)
	}
	m.mu.Lock()
	s.env = c.env
	cancel := s.startCancel
	m.mu.Unlock()
	timeout := sc.TimeoutStartSec
	if len(sc.ExecCondition) > 0 {
		if err := s.runControl(c, "ExecCondition", sc.ExecCondition, timeout, nil); err != nil {
			s.cleanupAfterFailure(c)
			return errSkipped
		}
	}
	if err := s.runControl(c, "ExecStartPre", sc.ExecStartPre, timeout, nil); err != nil {
		s.cleanupAfterFailure(c)
		return err
	}
	m.mu.Lock()
	s.setState("activating", "start")
	m.mu.Unlock()
	typ := sc.Type
	switch typ {
	case "oneshot":
		if err := s.runControl(c, "ExecStart", sc.ExecStart, timeout, nil); err != nil {
			s.cleanupAfterFailure(c)
			return err
		}
	case "forking":
		if len(sc.ExecStart) == 0 {
			return s.fail(resResources, "no ExecStart=")
		}
		if err := s.runControl(c, "ExecStart", sc.ExecStart[:1], timeout, nil); err != nil {
			s.cleanupAfterFailure(c)
			return err
		}
		pid := s.readPIDFile()
		if pid == 0 {
			pid = s.guessMainPID()
		}
		if pid > 0 {
			s.setMainPID(pid)
		} else if sc.PIDFile != "" {
			s.cleanupAfterFailure(c)
			return s.fail(resProtocol, "PID file %s not readable (yet?) after start", sc.PIDFile)
		}
	default: // simple, exec, notify, notify-reload, dbus, idle
		if len(sc.ExecStart) == 0 {
			return s.fail(resResources, "no ExecStart=")
		}
		l, err := parseExecLine(sc.ExecStart[0])
		if err != nil {
			return s.fail(resResources, "ExecStart: %v", err)
		}
		notify := typ == "notify" || typ == "notify-reload"
		if notify {
			n, err := s.openNotify()
			if err != nil {
				s.cleanupAfterFailure(c)
				return s.fail(resResources, "notify socket: %v", err)
			}
			m.mu.Lock()
			s.notify = n
			m.mu.Unlock()
			c.env["NOTIFY_SOCKET"] = n.path
		}
		pid, done, err := s.spawnLine(c, l, nil)
		delete(c.env, "NOTIFY_SOCKET")
		if err != nil {
			s.cleanupAfterFailure(c)
			return s.fail(resExitCode, "ExecStart %s: %v", l.Path, err)
		}
		// early carries the main process's exit: to the READY wait below,
		// then to the watcher once the service is active
		early := make(chan exitStatus, 1)
		m.mu.Lock()
		s.mainPID = pid
		s.pendingDone = early
		m.mu.Unlock()
		go func() {
			st := <-done
			s.m.mu.Lock()
			if s.mainPID == pid {
				s.mainStatus = &st
			}
			s.m.mu.Unlock()
			early <- st
		}()
		if notify {
			var tc <-chan time.Time
			if timeout > 0 {
				t := time.NewTimer(timeout)
				defer t.Stop()
				tc = t.C
			}
			select {
			case <-s.notify.ready:
			case <-cancel:
				s.cleanupAfterFailure(c)
				return s.fail("canceled", "start canceled")
			case st := <-early:
				s.cleanupAfterFailure(c)
				res := resExitCode
				if st.Signaled {
					res = resSignal
				}
				return s.fail(res, "main process %s before READY=1", st)
			case <-tc:
				s.cleanupAfterFailure(c)
				return s.fail(resTimeout, "start operation timed out (no READY=1 within %s)", timeout)
			}
		}
	}
	if err := s.runControl(c, "ExecStartPost", sc.ExecStartPost, timeout, nil); err != nil {
		s.cleanupAfterFailure(c)
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case typ == "oneshot" && !sc.RemainAfterExit:
		s.setState("inactive", "dead")
	case typ == "oneshot":
		s.setState("active", "exited")
	case s.mainPID == 0 && sc.RemainAfterExit:
		s.setState("active", "exited")
	default:
		s.setState("active", "running")
	}
	if s.mainPID > 0 && s.pendingDone != nil {
		go s.watchMain(s.gen, s.mainPID, s.pendingDone)
	}
	s.pendingDone = nil
	return nil
}

// interruptStart makes a start in progress give up (a stop is coming).
func (s *service) interruptStart() {
	s.m.mu.Lock()
	if s.startCancel != nil {
		close(s.startCancel)
		s.startCancel = nil
	}
	s.m.mu.Unlock()
}

// readPIDFile waits a little for the PID file of a forking service.
func (s *service) readPIDFile() int {
	p := s.unit.Service.PIDFile
	if p == "" {
		return 0
	}
	deadline := time.Now().Add(pidFileWait)
	for {
		if data, err := os.ReadFile(p); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// guessMainPID picks the service's process when there is exactly one.
func (s *service) guessMainPID() int {
	pids := s.m.unitProcessesOf(s, true)
	if len(pids) == 1 {
		return pids[0]
	}
	return 0
}

// cleanupAfterFailure stops what a failed start left: main process,
// stragglers, ExecStopPost, runtime directories.
func (s *service) cleanupAfterFailure(c *runCtx) {
	s.m.mu.Lock()
	s.gen++
	s.setState("deactivating", "stop-sigterm")
	s.m.mu.Unlock()
	s.killAll(true)
	if c != nil {
		_ = s.runControl(c, "ExecStopPost", s.unit.Service.ExecStopPost, s.stopTimeout(), s.mainEnv())
	}
	s.finishStop()
}

func (s *service) stopTimeout() time.Duration {
	t := s.unit.Service.TimeoutStopSec
	if t <= 0 || t > maxStopTimeout {
		t = maxStopTimeout
	}
	return t
}

func (s *service) mainEnv() map[string]string {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.mainPID > 0 && s.mainStatus == nil {
		return map[string]string{"MAINPID": strconv.Itoa(s.mainPID)}
	}
	return map[string]string{"MAINPID": ""}
}

// finishStop releases what the run held (caller does not hold m.mu).
func (s *service) finishStop() {
	s.m.mu.Lock()
	n := s.notify
	s.notify = nil
	s.mainPID = 0
	s.m.mu.Unlock()
	if n != nil {
		n.close()
	}
	s.removeRuntimeDirectories()
}

// killAll signals the unit's processes as KillMode= says and waits for
// them, escalating to SIGKILL after TimeoutStopSec when SendSIGKILL=yes.
// force kills the whole unit regardless of KillMode (failed start).
func (s *service) killAll(force bool) bool {
	sc := &s.unit.Service
	mode := sc.KillMode
	if force {
		mode = "control-group"
	}
	if mode == "none" {
		return true
	}
	sig, ok := parseSignal(sc.KillSignal)
	if !ok {
		sig = unix.SIGTERM
	}
	s.m.mu.Lock()
	main := 0
	if s.mainPID > 0 && s.mainStatus == nil {
		main = s.mainPID
	}
	s.m.mu.Unlock()
	targets := func() []int {
		if mode == "process" || mode == "mixed" {
			if main > 0 && alive(main) {
				return []int{main}
			}
			return nil
		}
		return s.m.unitProcessesOf(s, force)
	}
	send := func(pids []int, sg unix.Signal) {
		for _, p := range pids {
			unix.Kill(p, sg)
			if sg != unix.SIGKILL && sg != unix.SIGCONT {
				unix.Kill(p, unix.SIGCONT)
			}
		}
	}
	pids := targets()
	if len(pids) == 0 {
		return true
	}
	send(pids, sig)
	deadline := time.Now().Add(s.stopTimeout())
	// watch the known processes often, look for new ones (a fork racing
	// the signal) now and then: a scan reads every process's environment
	for i := 1; time.Now().Before(deadline); i++ {
		if pids = livePIDs(pids); len(pids) == 0 {
			if pids = targets(); len(pids) == 0 {
				break
			}
			send(pids, sig)
		} else if i%25 == 0 {
			if more := livePIDs(targets()); len(more) > len(pids) {
				send(more, sig)
				pids = more
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sc.SendSIGKILL && !force {
		if left := livePIDs(targets()); len(left) > 0 {
			s.m.logf("%s: processes %v still there after %s; SendSIGKILL=no leaves them", s.unit.Name, left, s.stopTimeout())
			return false
		}
		return true
	}
	if mode == "mixed" {
		mode = "control-group"
	}
	for i := 0; i < 100; i++ {
		left := livePIDs(targets())
		if len(left) == 0 {
			return true
		}
		if i == 0 {
			s.m.logf("%s: processes %v still there, sending SIGKILL", s.unit.Name, left)
		}
		send(left, unix.SIGKILL)
		time.Sleep(50 * time.Millisecond)
	}
	return len(livePIDs(targets())) == 0
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	st := data[i+2]
	return st != 'Z' && st != 'X'
}

func livePIDs(pids []int) []int {
	var out []int
	for _, p := range pids {
		if alive(p) {
			out = append(out, p)
		}
	}
	return out
}

// watchMain handles the end of the main process of a running service:
// ExecStop, the rest of the unit killed, ExecStopPost, then Restart=.
func (s *service) watchMain(gen, pid int, done <-chan exitStatus) {
	st := <-done
	m := s.m
	m.mu.Lock()
	if s.gen == gen && s.mainPID == pid {
		s.mainStatus = &st
	}
	m.mu.Unlock()
	s.op.Lock()
	m.mu.Lock()
	if s.gen != gen || s.mainPID != pid || m.shuttingDown {
		m.mu.Unlock()
		s.op.Unlock()
		return
	}
	s.gen++
	u := s.unit
	sc := &u.Service
	result := resSuccess
	if !s.cleanExit(st) {
		result = resExitCode
		if st.Signaled {
			result = resSignal
			if st.Signal == unix.SIGABRT || st.Signal == unix.SIGSEGV || st.Signal == unix.SIGQUIT {
				result = resCoreDump
			}
		}
	}
	if result == resSuccess && sc.RemainAfterExit {
		s.setState("active", "exited")
		m.mu.Unlock()
		s.op.Unlock()
		m.logf("%s: main process %d %s; RemainAfterExit=yes keeps it active", u.Name, pid, st)
		return
	}
	s.setState("deactivating", "stop")
	m.mu.Unlock()
	m.logf("%s: main process %d %s", u.Name, pid, st)
	if c, err := s.prepareStop(); err == nil {
		_ = s.runControl(c, "ExecStop", sc.ExecStop, s.stopTimeout(), map[string]string{"MAINPID": ""})
		s.killAll(false)
		_ = s.runControl(c, "ExecStopPost", sc.ExecStopPost, s.stopTimeout(), map[string]string{"MAINPID": ""})
		c.close()
	} else {
		s.killAll(false)
	}
	restart := s.shouldRestart(st, result)
	s.finishStop()
	m.mu.Lock()
	s.result = result
	if result == resSuccess {
		s.setState("inactive", "dead")
	} else {
		s.setState("failed", "failed")
	}
	var abort chan struct{}
	if restart {
		s.setState("activating", "auto-restart")
		abort = make(chan struct{})
		s.restartAbort = abort
	}
	m.mu.Unlock()
	s.op.Unlock()
	if !restart {
		if result != resSuccess {
			m.logf("%s: failed with result '%s'.", u.Name, result)
		}
		return
	}
	m.logf("%s: scheduling restart in %s.", u.Name, sc.RestartSec)
	select {
	case <-abort:
		return
	case <-time.After(sc.RestartSec):
	}
	s.op.Lock()
	defer s.op.Unlock()
	m.mu.Lock()
	if s.restartAbort != abort || m.shuttingDown {
		m.mu.Unlock()
		return
	}
	s.restartAbort = nil
	s.nRestarts++
	s.setState("inactive", "dead")
	m.mu.Unlock()
	if err := s.start(); err != nil && err != errSkipped {
		m.logf("%s: restart failed: %v", u.Name, err)
	}
}

// prepareStop builds a run context for stop commands of the current run.
func (s *service) prepareStop() (*runCtx, error) {
	c, err := s.prepare()
	if err != nil {
		return nil, err
	}
	s.m.mu.Lock()
	if s.env != nil {
		c.env = s.env
	}
	s.m.mu.Unlock()
	return c, nil
}

// stop runs one stop job. The caller holds s.op.
func (s *service) stop() error {
	m := s.m
	if s.isNoop() {
		return nil
	}
	m.mu.Lock()
	if s.restartAbort != nil {
		close(s.restartAbort)
		s.restartAbort = nil
		s.setState("inactive", "dead")
	}
	if s.active == "inactive" || s.active == "failed" {
		m.mu.Unlock()
		return nil
	}
	s.gen++
	wasRunning := s.active == "active" || s.active == "reloading"
	s.setState("deactivating", "stop")
	m.mu.Unlock()
	m.logf("Stopping %s...", s.unit.Name)
	sc := &s.unit.Service
	c, err := s.prepareStop()
	if err == nil && wasRunning {
		_ = s.runControl(c, "ExecStop", sc.ExecStop, s.stopTimeout(), s.mainEnv())
	}
	m.mu.Lock()
	s.setState("deactivating", "stop-sigterm")
	m.mu.Unlock()
	gone := s.killAll(false)
	if err == nil {
		m.mu.Lock()
		s.setState("deactivating", "stop-post")
		m.mu.Unlock()
		_ = s.runControl(c, "ExecStopPost", sc.ExecStopPost, s.stopTimeout(), s.mainEnv())
		c.close()
	}
	s.finishStop()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !gone {
		s.result = resTimeout
		s.setState("failed", "failed")
		return s.fail(resTimeout, "stop timed out")
	}
	s.result = resSuccess
	s.setState("inactive", "dead")
	m.logf("Stopped %s.", s.unit.Name)
	return nil
}

// errReloadUnsupported: no ExecReload= (and not notify-reload).
var errReloadUnsupported = errors.New("reload not applicable")

func (s *service) canReload() bool {
	return len(s.unit.Service.ExecReload) > 0 || s.unit.Service.Type == "notify-reload"
}

// reload runs ExecReload=. The caller holds s.op.
func (s *service) reload() error {
	m := s.m
	if s.isNoop() {
		return nil
	}
	m.mu.Lock()
	if s.active != "active" {
		m.mu.Unlock()
		return &jobError{unit: s.unit.Name, result: "inactive", msg: s.unit.Name + " is not active, cannot reload."}
	}
	if !s.canReload() {
		m.mu.Unlock()
		return errReloadUnsupported
	}
	s.setState("reloading", "reload")
	n := s.notify
	main := s.mainPID
	m.mu.Unlock()
	m.logf("Reloading %s...", s.unit.Name)
	sc := &s.unit.Service
	var err error
	if len(sc.ExecReload) == 0 {
		if n != nil {
			select {
			case <-n.reloaded:
			default:
			}
		}
		unix.Kill(main, unix.SIGHUP)
		if n != nil {
			select {
			case <-n.reloaded:
			case <-time.After(s.unit.Service.TimeoutStartSec + time.Millisecond):
			}
		}
	} else {
		var c *runCtx
		c, err = s.prepareStop()
		if err == nil {
			err = s.runControl(c, "ExecReload", sc.ExecReload, s.unit.Service.TimeoutStartSec, s.mainEnv())
			c.close()
		}
	}
	m.mu.Lock()
	if s.active == "reloading" {
		s.setState("active", "running")
		if sc.Type == "oneshot" {
			s.sub = "exited"
		}
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	m.logf("Reloaded %s.", s.unit.Name)
	return nil
}

// parseSignal accepts "SIGTERM", "TERM" or a number.
func parseSignal(v string) (unix.Signal, bool) {
	if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), true
	}
	v = strings.ToUpper(v)
	if !strings.HasPrefix(v, "SIG") {
		v = "SIG" + v
	}
	sig := unix.SignalNum(v)
	return sig, sig != 0
}

func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return strconv.Itoa(int(sig))
}

// capabilities by name, for AmbientCapabilities=.
var capNames = map[string]uintptr{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK,
	"CAP_IPC_OWNER": unix.CAP_IPC_OWNER, "CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_SYS_PACCT": unix.CAP_SYS_PACCT,
	"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
	"CAP_MKNOD": unix.CAP_MKNOD, "CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN, "CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ, "CAP_PERFMON": unix.CAP_PERFMON,
	"CAP_BPF": unix.CAP_BPF, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// parseCaps turns AmbientCapabilities= into capability numbers. An
// inverted list ("~CAP_X") is not supported in the lab and grants nothing.
func parseCaps(names []string) ([]uintptr, error) {
	var out []uintptr
	for _, n := range names {
		if strings.HasPrefix(n, "~") {
			return nil, nil
		}
		c, ok := capNames[strings.ToUpper(n)]
		if !ok {
			return nil, fmt.Errorf("AmbientCapabilities: unknown capability %s", n)
		}
		out = append(out, c)
	}
	return out, nil
}
