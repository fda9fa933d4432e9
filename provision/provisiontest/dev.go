// Package provisiontest runs `mailfleetd dev` (real slapd, two real store
// instances, front-ends and the balancer) for the account tests.
// A test harness: only tests import it.
package provisiontest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/mailfleet/mailfleet/internal/programs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/runtime/devcluster"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds mailfleetd once per test binary.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "mailfleetd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "mailfleetd")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/mailfleetd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build mailfleetd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// Dev is a running development cluster.
type Dev struct {
	t        testing.TB
	Data     string
	AddrBase string
	Info     devcluster.Info
	Topology string // Data/topology
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start runs `mailfleetd dev -data DIR` on addresses from addrBase (each
// test package takes its own range) and stops it when the test ends. It
// fails the test, naming the package, when slapd is not installed.
func Start(t testing.TB, addrBase string) *Dev {
	t.Helper()
	programs.Require(t, "/usr/sbin/slapd")
	d := &Dev{t: t, Data: filepath.Join(t.TempDir(), "dev"), AddrBase: addrBase}
	d.start()
	t.Cleanup(d.Stop)
	return d
}

func (d *Dev) start() {
	d.t.Helper()
	cmd := exec.Command(Binary(d.t), "dev", "-data", d.Data, "-addr-base", d.AddrBase)
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
	}()
	go func() { _ = cmd.Wait(); close(d.done) }()
	select {
	case line, ok := <-lines:
		if !ok {
			d.t.Fatalf("mailfleetd dev exited before it was ready; see %s/log", d.Data)
		}
		d.Info = devcluster.Info{}
		if err := json.Unmarshal([]byte(line), &d.Info); err != nil {
			d.t.Fatalf("mailfleetd dev: %v: %s", err, line)
		}
	case <-time.After(60 * time.Second):
		d.t.Fatal("mailfleetd dev not ready in 60s")
	}
	d.Topology = d.Info.Topology
}

// Stop ends the cluster (and slapd) and waits.
func (d *Dev) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

// Exited is closed when mailfleetd dev has exited.
func (d *Dev) Exited() <-chan struct{} { return d.done }

// Restart starts the cluster again on the same data (after Stop or after
// it stopped itself because slapd died).
func (d *Dev) Restart() {
	d.t.Helper()
	if d.cmd != nil {
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			d.Stop()
		}
		d.cmd = nil
	}
	d.start()
}

// TopologyVariant copies the topology next to the original (so file()
// paths still resolve) into Data/NAME, applies edit to its text and adds
// extra files.
func (d *Dev) TopologyVariant(name string, edit func(string) string, extra map[string]string) string {
	d.t.Helper()
	src, err := os.ReadFile(filepath.Join(d.Topology, devcluster.TopologyFile))
	if err != nil {
		d.t.Fatal(err)
	}
	dir := filepath.Join(d.Data, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		d.t.Fatal(err)
	}
	text := string(src)
	if edit != nil {
		text = edit(text)
	}
	if err := os.WriteFile(filepath.Join(dir, devcluster.TopologyFile), []byte(text), 0o600); err != nil {
		d.t.Fatal(err)
	}
	// The secrets the topology's file() calls read, beside it.
	secrets, _ := filepath.Glob(filepath.Join(d.Topology, "secrets", "*"))
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		d.t.Fatal(err)
	}
	for _, f := range secrets {
		b, err := os.ReadFile(f)
		if err != nil {
			d.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "secrets", filepath.Base(f)), b, 0o600); err != nil {
			d.t.Fatal(err)
		}
	}
	for f, c := range extra {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(c), 0o600); err != nil {
			d.t.Fatal(err)
		}
	}
	return dir
}
