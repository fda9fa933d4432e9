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
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

// feProcess is one `mailfleetd frontend -config` process of the test.
type feProcess struct {
	name, cfgPath, imap, admin, logPath string
	cmd                                 *exec.Cmd
	exited                              chan struct{}
}

func (fe *feProcess) start(t *testing.T, bin string) {
	t.Helper()
	fe.cmd = exec.Command(bin, "frontend", "-config", fe.cfgPath)
	stderr, err := os.OpenFile(fe.logPath+".stderr", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fe.cmd.Stderr = stderr
	if err := fe.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stderr.Close()
	fe.exited = make(chan struct{})
	cmd, exited := fe.cmd, fe.exited
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	// Ready once the IMAP listener greets.
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", fe.imap, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "* OK") {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited at start:\n%s", fe.name, fe.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not greet on %s:\n%s", fe.name, fe.imap, fe.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (fe *feProcess) logs() string {
	a, _ := os.ReadFile(fe.logPath + ".stderr")
	b, _ := os.ReadFile(fe.logPath)
	return string(a) + string(b)
}

// okLogins is the node's count of successful IMAP logins (its /metrics).
func (fe *feProcess) okLogins() (int, error) {
	resp, err := http.Get("http://" + fe.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "mailfleet_frontend_logins_total{") && strings.Contains(line, `result="ok"`) && strings.Contains(line, `service="imap"`) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			n += int(v)
		}
	}
	return n, nil
}

