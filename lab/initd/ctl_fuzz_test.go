package initd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailfleet/mailfleet/internal/testutil"
)

// readOnlyVerbs are the verbs FuzzControlRequest runs against a supervisor
// of its own: they start, stop or signal nothing.
var readOnlyVerbs = map[string]bool{
	"status": true, "show": true, "is-active": true, "is-failed": true, "list-units": true, "cat": true,
	"is-enabled": true, "list-unit-files": true, "is-system-running": true, "reset-failed": true,
}

// testManager is a supervisor over unit files below a temporary root,
// with no processes: for requests that only read.
func testManager(t testing.TB) *manager {
	root := t.TempDir()
	dir := filepath.Join(root, "lib/systemd/system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"app.service":       "[Unit]\nDescription=app\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=web.service\n",
		"tpl@.service":      "[Unit]\nDescription=tpl %i\n[Service]\nExecStart=/bin/true %i\n",
		"multi-user.target": "[Unit]\nDescription=Multi-User\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &manager{
		loader:   &loader{root: root, hostname: "node1"},
		services: map[string]*service{},
		names:    map[string]string{},
		log:      log.New(io.Discard, "", 0),
		self:     os.Getpid(),
	}
}

// FuzzControlRequest: a control request line of any content is decoded
// without panicking, and what decodes passes check (no path for a unit
// name, nothing unprintable, within the limits); read-only requests that
// decode are answered (never panicking) by a supervisor of the fuzz's own.
func FuzzControlRequest(f *testing.F) {
	for _, args := range [][]string{
		{"status", "app"}, {"status", "-n", "5", "app.service", "tpl@x.service"}, {"show", "-p", "ActiveState,MainPID", "--value", "web"},
		{"is-active", "--quiet", "app"}, {"list-units", "--all", "*.service"}, {"cat", "tpl@a.service"},
		{"is-enabled", "app"}, {"start", "--no-block", "app"}, {"kill", "-s", "HUP", "--kill-whom=main", "app"},
		{"enable", "--now", "app"}, {"reset-failed"}, {"list-unit-files"}, {"is-system-running"},
	} {
		req, _, err := parseSystemctlArgs(args)
		if err != nil {
			f.Fatalf("%v: %v", args, err)
		}
		b, _ := json.Marshal(req)
		f.Add(b)
	}
	for _, s := range []string{
		`{"verb":"status","units":["../../../etc/shadow"]}`,
		`{"verb":"cat","units":[".."]}`,
		`{"verb":"status","units":[""]}`,
		`{"verb":"show","units":["app"],"props":["` + strings.Repeat("A,", 100) + `"]}`,
		`{"verb":"status\n","units":["a\u0000b"]}`,
		`{"verb":"status","units":["` + strings.Repeat("a", 300) + `"]}`,
		`{"verb":"status","lines":-5,"units":["app"]}`,
		`{"verb":"kill","signal":"SIGKILL","whom":"all","units":[]}`,
		`{"verb":1}`, `{"verb":"status","units":"app"}`, `null`, `[]`, ``, `{`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	m := testManager(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err != nil {
			if resp := m.handleLine(line); resp.Code == 0 {
				t.Fatalf("a bad request answered with code 0: %+v", resp)
			}
			return
		}
		if req.Verb == "" || len(req.Units) > maxRequestUnits {
			t.Fatalf("accepted %+v", req)
		}
		for _, u := range req.Units {
			if u == "" || strings.Contains(u, "/") || !utf8.ValidString(u) || len(normalizeName(u)) > maxUnitName {
				t.Fatalf("unit %q accepted", u)
			}
		}
		if !readOnlyVerbs[req.Verb] && knownVerb(req.Verb) {
			return // would start, stop, signal or write: decoding is all that is fuzzed
		}
		if req.Verb == "status" {
			req.Lines = -1 // no reading of the machine's lab logs
		}
		resp := m.handle(req)
		if !utf8.ValidString(resp.Stdout + resp.Stderr) {
			t.Logf("%+v: answer not UTF-8", req)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("%+v: answer cannot be sent: %v", req, err)
		}
		m.mu.Lock()
		if len(m.services) > 4096 {
			// Unknown non-service names load as empty units and stay:
			// forget them so the fuzz's own supervisor stays small.
			m.services, m.names = map[string]*service{}, map[string]string{}
		}
		m.mu.Unlock()
	})
}

// handleLine is the supervisor's answer to one request line, as serve
// gives it.
func (m *manager) handleLine(line []byte) response {
	req, err := decodeRequest(line)
	if err != nil {
		return response{Stderr: "bad request: " + err.Error() + "\n", Code: 1}
	}
	return m.handle(req)
}

