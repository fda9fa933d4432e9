package lab

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// The power switch's line protocol (mailfleet lab pdu), one TCP connection
// per agent call:
//
//	S: MAILFLEET-PDU <fence>
//	C: auth <login or -> <password>     S: ok | err …
//	C: status <port|node>               S: ok on | ok off
//	C: off <port|node>                  S: ok off
//	C: on <port|node>                   S: ok on
//	C: list                             S: ok 1:node:on 2:node:off …
//	C: quit
//
// Nothing but auth and quit is answered before a good auth.

// Limits of the power switch: a hostile or broken client on the lab
// network gets a clear error and cannot exhaust the switch.
const (
	// pduMaxLine is the longest command line accepted, CR LF included; a
	// longer one is answered with an error and the connection closed.
	pduMaxLine = 1024
	// pduIdle is how long a connection may stay silent before it is closed.
	pduIdle = 5 * time.Minute
	// pduAuthIdle is that limit before a good auth.
	pduAuthIdle = 30 * time.Second
	// pduWriteTimeout bounds each reply's write to a client that reads nothing.
	pduWriteTimeout = 30 * time.Second
	// pduMaxConns is how many connections are served at once; more are
	// answered "err busy" and closed.
	pduMaxConns = 16
	// pduMaxAuthFailures closes a connection after that many failed auths.
	pduMaxAuthFailures = 3
	// pduAuthDelay is the pause before "err authentication failed".
	pduAuthDelay = 200 * time.Millisecond
)

// PDUServer serves one fence device's power switch.
type PDUServer struct {
	Lab      *Lab
	PDU      *PDU
	Password string
	mu       sync.Mutex // one power action at a time

	conns chan struct{} // a token per connection served (pduMaxConns)
	power pduPower      // nil: the lab (labPower); a fake in tests

	// booting holds a timer per node that has power but whose init has
	// not started yet (the lab's BootTime); under mu.
	booting map[string]*time.Timer
}

// pduPower is what a switch session acts on: the lab (labPower), or a fake
// in tests. Power actions are serialized by the caller.
type pduPower interface {
	PowerOn(node string) error
	PowerOff(node string) error
	State(node string) string // "on" or "off"
}

// labPower is a PDUServer's lab as a pduPower, one action at a time.
type labPower struct{ s *PDUServer }

// PowerOn applies power: the node boots after the lab's BootTime, as a
// server runs its firmware first. The switch answers at once, as a real
// one does; the node counts as on from now.
func (p labPower) PowerOn(node string) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	s := p.s
	if s.Lab.BootTime <= 0 || s.state(node) == "on" {
		return s.Lab.PowerOn(node)
	}
	if s.booting == nil {
		s.booting = map[string]*time.Timer{}
	}
	var t *time.Timer
	t = time.AfterFunc(time.Duration(s.Lab.BootTime), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.booting[node] != t {
			return // switched off again meanwhile
		}
		delete(s.booting, node)
		if err := s.Lab.PowerOn(node); err != nil {
			fmt.Fprintf(os.Stderr, "pdu %s: boot %s: %v\n", s.PDU.Fence, node, err)
			return
		}
		fmt.Fprintf(os.Stderr, "pdu %s: %s booted\n", s.PDU.Fence, node)
	})
	s.booting[node] = t
	fmt.Fprintf(os.Stderr, "pdu %s: %s powered on; it boots in %v\n", s.PDU.Fence, node, time.Duration(s.Lab.BootTime))
	return nil
}

func (p labPower) PowerOff(node string) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if t := p.s.booting[node]; t != nil {
		t.Stop()
		delete(p.s.booting, node)
	}
	return p.s.Lab.PowerOff(node)
}

func (p labPower) State(node string) string {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.s.state(node)
}

