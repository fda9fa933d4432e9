package lab

import (
	"bufio"
	"crypto/subtle"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
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

// PDUServer serves one fence device's power switch.
type PDUServer struct {
	Lab      *Lab
	PDU      *PDU
	Password string
	mu       sync.Mutex // one power action at a time
}

// ServePDU opens the lab at dir and serves fence device fence's switch on
// its address until the listener fails. password is the device's secret.
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
	ln, err := net.Listen("tcp", net.JoinHostPort(h.Ifaces[0].Addr.Addr().String(), strconv.Itoa(PDUPort)))
	if err != nil {
		return err
	}
	s := &PDUServer{Lab: l, PDU: pdu, Password: password}
	fmt.Fprintf(os.Stderr, "pdu %s: listening on %s\n", fence, ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.serve(c)
	}
}

func (s *PDUServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\r\n", args...)
		w.Flush()
	}
	reply("MAILFLEET-PDU %s", s.PDU.Fence)
	authed := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, rest, _ := strings.Cut(line, " ")
		switch strings.ToLower(verb) {
		case "quit":
			reply("ok bye")
			return
		case "auth":
			login, pw, _ := strings.Cut(rest, " ")
			okLogin := s.PDU.Login == "" || login == s.PDU.Login
			okPW := subtle.ConstantTimeCompare([]byte(pw), []byte(s.Password)) == 1
			if okLogin && okPW {
				authed = true
				reply("ok")
			} else {
				time.Sleep(200 * time.Millisecond)
				reply("err authentication failed")
			}
			continue
		}
		if !authed {
			reply("err auth first")
			continue
		}
		switch strings.ToLower(verb) {
		case "list":
			var items []string
			for _, p := range sortedPorts(s.PDU.Ports) {
				n := s.PDU.Ports[p]
				items = append(items, fmt.Sprintf("%d:%s:%s", p, n, s.state(n)))
			}
			reply("ok %s", strings.Join(items, " "))
		case "status", "on", "off":
			node, ok := s.node(strings.TrimSpace(rest))
			if !ok {
				reply("err no such port %q", strings.TrimSpace(rest))
				continue
			}
			var err error
			s.mu.Lock()
			switch strings.ToLower(verb) {
			case "on":
				err = s.Lab.PowerOn(node)
			case "off":
				err = s.Lab.PowerOff(node)
			}
			st := s.state(node)
			s.mu.Unlock()
			if err != nil {
				fmt.Fprintf(os.Stderr, "pdu %s: %s %s: %v\n", s.PDU.Fence, verb, node, err)
				reply("err %s", strings.ReplaceAll(err.Error(), "\n", " "))
				continue
			}
			fmt.Fprintf(os.Stderr, "pdu %s: %s %s: %s\n", s.PDU.Fence, verb, node, st)
			reply("ok %s", st)
		default:
			reply("err unknown command %q", verb)
		}
	}
}

func (s *PDUServer) node(plug string) (string, bool) {
	if p, err := strconv.Atoi(plug); err == nil {
		n, ok := s.PDU.Ports[p]
		return n, ok
	}
	for _, n := range s.PDU.Ports {
		if n == plug {
			return n, true
		}
	}
	return "", false
}

func (s *PDUServer) state(node string) string {
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
