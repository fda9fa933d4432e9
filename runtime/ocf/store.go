package ocf

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailfleet/mailfleet/runtime/ocf/shim"
)

// The store agent: ocf:mailfleet:store, one mail instance.
func init() {
	register(&Agent{
		Name:  "store",
		Short: "mailfleet store instance",
		Long: "Runs one mailfleet backend mail instance (mailfleetd store): SMTP/LMTP delivery, IMAP, POP3 and " +
			"the admin API on the instance's partitions. Start returns once every listener is bound; monitor " +
			"asks the store's /healthz, so that a hung store fails it.",
		Params: []Param{
			{Name: "config", Desc: "Path of the instance's JSON config, rendered by mailfleet build.", Required: true, Unique: true},
			{Name: "binary", Desc: "The mailfleetd binary that runs the store; by default the one that runs this agent (the shim names /usr/local/bin/mailfleetd)."},
			{Name: "pidfile", Desc: "PID file of the running instance (default /run/mailfleet-store-RESOURCE.pid).", Unique: true},
			{Name: "health_url", Desc: "URL of the admin listener's /healthz; monitor asks it when set (the certificate is not checked: it is this node's own VIP, and no secret is sent)."},
			{Name: "user", Desc: "System user the store runs as, with CAP_NET_BIND_SERVICE as its one privilege; empty: the agent's own user (root)."},
			{Name: "dirs", Desc: "Space-separated directories the store writes (partition mount points, log directory): start creates them and gives them to user (and what is in them, once, when the top directory is not user's yet)."},
			{Name: "nofile", Desc: "The store's limit on open files, sized by mailfleet for the sessions it must carry; empty keeps the agent's own.", Integer: true},
			{Name: "stop_timeout", Desc: "Seconds to wait for a graceful stop before SIGKILL.", Default: "10", Integer: true},
		},
		Start: storeStart, Stop: storeStop, Monitor: storeMonitor, Validate: storeValidate,
		MonitorInterval: "1s",
	})
}

// Where the store agent keeps its files (variables for tests).
var (
	storeRunDir = "/run"
	storeLogDir = "/var/log/mailfleet"
)

func storePIDFile(e *Env) string {
	if p := e.Param("pidfile"); p != "" {
		return p
	}
	return filepath.Join(storeRunDir, "mailfleet-store-"+e.Resource+".pid")
}

func storeReadyFile(e *Env) string {
	return filepath.Join(storeRunDir, "mailfleet-store", e.Resource+".ready")
}

// storePID is the running store's pid, or 0: the pid file's process, alive
// and not a zombie, and a mailfleetd store (not a pid reused since).
func storePID(e *Env) int {
	b, err := os.ReadFile(storePIDFile(e))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte("\x00store\x00")) {
		return 0
	}
	return pid
}

// storeBinary is the mailfleetd that runs the store: the binary parameter,
// or this one.
func storeBinary(e *Env) string {
	if b := e.Param("binary"); b != "" {
		return b
	}
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return shim.Binary
}

func storeValidate(e *Env) int {
	if rc := storeValidateQuick(e); rc != Success {
		return rc
	}
	bin := storeBinary(e)
	if f, err := os.Open(e.Param("config")); err != nil {
		return e.Fail(ErrConfigured, "config %s is not readable", e.Param("config"))
	} else {
		f.Close()
	}
	if u := e.Param("user"); u != "" {
		if _, err := user.Lookup(u); err != nil {
			return e.Fail(ErrInstalled, "user %s does not exist", u)
		}
	}
	if out, err := exec.Command(bin, "store", "-config", e.Param("config"), "-check").CombinedOutput(); err != nil {
		return e.Fail(ErrConfigured, "config %s is not valid: %s", e.Param("config"), lastLine(out))
	}
	return Success
}

func lastLine(b []byte) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(lines[len(lines)-1])
}

// healthClient asks the store's /healthz: its own VIP on this node, so the
// certificate is not checked, and nothing secret is sent.
var healthClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
}

func storeMonitor(e *Env) int {
	if storePID(e) == 0 {
		return NotRunning
	}
	if u := e.Param("health_url"); u != "" {
		ctx, cancel := context.WithDeadline(context.Background(), e.Deadline)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return e.Fail(ErrConfigured, "health_url %q: %v", u, err)
		}
		resp, err := healthClient.Do(req)
		if err != nil {
			return e.Fail(ErrGeneric, "health check %s failed: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return e.Fail(ErrGeneric, "health check %s failed: %s", u, resp.Status)
		}
	}
	return Success
}

// storeUser is who the store runs as: nil for the agent's own user.
func storeUser(e *Env) (*syscall.Credential, error) {
	name := e.Param("user")
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	groups, err := u.GroupIds()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if n, err := strconv.Atoi(g); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	return cred, nil
}

