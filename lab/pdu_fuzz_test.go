package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePower stands for the lab in the switch's tests: nothing is powered
// on or off, actions are only recorded.
type fakePower struct {
	mu      sync.Mutex
	on      map[string]bool
	actions []string
	fail    string // a node whose actions fail
}

func newFakePower() *fakePower { return &fakePower{on: map[string]bool{"db1": true, "db2": true}} }

func (f *fakePower) act(verb, node string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, verb+" "+node)
	if node == f.fail {
		return errors.New("cannot\nswitch " + node)
	}
	f.on[node] = on
	return nil
}

func (f *fakePower) PowerOn(node string) error  { return f.act("on", node, true) }
func (f *fakePower) PowerOff(node string) error { return f.act("off", node, false) }

func (f *fakePower) State(node string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.on[node] {
		return "on"
	}
	return "off"
}

func (f *fakePower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.actions)
}

const testPDUPassword = "s3cret pw"

func testPorts() map[int]string { return map[int]string{1: "db1", 2: "db2", 7: "mx1"} }

// FuzzPDUSession feeds the switch's session lines of any content: it never
// panics, answers every line with "ok …" or "err …" on one line, switches
// nothing before a good auth, and never repeats the password unless the
// client sent it.
func FuzzPDUSession(f *testing.F) {
	for _, s := range []string{
		"auth - " + testPDUPassword + "\nlist\nstatus 1\noff db2\non 2\nquit\n",
		"auth apc " + testPDUPassword + "\r\noff 7\r\n",
		"off 1\nauth - wrong\non 1\nauth - \nauth\n",
		"auth - wrong\nauth - wrong\nauth - wrong\nauth - " + testPDUPassword + "\noff 1\n",
		"AUTH - " + testPDUPassword + "\nOFF DB1\nStatus db1\nlist extra\n",
		"auth - " + testPDUPassword + "\nstatus\nstatus 99\nstatus -1\nstatus 99999999999999999999\non  db1 \nfrobnicate\n",
		"auth - " + testPDUPassword + "\n" + testPDUPassword + "\n",
		"\n\r\n \x00\xff\xfe\n",
		"quit",
		"auth - " + testPDUPassword + "\noff mx1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, login := range []string{"", "apc"} {
			power := newFakePower()
			power.fail = "mx1"
			var logged bytes.Buffer
			ss := newPDUSession("fence1", login, testPDUPassword, testPorts(), power)
			ss.log = func(format string, args ...any) { fmt.Fprintf(&logged, format+"\n", args...) }
			if g := ss.greeting(); g != "MAILFLEET-PDU fence1" {
				t.Fatalf("greeting %q", g)
			}
			for _, line := range strings.Split(in, "\n") {
				line = strings.TrimRight(line, "\r")
				wasAuthed := ss.authed
				before := power.count()
				reply, quit := ss.handle(line)
				if !strings.HasPrefix(reply, "ok") && !strings.HasPrefix(reply, "err ") {
					t.Fatalf("%q: reply %q is neither ok nor err", line, reply)
				}
				if strings.ContainsAny(reply, "\r\n") {
					t.Fatalf("%q: reply %q spans lines", line, reply)
				}
				if power.count() != before && !wasAuthed {
					t.Fatalf("%q: switched power before a good auth: %v", line, power.actions)
				}
				if strings.Contains(reply, testPDUPassword) && !strings.Contains(line, testPDUPassword) {
					t.Fatalf("%q: reply %q holds the password", line, reply)
				}
				if ss.authFailed && strings.HasPrefix(reply, "ok") {
					t.Fatalf("%q: a failed auth answered %q", line, reply)
				}
				if quit {
					break
				}
			}
			if strings.Contains(logged.String(), testPDUPassword) {
				t.Fatalf("the password was logged: %q", logged.String())
			}
			if ss.failures > pduMaxAuthFailures {
				t.Fatalf("%d failed auths in one connection", ss.failures)
			}
		}
	})
}

func TestPDUSessionAuth(t *testing.T) {
	power := newFakePower()
	ss := newPDUSession("fence1", "apc", testPDUPassword, testPorts(), power)
	for _, c := range []struct{ line, want string }{
		{"off 1", "err auth first"},
		{"auth apc wrong", "err authentication failed"},
		{"off 1", "err auth first"},
		{"auth other " + testPDUPassword, "err authentication failed"},
		{"auth apc " + testPDUPassword, "ok"},
		{"off db1", "ok off"},
		{"status 1", "ok off"},
		{"on 1", "ok on"},
		{"list", "ok 1:db1:on 2:db2:on 7:mx1:off"},
		{"status 3", `err no such port "3"`},
		{"zap 1", `err unknown command "zap"`},
		{"auth apc wrong", "err authentication failed; closing"}, // the third
		{"off 1", "err auth first"},
	} {
		if got, _ := ss.handle(c.line); got != c.want {
			t.Errorf("%q: %q, want %q", c.line, got, c.want)
		}
	}
	if want := []string{"off db1", "on db1"}; fmt.Sprint(power.actions) != fmt.Sprint(want) {
		t.Errorf("actions %v, want %v", power.actions, want)
	}
	ss = newPDUSession("fence1", "", testPDUPassword, testPorts(), power)
	for i := 1; i <= pduMaxAuthFailures; i++ {
		reply, quit := ss.handle("auth - nope")
		if quit != (i == pduMaxAuthFailures) || !strings.HasPrefix(reply, "err authentication failed") {
			t.Errorf("failed auth %d: %q, quit %v", i, reply, quit)
		}
	}
}

// TestPDUServerLimits runs the switch on loopback with a fake lab: a line
// too long is refused with an error, connections over the cap are told
// the switch is busy.
func TestPDUServerLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	power := newFakePower()
	s := &PDUServer{PDU: &PDU{Fence: "fence1", Ports: testPorts()}, Password: testPDUPassword, power: power}
	go s.Serve(ln)
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	readLine := func(r *bufio.Reader) string {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (%q)", err, l)
		}
		return strings.TrimRight(l, "\r\n")
	}

	c, r := dial()
	if g := readLine(r); g != "MAILFLEET-PDU fence1" {
		t.Fatalf("greeting %q", g)
	}
	fmt.Fprintf(c, "auth - %s\r\noff 2\r\n", testPDUPassword)
	if a, b := readLine(r), readLine(r); a != "ok" || b != "ok off" {
		t.Fatalf("auth, off: %q, %q", a, b)
	}
	fmt.Fprintf(c, "status %s\r\n", strings.Repeat("x", 4*pduMaxLine))
	if l := readLine(r); !strings.HasPrefix(l, "err line too long") {
		t.Fatalf("long line: %q", l)
	}
	c.Close()

	var conns []net.Conn
	for range pduMaxConns {
		c, r := dial()
		readLine(r)
		conns = append(conns, c)
	}
	c, r = dial()
	if l := readLine(r); !strings.HasPrefix(l, "err busy") {
		t.Fatalf("connection over the cap: %q", l)
	}
	c.Close()
	for _, c := range conns {
		c.Close()
	}
	if power.count() != 1 {
		t.Errorf("actions %v, want one", power.actions)
	}
}