// ServePDU opens the lab at dir and serves fence device fence's switch on
// its address until SIGTERM or SIGINT (then it returns nil) or the
// listener fails. password is the device's secret.
func ServePDU(dir, fence, password string) error {
	l, err := Open(dir)
	if err != nil {
		return err
	}
	l.SetLog(os.Stderr)
	var pdu *PDU
	for _, p := range l.PDUs {
		if p.Fence == fence {
			pdu = p
		}
	}
	if pdu == nil {
		return fmt.Errorf("lab: no power switch for fence %q", fence)
	}
	h := l.Host(pdu.Host)
	if h == nil || len(h.Ifaces) == 0 {
		return fmt.Errorf("lab: fence %q: its power switch host %q has no address", fence, pdu.Host)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(h.Ifaces[0].Addr.Addr().String(), strconv.Itoa(PDUPort)))
	if err != nil {
		return err
	}
	s := &PDUServer{Lab: l, PDU: pdu, Password: password}
	if password == "" {
		fmt.Fprintf(os.Stderr, "pdu %s: warning: no password: anyone on the lab network can switch power\n", fence)
	}
	fmt.Fprintf(os.Stderr, "pdu %s: listening on %s\n", fence, ln.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(stop)
	stopped := make(chan struct{})
	go func() {
		if _, ok := <-stop; ok {
			close(stopped)
			ln.Close()
		}
	}()
	err = s.Serve(ln)
	select {
	case <-stopped:
		fmt.Fprintf(os.Stderr, "pdu %s: stopped\n", fence)
		return nil
	default:
		return err
	}
}

// Serve accepts connections on ln until it fails (not for a passing
// error, such as too many open files).
func (s *PDUServer) Serve(ln net.Listener) error {
	s.conns = make(chan struct{}, pduMaxConns)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				fmt.Fprintf(os.Stderr, "pdu %s: accept: %v; retrying in %v\n", s.PDU.Fence, err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		select {
		case s.conns <- struct{}{}:
			go func() {
				defer func() { <-s.conns }()
				s.serve(c)
			}()
		default:
			go func() {
				defer c.Close()
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "err busy: %d connections already\r\n", pduMaxConns)
			}()
		}
	}
}

func (s *PDUServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, pduMaxLine)
	w := bufio.NewWriter(c)
	reply := func(line string) bool {
		_ = c.SetWriteDeadline(time.Now().Add(pduWriteTimeout))
		w.WriteString(line + "\r\n")
		return w.Flush() == nil
	}
	var power pduPower = labPower{s}
	if s.power != nil {
		power = s.power
	}
	ss := newPDUSession(s.PDU.Fence, s.PDU.Login, s.Password, s.PDU.Ports, power)
	ss.log = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "pdu %s: "+format+"\n", append([]any{s.PDU.Fence}, args...)...)
	}
	if !reply(ss.greeting()) {
		return
	}
	for {
		idle := pduAuthIdle
		if ss.authed {
			idle = pduIdle
		}
		_ = c.SetReadDeadline(time.Now().Add(idle))
		line, err := readPDULine(r)
		if errors.Is(err, errPDULineTooLong) {
			reply(fmt.Sprintf("err line too long (over %d bytes)", pduMaxLine))
			return
		}
		if err != nil {
			return
		}
		out, quit := ss.handle(line)
		if ss.authFailed {
			time.Sleep(pduAuthDelay)
		}
		if !reply(out) || quit {
			return
		}
	}
}

var errPDULineTooLong = errors.New("line too long")

// readPDULine reads one line (up to pduMaxLine bytes, LF or CR LF ended),
// without its end.
func readPDULine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errPDULineTooLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// pduSession is one connection's state of the switch's protocol, apart
// from the network: handle answers one line.
type pduSession struct {
	fence, login, password string
	ports                  map[int]string
	power                  pduPower
	log                    func(format string, args ...any) // never given the password

	authed     bool
	failures   int  // failed auths
	authFailed bool // the last line was a failed auth
}

func newPDUSession(fence, login, password string, ports map[int]string, power pduPower) *pduSession {
	return &pduSession{fence: fence, login: login, password: password, ports: ports, power: power,
		log: func(string, ...any) {}}
}

func (ss *pduSession) greeting() string { return "MAILFLEET-PDU " + ss.fence }