// storeDirs creates the directories the store writes and gives them to
// its user: the top of each at every start (a file system mounted afresh
// has a root-owned root), what is below once, when the top is not the
// user's yet.
func storeDirs(e *Env, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	uid, gid := int(cred.Uid), int(cred.Gid)
	for _, d := range strings.Fields(e.Param("dirs")) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		st, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if int(st.Sys().(*syscall.Stat_t).Uid) != uid {
			err := filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, uid, gid)
			})
			if err != nil {
				return err
			}
		}
		if err := os.Lchown(d, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func storeStart(e *Env) int {
	if rc := storeValidateQuick(e); rc != Success {
		return rc
	}
	if storeMonitor(e) == Success {
		return Success
	}
	cred, err := storeUser(e)
	if err != nil {
		return e.Fail(ErrInstalled, "user %s: %v", e.Param("user"), err)
	}
	if err := storeDirs(e, cred); err != nil {
		return e.Fail(ErrGeneric, "cannot give %s to %s: %v", e.Param("dirs"), e.Param("user"), err)
	}
	// What the store says before its own log is open (a key it cannot
	// read, say) goes to a file beside that log.
	if err := os.MkdirAll(storeLogDir, 0o755); err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	}
	errlog := filepath.Join(storeLogDir, e.Resource+".stderr")
	stderr, err := os.OpenFile(errlog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	}
	defer stderr.Close()
	// The store writes its pid to the ready file once every listener is
	// bound: the start succeeds then, not merely when the process exists.
	ready := storeReadyFile(e)
	if err := os.MkdirAll(filepath.Dir(ready), 0o755); err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	}
	if cred != nil {
		os.Chown(filepath.Dir(ready), int(cred.Uid), int(cred.Gid))
	}
	os.Remove(ready)
	if n := e.Param("nofile"); n != "" {
		v, _ := strconv.ParseUint(n, 10, 64)
		// The child gets the limit this process has set (os/exec).
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: v, Max: v}); err != nil {
			return e.Fail(ErrGeneric, "cannot set the open files limit to %s: %v", n, err)
		}
	}
	// The store runs at niceness 0 whatever the agent's own (the agents
	// run ahead of the mail load; the mail the store serves is that
	// load). nice execs in place, so the pid is the store's, and every
	// thread of the store starts at 0.
	argv := []string{storeBinary(e), "store", "-config", e.Param("config"), "-ready-file", ready}
	if cur := niceness(); cur < 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(-cur)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	// Its own session: it outlives the agent, and Pacemaker, which waits
	// for the agent's output to close, never sees its pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	if cred != nil {
		// Binding ports below 1024 is the one privilege it keeps.
		cmd.SysProcAttr.AmbientCaps = []uintptr{capNetBindService}
	}
	if err := cmd.Start(); err != nil {
		return e.Fail(ErrGeneric, "starting %s: %v", storeBinary(e), err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(storePIDFile(e), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		cmd.Process.Kill()
		return e.Fail(ErrGeneric, "%v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Wait until it listens, looking every 20 ms: the wait is part of
	// every failover. Pacemaker's start timeout bounds it.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			os.Remove(storePIDFile(e))
			b, _ := os.ReadFile(errlog)
			return e.Fail(ErrGeneric, "mailfleetd store exited during start (%v): %s", err, lastLine(b))
		case <-tick.C:
			if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
				e.Log("info", "mailfleetd store %d is serving", pid)
				return Success
			}
			if time.Now().After(e.Deadline) {
				return e.Fail(ErrGeneric, "mailfleetd store %d did not bind its listeners in time", pid)
			}
		}
	}
}

// capNetBindService is CAP_NET_BIND_SERVICE.
const capNetBindService = 10

// storeValidateQuick is what start checks itself; not the config check of
// validate-all, a second start of mailfleetd on every failover (the store
// checks its config itself, and a bad one ends it with the reason, which
// the start reports).
func storeValidateQuick(e *Env) int {
	bin := storeBinary(e)
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return e.Fail(ErrInstalled, "%s is not executable", bin)
	}
	return Success
}

func storeStop(e *Env) int {
	pid := storePID(e)
	if pid == 0 {
		os.Remove(storePIDFile(e))
		return Success
	}
	// SIGCONT too: a store that was stopped (SIGSTOP, a debugger) must run
	// to act on SIGTERM.
	syscall.Kill(pid, syscall.SIGTERM)
	syscall.Kill(pid, syscall.SIGCONT)
	timeout, _ := strconv.Atoi(e.Param("stop_timeout"))
	if timeout <= 0 {
		timeout = 10
	}
	killAt := time.Now().Add(time.Duration(timeout) * time.Second)
	if killAt.After(e.Deadline) {
		killAt = e.Deadline.Add(-time.Second)
	}
	killed := false
	for storePID(e) != 0 {
		if !killed && time.Now().After(killAt) {
			e.Log("warning", "mailfleetd store %d did not stop in time, killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
			killed = true
		}
		if time.Now().After(e.Deadline) {
			return e.Fail(ErrGeneric, "mailfleetd store %d does not end", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(storePIDFile(e)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.Log("warning", "%v", err)
	}
	return Success
}
