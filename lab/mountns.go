package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// nsKinds are the namespaces a node owns besides its network namespace, in
// the order of nodeNSFiles.
var nsKinds = []string{"mnt", "uts", "ipc"}

// persistNodeNS makes h's mount, UTS and IPC namespaces and binds them on
// its namespace files, so that they outlive every process in them.
//
// The kernel binds a mount namespace's file only into an older namespace
// (its loop check compares namespace ids), and since Linux 6.18 those ids
// come from per-CPU batches: a namespace made on one CPU can get a smaller
// id than an older one made on another. From the machine's own namespace
// (the smallest id) that never matters; from a container or CI runner it
// made `unshare --mount=FILE` fail with EINVAL (in a fresh-ci container
// on every lab test, elsewhere about one time in six). So
// the child that makes the namespaces (cloned into them, where it makes
// every mount private before anything else, then the node's file system)
// says "ready" and waits; this process binds its namespaces on the files
// and checks that each file names them. When the kernel refuses, a new
// child is made, pinned in turn to each CPU: the CPU whose batch gave this
// process's namespace its id gives the new one a larger id. Every failure
// is reported with the kernel's error.
func (l *Lab) persistNodeNS(h *Host) error {
	files := l.nodeNSFiles(h.Name)
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		return fmt.Errorf("lab: CPU affinity: %w", err)
	}
	var onCPU []int
	for c := 0; c < len(cpus)*64 && len(onCPU) < cpus.Count(); c++ {
		if cpus.IsSet(c) {
			onCPU = append(onCPU, c)
		}
	}
	tries := []int{-1} // first wherever the scheduler runs it
	for i := 0; i < 2; i++ {
		tries = append(tries, onCPU...)
	}
	var err error
	for _, cpu := range tries {
		if err = l.persistOnce(h, files, cpu); err == nil || !errors.Is(err, errRetryNS) {
			return err
		}
		l.logf("%s: %v; trying again on another CPU", h.Name, err)
	}
	return fmt.Errorf("lab: %s: could not persist its namespaces after %d tries: %w", h.Name, len(tries), err)
}

var errRetryNS = errors.New("namespace bind did not take")

// persistOnce makes one child, cloned on CPU cpu unless it is -1.
func (l *Lab) persistOnce(h *Host, files []string, cpu int) (err error) {
	for _, f := range files {
		_ = unix.Unmount(f, unix.MNT_DETACH)
		if err := writeFile(f, nil, 0o600); err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			for _, f := range files {
				_ = unix.Unmount(f, unix.MNT_DETACH)
			}
		}
	}()
	cmd := exec.Command(l.Executable, "lab", "mountns", "-dir", l.Dir, "-node", h.Name)
	cmd.Env = toolEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	hold, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := startOnCPU(cmd, cpu); err != nil {
		return fmt.Errorf("lab: start mountns for %s: %w", h.Name, err)
	}
	done := false
	defer func() {
		if !done {
			hold.Close()
			_ = cmd.Wait()
		}
	}()
	line, rerr := bufio.NewReader(io.LimitReader(out, 64)).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		hold.Close()
		werr := cmd.Wait()
		done = true
		return fmt.Errorf("lab: make %s's file system: %v %v: %s", h.Name, werr, rerr, strings.TrimSpace(stderr.String()))
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	for i, kind := range nsKinds {
		src := "/proc/" + pid + "/ns/" + kind
		if err := unix.Mount(src, files[i], "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("%w: bind %s on %s: %w", errRetryNS, src, files[i], err)
		}
		want, ok1 := nsInode(src)
		got, ok2 := nsInode(files[i])
		if !ok1 || !ok2 || want != got {
			return fmt.Errorf("%w: %s does not name the node's %s namespace", errRetryNS, files[i], kind)
		}
	}
	hold.Close()
	done = true
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("lab: mountns for %s: %v: %s", h.Name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// startOnCPU starts cmd with the clone made on CPU cpu (-1: anywhere). The
// clone runs on the calling thread, so the thread is pinned for the start
// and given its mask back afterwards; the child inherits the pin, which
// does not matter for a process that only mounts and exits.
func startOnCPU(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return err
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	defer unix.SchedSetaffinity(0, &old)
	return cmd.Start()
}

// HoldNodeNS is the child's side of persistNodeNS (mailfleet lab mountns):
// it makes the node's file system in the namespaces it was cloned into,
// says "ready" on ready and waits until hold is closed.
func HoldNodeNS(dir, node string, ready io.Writer, hold io.Reader) error {
	// Private before the first mount, so that nothing made here reaches
	// the machine's namespace, and the machine's later mounts stay out.
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("lab: make mounts private: %w", err)
	}
	if err := MountNode(dir, node); err != nil {
		return err
	}
	if _, err := io.WriteString(ready, "ready\n"); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, hold)
	return nil
}
