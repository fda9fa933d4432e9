package ocf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailfleet/mailfleet/internal/mountinfo"
)

// The mount agent: ocf:mailfleet:mount, one partition. Its parameters are
// those of ocf:heartbeat:Filesystem that a mailfleet site uses.
func init() {
	register(&Agent{
		Name:  "mount",
		Short: "mailfleet partition",
		Long: "Mounts one partition of a mailfleet instance or directory (device on directory, " +
			"with fstype and options). Stop unmounts it, ending whatever still holds it (SIGTERM, then SIGKILL), " +
			"so that a stop that returns success leaves the partition free for another node.",
		Params: []Param{
			{Name: "device", Desc: "The block device (or, with fstype none and options bind, the directory) to mount.", Required: true},
			{Name: "directory", Desc: "The mount point, an absolute path.", Required: true, Unique: true},
			{Name: "fstype", Desc: "The file system type, as mount -t takes it.", Required: true},
			{Name: "options", Desc: "Mount options, as mount -o takes them."},
		},
		Start: mountStart, Stop: mountStop, Monitor: mountMonitor, Validate: mountValidate,
		MonitorInterval: "20s",
	})
}

// mountInfo is /proc/self/mountinfo (a variable for tests).
var mountInfo = "/proc/self/mountinfo"

// mountPoints lists the mount points of this mount namespace, in the order
// they were mounted (a point mounted twice is listed twice).
func mountPoints() ([]string, error) {
	es, err := mountinfo.Read(mountInfo)
	if err != nil {
		return nil, err
	}
	points := make([]string, len(es))
	for i, e := range es {
		points[i] = e.Point
	}
	return points, nil
}

func isMounted(dir string) (bool, error) {
	points, err := mountPoints()
	if err != nil {
		return false, err
	}
	return slices.Contains(points, dir), nil
}

func mountValidate(e *Env) int {
	dir, dev := e.Param("directory"), e.Param("device")
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return e.Fail(ErrConfigured, "directory %q must be a clean absolute path other than /", dir)
	}
	for name, v := range map[string]string{"device": dev, "fstype": e.Param("fstype"), "options": e.Param("options")} {
		if strings.HasPrefix(v, "-") || strings.ContainsAny(v, "\n\x00") {
			return e.Fail(ErrConfigured, "%s %q is not valid", name, v)
		}
	}
	if strings.HasPrefix(dev, "/") {
		if _, err := os.Stat(dev); err != nil {
			// This node does not see the disk: not a place to run it.
			return e.Fail(ErrInstalled, "device %s: %v", dev, err)
		}
	}
	return Success
}

func mountMonitor(e *Env) int {
	if rc := mountValidate(e); rc != Success && rc != ErrInstalled {
		return rc
	}
	ok, err := isMounted(e.Param("directory"))
	if err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	}
	if !ok {
		return NotRunning
	}
	return Success
}

func mountStart(e *Env) int {
	if rc := mountValidate(e); rc != Success {
		return rc
	}
	dir := e.Param("directory")
	if ok, err := isMounted(dir); err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	} else if ok {
		return Success
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return e.Fail(ErrGeneric, "%v", err)
	}
	args := []string{"-t", e.Param("fstype")}
	if o := e.Param("options"); o != "" {
		args = append(args, "-o", o)
	}
	args = append(args, e.Param("device"), dir)
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		return e.Fail(ErrGeneric, "mount %s on %s: %v: %s", e.Param("device"), dir, err, bytes.TrimSpace(out))
	}
	if ok, err := isMounted(dir); err != nil || !ok {
		return e.Fail(ErrGeneric, "%s is not mounted after mount succeeded (%v)", dir, err)
	}
	e.Log("info", "mounted %s on %s", e.Param("device"), dir)
	return Success
}

// mountStop unmounts the directory (and what is mounted below it first),
// ending the processes that hold it: SIGTERM twice, then SIGKILL, until the
// action's deadline. Failing, it returns an error and Pacemaker fences the
// node, which frees the partition for certain.
func mountStop(e *Env) int {
	dir := filepath.Clean(e.Param("directory"))
	if !filepath.IsAbs(dir) || dir == "/" {
		return e.Fail(ErrConfigured, "directory %q must be an absolute path other than /", dir)
	}
	for attempt := 0; ; attempt++ {
		points, err := mountPoints()
		if err != nil {
			return e.Fail(ErrGeneric, "%v", err)
		}
		// Below the directory first, the most recent first.
		var mine []string
		for _, p := range points {
			if p == dir || strings.HasPrefix(p, dir+"/") {
				mine = append(mine, p)
			}
		}
		if len(mine) == 0 {
			if attempt > 0 {
				e.Log("info", "unmounted %s", dir)
			}
			return Success
		}
		slices.SortStableFunc(mine, func(a, b string) int { return len(b) - len(a) })
		var busy error
		for _, p := range mine {
			if err := syscall.Unmount(p, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
				busy = fmt.Errorf("unmount %s: %w", p, err)
				break
			}
		}
		if busy == nil {
			continue
		}
		if time.Now().After(e.Deadline) {
			return e.Fail(ErrGeneric, "%v", busy)
		}
		sig := syscall.SIGTERM
		if attempt >= 2 {
			sig = syscall.SIGKILL
		}
		pids := holders(dir)
		e.Log("warning", "%v: sending %v to %d processes that hold it %v", busy, sig, len(pids), pids)
		for _, pid := range pids {
			syscall.Kill(pid, sig)
		}
		time.Sleep(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second))
	}
}

// holders are the processes with a file, working directory, root or
// mapping below dir (fuser -m, for this mount namespace).
func holders(dir string) []int {
	under := func(p string) bool {
		p = strings.TrimSuffix(p, " (deleted)")
		return p == dir || strings.HasPrefix(p, dir+"/")
	}
	procs, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self {
			continue
		}
		base := "/proc/" + d.Name()
		if holdsBelow(base, under) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func holdsBelow(base string, under func(string) bool) bool {
	for _, l := range []string{"cwd", "root", "exe"} {
		if t, err := os.Readlink(base + "/" + l); err == nil && under(t) {
			return true
		}
	}
	fds, _ := os.ReadDir(base + "/fd")
	for _, fd := range fds {
		if t, err := os.Readlink(base + "/fd/" + fd.Name()); err == nil && under(t) {
			return true
		}
	}
	if maps, err := os.ReadFile(base + "/maps"); err == nil {
		for _, line := range strings.Split(string(maps), "\n") {
			if i := strings.Index(line, " /"); i >= 0 && under(strings.TrimSpace(line[i:])) {
				return true
			}
		}
	}
	return false
}
