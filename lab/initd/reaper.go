package initd

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// exitStatus is how a process ended.
type exitStatus struct {
	Code     int
	Signal   syscall.Signal
	Signaled bool
	Unknown  bool // not our child: it vanished, status unknown
}

func (e exitStatus) String() string {
	switch {
	case e.Unknown:
		return "exited"
	case e.Signaled:
		return "killed by signal " + signalName(e.Signal)
	default:
		return fmt.Sprintf("exited with status %d", e.Code)
	}
}

func (e exitStatus) success() bool { return !e.Signaled && e.Code == 0 }

// reaper owns every wait for child processes: the supervisor is a
// subreaper, so orphans of its services come back to it, and a single
// wait4(-1) loop dispatches exits to whoever waits for that PID. Processes
// are started under its lock so an exit is never missed.
type reaper struct {
	mu        sync.Mutex
	waiters   map[int]chan exitStatus
	unclaimed map[int]exitStatus
	order     []int
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int]chan exitStatus{}, unclaimed: map[int]exitStatus{}}
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ch:
			case <-t.C:
			}
			r.reapAll()
		}
	}()
	return r
}

func (r *reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		st := exitStatus{Code: ws.ExitStatus()}
		if ws.Signaled() {
			st = exitStatus{Signaled: true, Signal: syscall.Signal(ws.Signal()), Code: 128 + int(ws.Signal())}
		}
		if !ws.Exited() && !ws.Signaled() {
			continue
		}
		r.deliver(pid, st, true)
	}
}

func (r *reaper) deliver(pid int, st exitStatus, keep bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- st
		return
	}
	if !keep {
		return
	}
	r.unclaimed[pid] = st
	r.order = append(r.order, pid)
	for len(r.order) > 4096 {
		delete(r.unclaimed, r.order[0])
		r.order = r.order[1:]
	}
}

// wait returns a channel that receives pid's exit. For a process that is
// not our child (a PID from a PID file or MAINPID= of a process we cannot
// reap) the exit is noticed by polling.
func (r *reaper) wait(pid int) <-chan exitStatus {
	ch := make(chan exitStatus, 1)
	r.mu.Lock()
	if st, ok := r.unclaimed[pid]; ok {
		delete(r.unclaimed, pid)
		r.mu.Unlock()
		ch <- st
		return ch
	}
	if old, ok := r.waiters[pid]; ok {
		// a second waiter: chain them
		r.waiters[pid] = ch
		r.mu.Unlock()
		go func() { st := <-ch; old <- st; ch <- st }()
		return ch
	}
	r.waiters[pid] = ch
	r.mu.Unlock()
	go func() {
		for {
			time.Sleep(500 * time.Millisecond)
			r.mu.Lock()
			_, waiting := r.waiters[pid]
			r.mu.Unlock()
			if !waiting {
				return
			}
			if err := unix.Kill(pid, 0); err == unix.ESRCH {
				// a zombie child still answers kill(0); ESRCH means gone and
				// not ours to reap (or reaped just now: deliver ignores it)
				time.Sleep(50 * time.Millisecond)
				r.deliver(pid, exitStatus{Unknown: true}, false)
				return
			}
		}
	}()
	return ch
}

// spawnSpec describes one process to start.
type spawnSpec struct {
	Path   string
	Argv   []string
	Env    []string
	Dir    string
	Cred   *syscall.Credential
	Stdout *os.File
	Stderr *os.File
	NoFile *unix.Rlimit // nil: the lab default
	UMask  int          // -1: leave
	Nice   *int         // nil: the supervisor's own
	// AmbientCaps are raised after the switch to Cred's user
	AmbientCaps []uintptr
}

// forkExecNice is syscall.ForkExec with the child at niceness nice (nil:
// inherited). On Linux the niceness is a thread's, and a child gets its
// forking thread's: the thread is pinned, given the value around the fork,
// and given its own back.
func forkExecNice(path string, argv []string, attr *syscall.ProcAttr, nice *int) (int, error) {
	if nice == nil {
		return syscall.ForkExec(path, argv, attr)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// getpriority(2) returns 20 - nice.
	old, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, err
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, *nice); err != nil {
		return 0, fmt.Errorf("Nice=%d: %w", *nice, err)
	}
	defer unix.Setpriority(unix.PRIO_PROCESS, 0, 20-old)
	return syscall.ForkExec(path, argv, attr)
}

// defaultNoFile is systemd's DefaultLimitNOFILE=1024:524288.
var defaultNoFile = unix.Rlimit{Cur: 1024, Max: 524288}

// spawn starts a process in its own session and returns its PID and a
// channel with its exit. The resource limit is set on the supervisor around
// the fork (the child inherits it), under the reaper's lock.
func (r *reaper) spawn(s spawnSpec) (int, <-chan exitStatus, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, nil, err
	}
	defer devnull.Close()
	stdout, stderr := s.Stdout, s.Stderr
	if stdout == nil {
		stdout = devnull
	}
	if stderr == nil {
		stderr = devnull
	}
	attr := &syscall.ProcAttr{
		Dir:   s.Dir,
		Env:   s.Env,
		Files: []uintptr{devnull.Fd(), stdout.Fd(), stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true, Credential: s.Cred, AmbientCaps: s.AmbientCaps},
	}
	lim := defaultNoFile
	if s.NoFile != nil {
		lim = *s.NoFile
	}
	r.mu.Lock()
	var old syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old)
	setErr := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim.Cur, Max: lim.Max})
	oldMask := -1
	if s.UMask >= 0 {
		oldMask = syscall.Umask(s.UMask)
	}
	pid, err := forkExecNice(s.Path, s.Argv, attr, s.Nice)
	if oldMask >= 0 {
		syscall.Umask(oldMask)
	}
	if setErr == nil {
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
	if err != nil {
		r.mu.Unlock()
		return 0, nil, err
	}
	ch := make(chan exitStatus, 1)
	r.waiters[pid] = ch
	r.mu.Unlock()
	return pid, ch, nil
}
