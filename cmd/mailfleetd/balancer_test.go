package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
)

// mailfleetdBinary builds this command into a temporary directory.
func mailfleetdBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailfleetd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// imapGreeter greets as an IMAP front-end named name and echoes lines.
func imapGreeter(t *testing.T, name, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "* OK %s ready\r\n", name)
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || strings.HasSuffix(line, "LOGOUT\r\n") {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// balancerJSON is a config as render writes it (render/balancer.go), with
// loopback addresses and free ports.
func balancerJSON(backends map[string]string) string {
	var bes []string
	for _, name := range []string{"fe1", "fe2", "fe3"} {
		if addr, ok := backends[name]; ok {
			bes = append(bes, fmt.Sprintf(`{"name": %q, "address": %q, "weight": 1}`, name, addr))
		}
	}
	return `{
  "format_version": 1,
  "node": "loadbalancer",
  "admin": "127.0.0.20:0",
  "services": [
    {
      "name": "imap",
      "protocol": "imap",
      "listen": "127.0.0.20:0",
      "scheduler": "least_conn",
      "proxy_protocol": false,
      "backends": [` + strings.Join(bes, ", ") + `],
      "health": {"interval": "1s", "timeout": "1s", "rise": 2, "fall": 2}
    }
  ],
  "limits": {"max_connections": 30000, "max_per_client": 256, "idle_timeout": "31m0s"}
}
`
}

// logWatcher reads the daemon's JSON log lines and hands over those with
// a given message.
type logWatcher struct {
	mu    sync.Mutex
	lines []map[string]any
	all   strings.Builder
}

func (w *logWatcher) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		json.Unmarshal(sc.Bytes(), &m)
		w.mu.Lock()
		w.all.WriteString(sc.Text() + "\n")
		if m != nil {
			w.lines = append(w.lines, m)
		}
		w.mu.Unlock()
	}
}

func (w *logWatcher) wait(t *testing.T, msg string, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		seen := 0
		for _, m := range w.lines {
			if m["msg"] == msg {
				if seen++; seen == n {
					w.mu.Unlock()
					return m
				}
			}
		}
		w.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log %q (#%d); logs:\n%s", msg, n, w.all.String())
	return nil
}

func healthz(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBalancerBinaryServesAndReloads(t *testing.T) {
	testutil.Long(t)
	bin := mailfleetdBinary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "balancer.json")
	fe1, fe2, fe3 := imapGreeter(t, "fe1", "127.0.0.21"), imapGreeter(t, "fe2", "127.0.0.22"), imapGreeter(t, "fe3", "127.0.0.23")
	if err := os.WriteFile(cfgPath, []byte(balancerJSON(map[string]string{"fe1": fe1, "fe2": fe2})), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(bin, "balancer", "-config", cfgPath, "-check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is valid") {
		t.Fatalf("-check: %v %s", err, out)
	}

	cmd := exec.Command(bin, "balancer", "-config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	logs := &logWatcher{}
	go func() {
		logs.read(stderr)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })

	listeners := logs.wait(t, "serving", 1)["listeners"].(map[string]any)
	imapAddr, admin := listeners["imap"].(string), listeners["admin"].(string)
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := healthz(t, admin)
		if code == 200 && strings.Count(body, `"state":"up"`) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", imapAddr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		greeting, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(greeting, "* OK fe") {
			t.Fatalf("greeting through the balancer: %q %v", greeting, err)
		}
		seen[strings.Fields(greeting)[2]] = true
		fmt.Fprintf(c, "a NOOP\r\n")
		if echo, err := br.ReadString('\n'); err != nil || echo != "a NOOP\r\n" {
			t.Fatalf("echo: %q %v", echo, err)
		}
		c.Close()
	}
	if !seen["fe1"] || !seen["fe2"] {
		t.Fatalf("connections reached only %v", seen)
	}

	// SIGHUP: fe2 leaves, fe3 arrives.
	if err := os.WriteFile(cfgPath, []byte(balancerJSON(map[string]string{"fe1": fe1, "fe3": fe3})), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	logs.wait(t, "reloaded", 1)
	code, body := healthz(t, admin)
	if code != 200 || !strings.Contains(body, `"name":"fe3"`) || strings.Contains(body, `"name":"fe2"`) {
		t.Fatalf("/healthz after reload: %d %s", code, body)
	}
	// A bad config is refused and the running one kept.
	os.WriteFile(cfgPath, []byte(`{"format_version": 1}`), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	logs.wait(t, "reload failed, keeping the running config", 1)
	if code, _ := healthz(t, admin); code != 200 {
		t.Fatalf("/healthz after a bad reload: %d", code)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no exit after SIGTERM")
	}
}