// handle answers line (without its end): the reply, and whether the
// connection ends after it. Nothing but auth and quit is done before a
// good auth; a wrong password gets "err authentication failed" and ends
// the connection after pduMaxAuthFailures.
func (ss *pduSession) handle(line string) (reply string, quit bool) {
	ss.authFailed = false
	if strings.ContainsRune(line, 0) || !utf8.ValidString(line) {
		return "err command is not UTF-8 text", false
	}
	verb, rest, _ := strings.Cut(line, " ")
	switch strings.ToLower(verb) {
	case "quit":
		return "ok bye", true
	case "auth":
		login, pw, _ := strings.Cut(rest, " ")
		okLogin := ss.login == "" || subtle.ConstantTimeCompare([]byte(login), []byte(ss.login)) == 1
		// Compared as hashes, so that the time taken tells nothing of
		// the password, not even its length.
		got, want := sha256.Sum256([]byte(pw)), sha256.Sum256([]byte(ss.password))
		okPW := subtle.ConstantTimeCompare(got[:], want[:]) == 1
		if okLogin && okPW {
			ss.authed = true
			return "ok", false
		}
		ss.authed = false
		ss.authFailed = true
		ss.failures++
		ss.log("authentication failed")
		if ss.failures >= pduMaxAuthFailures {
			return "err authentication failed; closing", true
		}
		return "err authentication failed", false
	}
	if !ss.authed {
		return "err auth first", false
	}
	switch v := strings.ToLower(verb); v {
	case "list":
		var items []string
		for _, p := range sortedPorts(ss.ports) {
			n := ss.ports[p]
			items = append(items, fmt.Sprintf("%d:%s:%s", p, n, ss.power.State(n)))
		}
		return "ok " + strings.Join(items, " "), false
	case "status", "on", "off":
		plug := strings.TrimSpace(rest)
		node, ok := ss.node(plug)
		if !ok {
			return fmt.Sprintf("err no such port %q", plug), false
		}
		var err error
		switch v {
		case "on":
			err = ss.power.PowerOn(node)
		case "off":
			err = ss.power.PowerOff(node)
		}
		if err != nil {
			ss.log("%s %s: %v", v, node, err)
			return "err " + strings.Join(strings.Fields(err.Error()), " "), false
		}
		st := ss.power.State(node)
		ss.log("%s %s: %s", v, node, st)
		return "ok " + st, false
	default:
		return fmt.Sprintf("err unknown command %q", verb), false
	}
}

func (ss *pduSession) node(plug string) (string, bool) {
	if plug == "" {
		return "", false
	}
	if p, err := strconv.Atoi(plug); err == nil {
		n, ok := ss.ports[p]
		return n, ok
	}
	for _, n := range ss.ports {
		if n == plug {
			return n, true
		}
	}
	return "", false
}

func (s *PDUServer) state(node string) string {
	if s.booting[node] != nil {
		return "on"
	}
	if h := s.Lab.Host(node); h != nil && s.Lab.Running(h) {
		return "on"
	}
	return "off"
}

// startPDU runs mailfleet lab pdu in p's namespace (the machine's mount
// namespace), the password on its standard input, and records its PID.
func (l *Lab) startPDU(p *PDU, password string) error {
	h := l.Host(p.Host)
	if p.PID != 0 && l.pduAlive(p) {
		return nil
	}
	logf, err := os.OpenFile(l.pduLog(p.Fence), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net="+l.nsPath(h), l.Executable, "lab", "pdu", "-dir", l.Dir, "-fence", p.Fence)
	cmd.Env = toolEnv()
	cmd.Dir = "/"
	// The password goes through a pipe, never argv or the environment.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	_, err = pw.WriteString(password + "\n")
	pw.Close()
	if err != nil {
		return err
	}
	cmd.Stdin = pr
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	p.PID = cmd.Process.Pid
	if err := l.save(); err != nil {
		return err
	}
	l.logf("pdu %s: started (pid %d) on %s:%d", p.Fence, p.PID, h.Ifaces[0].Addr.Addr(), PDUPort)
	return nil
}

// pduAlive: p's PID is a process in p's namespace.
func (l *Lab) pduAlive(p *PDU) bool {
	ino, ok := nsInode(l.nsPath(l.Host(p.Host)))
	return ok && p.PID > 0 && inNS(p.PID, "net", map[uint64]bool{ino: true})
}

func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