// backendState reads the balancer's /healthz: state and connections
// forwarded of each backend of the imap service.
func backendState(admin string) (map[string]string, map[string]uint64, error) {
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Services []struct {
			Name     string `json:"name"`
			Backends []struct {
				Name  string `json:"name"`
				State string `json:"state"`
				Total uint64 `json:"total"`
			} `json:"backends"`
		} `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, nil, err
	}
	states, totals := map[string]string{}, map[string]uint64{}
	for _, s := range st.Services {
		if s.Name != "imap" {
			continue
		}
		for _, b := range s.Backends {
			states[b.Name], totals[b.Name] = b.State, b.Total
		}
	}
	return states, totals, nil
}

// imapAttempt is one client connection through the balancer.
type imapAttempt struct {
	start, end time.Time
	err        error
}

// imapSession connects, checks the greeting, logs in and logs out.
func imapSession(addr, user, pass string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(greeting))
	}
	expect := func(tag string) error {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("%s: %w", tag, err)
			}
			if strings.HasPrefix(line, tag+" ") {
				if !strings.HasPrefix(line, tag+" OK") {
					return fmt.Errorf("%q", strings.TrimSpace(line))
				}
				return nil
			}
		}
	}
	if _, err := fmt.Fprintf(c, "a1 LOGIN %s %s\r\n", user, pass); err != nil {
		return err
	}
	if err := expect("a1"); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if _, err := fmt.Fprintf(c, "a2 LOGOUT\r\n"); err != nil {
		return err
	}
	return expect("a2")
}

// TestFrontendFailover: two front-end nodes, each its own `mailfleetd
// frontend` process, behind a `mailfleetd balancer` process, with a real
// slapd and store instances. Clients connect continuously through the
// balancer's IMAP service; one node is killed with SIGKILL. Once the
// balancer shows it down, every new connection gets a greeting and a
// successful login (through the other node); the node is started again,
// marked up, and serves logins again. The time from the kill to the
// mark-down is logged, not asserted.
func TestFrontendFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts slapd, builds and runs mailfleetd processes")
	}
	bin := mailfleetdBinary(t)
	cl := storetest.NewCluster(t, nil)
	dir := t.TempDir()

	fes := map[string]*feProcess{}
	for i, name := range []string{"fe1", "fe2"} {
		ip := fmt.Sprintf("127.0.0.%d", 71+i)
		fe := &feProcess{name: name, imap: testutil.FreeAddr(t, ip), admin: testutil.FreeAddr(t, ip),
			cfgPath: filepath.Join(dir, name+".json"), logPath: filepath.Join(dir, name+".log")}
		cfg := config.Frontend{FormatVersion: config.FormatVersion, Node: name, Admin: fe.admin,
			IMAP: &config.Proxy{Listen: fe.imap, AuthenticateOnProxy: true}, LDAP: cl.Slapd.Config(),
			Instances: cl.Instances, Domains: []string{"example.org"}, LogFile: fe.logPath,
			Limits: config.Limits{MaxConnections: 1000, PreAuthTimeout: config.Duration(time.Minute),
				IdleTimeout: config.Duration(10 * time.Minute), FailedLoginDelay: config.Duration(10 * time.Millisecond)}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(fe.cfgPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fe.start(t, bin)
		fes[name] = fe
	}

	// The balancer, as render writes it (health: 1s interval and timeout,
	// rise 2, fall 2), on its own address.
	bcfg := config.Balancer{FormatVersion: config.FormatVersion, Node: "lb", Admin: "127.0.0.70:0",
		Services: []config.BalancedService{{Name: "imap", Protocol: "imap", Listen: "127.0.0.70:0", Scheduler: "least_conn",
			Backends: []config.Backend{{Name: "fe1", Address: fes["fe1"].imap, Weight: 1}, {Name: "fe2", Address: fes["fe2"].imap, Weight: 1}},
			Health:   config.HealthConfig{Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second), Rise: 2, Fall: 2}}},
		Limits: config.Limits{MaxConnections: 10000, IdleTimeout: config.Duration(31 * time.Minute)}}
	if err := bcfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(bcfg)
	bPath := filepath.Join(dir, "balancer.json")
	os.WriteFile(bPath, b, 0o600)
	lb := exec.Command(bin, "balancer", "-config", bPath)
	stderr, err := lb.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &logWatcher{}
	lbDone := make(chan struct{})
	go func() { logs.read(stderr); lb.Wait(); close(lbDone) }()
	t.Cleanup(func() { lb.Process.Kill(); <-lbDone })
	listeners := logs.wait(t, "serving", 1)["listeners"].(map[string]any)
	vip, admin := listeners["imap"].(string), listeners["admin"].(string)

	// waitFor polls the balancer's /healthz until cond holds.
	waitFor := func(what string, cond func(states map[string]string, totals map[string]uint64) bool) time.Time {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			states, totals, err := backendState(admin)
			if err == nil && cond(states, totals) {
				return time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: /healthz %v %v %v\nbalancer log:\n%s", what, states, totals, err, logs.all.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("both front-ends up", func(s map[string]string, _ map[string]uint64) bool { return s["fe1"] == "up" && s["fe2"] == "up" })

	// Clients: a few loops, each opening one session after another.
	var mu sync.Mutex
	var attempts []imapAttempt
	stop := make(chan struct{})
	var wg sync.WaitGroup
	users := cl.Accounts[:3] // alice, bob (the other instance), carol
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				u := users[(i+n)%len(users)]
				a := imapAttempt{start: time.Now()}
				a.err = imapSession(vip, u.Address, u.Password)
				a.end = time.Now()
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	stopClients := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	t.Cleanup(stopClients)
	// count is the number of attempts that started after since (and of
	// those, how many failed).
	count := func(since time.Time) (n, failed int) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range attempts {
			if a.start.After(since) {
				n++
				if a.err != nil {
					failed++
				}
			}
		}
		return n, failed
	}
	waitFor("traffic on both front-ends", func(_ map[string]string, tot map[string]uint64) bool { return tot["fe1"] >= 20 && tot["fe2"] >= 20 })
	if n, failed := count(time.Time{}); failed > 0 {
		stopClients()
		t.Fatalf("%d of %d sessions failed with both front-ends up: %v", failed, n, firstFailure(attempts, time.Time{}))
	}

	// SIGKILL fe1, then wait until the balancer shows it down.
	fe1 := fes["fe1"]
	killed := time.Now()
	if err := fe1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-fe1.exited
	down := waitFor("fe1 marked down", func(s map[string]string, _ map[string]uint64) bool { return s["fe1"] == "down" })
	markDown := down.Sub(killed)
	downLog := logs.wait(t, "backend down", 1)
	if ts, ok := downLog["time"].(string); ok {
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			t.Logf("kill → mark-down: %v by the balancer's log, %v seen on /healthz (polled every 10 ms)",
				at.Sub(killed).Round(time.Millisecond), markDown.Round(time.Millisecond))
		}
	}
	n, failed := count(killed)
	t.Logf("sessions started between the kill and the mark-down seen: %d, failed: %d", n, failed)

	// Every new connection now goes through fe2 and succeeds.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if n, _ := count(down); n >= 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("clients made no progress after the mark-down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, failed := count(down); failed > 0 {
		stopClients()
		t.Fatalf("%d of %d new sessions failed after fe1 was marked down: %v\nbalancer log:\n%s", failed, n,
			firstFailure(attempts, down), logs.all.String())
	}

	// fe1 comes back: marked up again and serving logins.
	restarted := time.Now()
	fe1.start(t, bin)
	_, totals, err := backendState(admin)
	if err != nil {
		t.Fatal(err)
	}
	up := waitFor("fe1 marked up again", func(s map[string]string, _ map[string]uint64) bool { return s["fe1"] == "up" })
	t.Logf("restart → mark-up: %v", up.Sub(restarted).Round(time.Millisecond))
	before := totals["fe1"]
	waitFor("sessions on fe1 again", func(_ map[string]string, tot map[string]uint64) bool { return tot["fe1"] >= before+20 })
	deadline = time.Now().Add(time.Minute)
	for {
		n, err := fe1.okLogins()
		if err == nil && n >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted fe1 counts %d logins (%v):\n%s", n, err, fe1.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopClients()
	total, failedInAll := count(time.Time{})
	n, failed = count(down)
	t.Logf("%d sessions in all, %d failed (those on fe1 at the kill may fail); %d started after the mark-down, %d of them failed",
		total, failedInAll, n, failed)
	if failedInAll > 0 {
		t.Logf("first failure: %s", firstFailure(attempts, time.Time{}))
	}
	if failed > 0 {
		t.Fatalf("%d of %d new sessions failed after fe1 was marked down: %v\nbalancer log:\n%s", failed, n,
			firstFailure(attempts, down), logs.all.String())
	}
}

func firstFailure(attempts []imapAttempt, since time.Time) string {
	for _, a := range attempts {
		if a.start.After(since) && a.err != nil {
			return fmt.Sprintf("at %s: %v", a.start.Format("15:04:05.000"), a.err)
		}
	}
	return ""
}
