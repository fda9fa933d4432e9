// Package frontend_test measures the front-end node (`mailfleetd
// frontend`, run as its own process) against real store instances and a
// real slapd: memory per idle proxied IMAP session.
//
//	go test ./bench/frontend -run XXX -bench IdleIMAP -benchtime 1x
//	MAILFLEET_IDLE_SESSIONS=5000 go test ./bench/frontend -run XXX -bench IdleIMAP -benchtime 1x
package frontend_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

func rssKB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func login(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		c.Close()
		return nil, err
	}
	fmt.Fprintf(c, "a1 LOGIN alice@example.org alice-pw\r\na2 SELECT INBOX\r\n")
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if strings.HasPrefix(l, "a1 ") && !strings.HasPrefix(l, "a1 OK") {
			c.Close()
			return nil, fmt.Errorf("login: %s", l)
		}
		if strings.HasPrefix(l, "a2 ") {
			c.SetDeadline(time.Time{})
			return c, nil
		}
	}
}

// BenchmarkIdleIMAPSessionMemory opens MAILFLEET_IDLE_SESSIONS (default
// 1000) logged-in, selected, idle IMAP sessions through the front-end and
// reports the growth of the front-end process's resident memory per
// session.
func BenchmarkIdleIMAPSessionMemory(b *testing.B) {
	n := 1000
	if s := os.Getenv("MAILFLEET_IDLE_SESSIONS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "mailfleetd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mailfleet/mailfleet/cmd/mailfleetd").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	cl := storetest.NewCluster(b, nil)
	cfg := config.Frontend{FormatVersion: config.FormatVersion, Node: "fe1", Admin: testutil.FreeAddr(b, "127.0.0.1"),
		IMAP: &config.Proxy{Listen: testutil.FreeAddr(b, "127.0.0.1"), AuthenticateOnProxy: true}, LDAP: cl.Slapd.Config(),
		Instances: cl.Instances, Domains: []string{"example.org"},
		Limits: config.Limits{MaxConnections: n + 100, IdleTimeout: config.Duration(time.Hour), PreAuthTimeout: config.Duration(time.Minute)}}
	js, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "frontend.json")
	os.WriteFile(cfgPath, js, 0o600)
	cmd := exec.Command(bin, "frontend", "-config", cfgPath)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", cfg.IMAP.Listen); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			b.Fatal("frontend did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	// Warm up (pools, caches, TLS-free code paths), then measure.
	var warm []net.Conn
	for range 20 {
		c, err := login(cfg.IMAP.Listen)
		if err != nil {
			b.Fatal(err)
		}
		warm = append(warm, c)
	}
	time.Sleep(500 * time.Millisecond)
	before := rssKB(b, cmd.Process.Pid)
	b.ResetTimer()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 32)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := login(cfg.IMAP.Listen)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	time.Sleep(time.Second)
	after := rssKB(b, cmd.Process.Pid)
	perSession := float64(after-before) * 1024 / float64(n)
	b.ReportMetric(perSession, "bytes/idle-session")
	b.ReportMetric(float64(n)/took.Seconds(), "logins/s")
	b.Logf("%d idle sessions: front-end RSS %d KB -> %d KB, %.0f bytes per session; %d logins in %v",
		n, before, after, perSession, n, took.Round(time.Millisecond))
	for _, c := range append(conns, warm...) {
		if c != nil {
			c.Close()
		}
	}
}