// knownVerb: dispatch has a case for v.
func knownVerb(v string) bool {
	switch v {
	case "daemon-reload", "daemon-reexec", "enable", "disable", "reenable", "mask", "unmask", "is-enabled", "cat",
		"list-unit-files", "start", "stop", "restart", "try-restart", "condrestart", "reload", "reload-or-restart",
		"try-reload-or-restart", "force-reload", "reload-or-try-restart", "is-active", "is-failed", "status", "show",
		"list-units", "reset-failed", "kill", "is-system-running":
		return true
	}
	return false
}

func TestControlRequestChecks(t *testing.T) {
	m := testManager(t)
	for _, c := range []struct{ line, want string }{
		{`{"verb":"cat","units":["../../etc/passwd"]}`, "invalid unit name"},
		{`{"verb":"status","units":["` + strings.Repeat("a", 300) + `"]}`, "over 255 bytes"},
		{`{"verb":"status","units":[` + strings.Repeat(`"a",`, maxRequestUnits) + `"a"]}`, "units, over"},
		{`{"verb":""}`, "no verb"},
		{`{"verb":"st\u0007tus"}`, "not a command verb"},
		{`{"verb":"kill","signal":"` + strings.Repeat("X", 40) + `","units":["app"]}`, "not a signal name"},
		{`{"verb":"status",`, "bad request"},
	} {
		resp := m.handleLine([]byte(c.line))
		if resp.Code == 0 || !strings.Contains(resp.Stderr, c.want) {
			t.Errorf("%.80s: %+v, want an error with %q", c.line, resp, c.want)
		}
	}
	// The check holds for requests that do not come through decodeRequest.
	if resp := m.handle(request{Verb: "cat", Units: []string{"a/b.service"}}); resp.Code == 0 || !strings.Contains(resp.Stderr, "invalid unit name") {
		t.Errorf("a path as a unit: %+v", resp)
	}
	resp := m.handleLine([]byte(`{"verb":"show","units":["web"],"props":["Id"],"value":true}`))
	if resp.Code != 0 || resp.Stdout != "app.service\n" {
		t.Errorf("show web: %+v", resp)
	}
}

// TestControlPanicRecovered: a panic while handling a request is an error
// answer, not the supervisor's (the node's PID 1) end.
func TestControlPanicRecovered(t *testing.T) {
	m := &manager{services: map[string]*service{}, names: map[string]string{}, log: log.New(io.Discard, "", 0)}
	resp := m.handle(request{Verb: "status", Units: []string{"app"}}) // no loader: a nil dereference
	if resp.Code == 0 || !strings.Contains(resp.Stderr, "internal error") {
		t.Errorf("%+v", resp)
	}
}

// TestControlSocketLimits: a client may hold at most maxClients
// connections; the next is told the supervisor is busy and closed, and the
// supervisor goes on answering once the idle ones are gone.
func TestControlSocketLimits(t *testing.T) {
	n := newNode(t)
	n.start()
	dial := func() net.Conn {
		c, err := net.Dial("unix", n.sock)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var idle []net.Conn
	for i := 0; i < maxClients; i++ {
		idle = append(idle, dial())
	}
	// The harness's own connection (start's readiness check) may still
	// hold a slot when the first idle clients come, and the last of them
	// is then refused: replace each refused one until every slot is held.
	testutil.Until(t, 10*time.Second, "every slot held by an idle client", func() bool {
		full := true
		for i, c := range idle {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			var b [128]byte
			if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
				c.Close()
				idle[i] = dial()
				full = false
			}
		}
		return full
	})
	// Each accepted connection holds a slot once the supervisor has
	// accepted it; the one after them is refused.
	var refused string
	testutil.Until(t, 10*time.Second, "a connection beyond the cap refused", func() bool {
		c, err := net.Dial("unix", n.sock)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		refused = string(b)
		return strings.Contains(refused, "busy")
	})
	for _, c := range idle {
		c.Close()
	}
	testutil.Until(t, 10*time.Second, "answers again", func() bool {
		_, _, code := n.ctl("is-active", "ssh")
		return code == 3 || code == 4 // inactive or unknown: an answer
	})
}

// TestUnitsBounded: names of units that need no file (targets) are kept
// once asked about, up to maxUnits; beyond that a new one is refused
// instead of growing the supervisor, and the known ones still answer.
func TestUnitsBounded(t *testing.T) {
	m := testManager(t)
	for i := 0; i < maxUnits; i++ {
		if _, err := m.lookup(fmt.Sprintf("t%d.target", i)); err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
	}
	if _, err := m.lookup("one-more.target"); err == nil || !strings.Contains(err.Error(), "units are loaded already") {
		t.Fatalf("unit beyond the bound: %v", err)
	}
	if len(m.services) != maxUnits {
		t.Fatalf("%d units kept", len(m.services))
	}
	if _, err := m.lookup("t7.target"); err != nil {
		t.Fatalf("a known unit: %v", err)
	}
}
