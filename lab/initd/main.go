package initd

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSocket is where the supervisor listens and systemctl connects.
const DefaultSocket = "/run/mailfleet-lab/init.sock"

// SocketEnv overrides the socket path for the systemctl client.
const SocketEnv = "MAILFLEET_LAB_INIT_SOCKET"

// maxRequestSize bounds one control request line.
const maxRequestSize = 1 << 20

// Main is `mailfleet lab init [-node NAME] [-socket PATH]`: the supervisor.
// It starts every enabled unit, serves systemctl on the socket, re-reads
// the unit files on SIGHUP, and on SIGTERM or SIGINT stops every unit
// (dependents first, then whatever is left of them) and returns 0. It
// returns 1 when the socket cannot be made or another supervisor answers
// on it, 2 on bad arguments.
func Main(args []string) int {
	fs := flag.NewFlagSet("lab init", flag.ContinueOnError)
	node := fs.String("node", "", "node name (for the log)")
	sock := fs.String("socket", DefaultSocket, "control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "lab init: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	prefix := "initd: "
	if *node != "" {
		prefix = "initd[" + *node + "]: "
	}
	logger := log.New(os.Stderr, prefix, log.LstdFlags|log.Lmicroseconds|log.LUTC)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		logger.Printf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	// the node's name: its /etc/hostname (nodes share the machine's UTS
	// namespace), else -node, else the machine's
	hostname, _ := os.Hostname()
	if *node != "" {
		hostname = *node
	}
	if b, err := os.ReadFile("/etc/hostname"); err == nil && strings.TrimSpace(string(b)) != "" {
		hostname = strings.TrimSpace(string(b))
	}
	m := &manager{
		loader:   &loader{hostname: hostname},
		services: map[string]*service{},
		names:    map[string]string{},
		reaper:   newReaper(),
		log:      logger,
		self:     os.Getpid(),
	}
	if err := os.MkdirAll(filepath.Dir(*sock), 0755); err != nil {
		logger.Printf("socket: %v", err)
		return 1
	}
	if c, err := net.DialTimeout("unix", *sock, time.Second); err == nil {
		c.Close()
		logger.Printf("another supervisor answers on %s", *sock)
		return 1
	}
	os.Remove(*sock)
	old := unix.Umask(0077)
	ln, err := net.Listen("unix", *sock)
	unix.Umask(old)
	if err != nil {
		logger.Printf("listen: %v", err)
		return 1
	}
	os.Chmod(*sock, 0600)
	defer os.Remove(*sock)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	logger.Printf("supervisor started, pid %d, socket %s", os.Getpid(), *sock)
	go func() {
		// At most maxClients connections at once (systemctl opens one per
		// command); others are told so and closed. Only a closed listener
		// ends the loop: a passing error (out of descriptors) is retried.
		slots := make(chan struct{}, maxClients)
		backoff := 5 * time.Millisecond
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				logger.Printf("accept: %v (retrying in %v)", err, backoff)
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 5 * time.Millisecond
			select {
			case slots <- struct{}{}:
				go func() {
					defer func() { <-slots }()
					m.serve(c)
				}()
			default:
				c.SetWriteDeadline(time.Now().Add(time.Second))
				json.NewEncoder(c).Encode(response{Stderr: "busy: too many clients\n", Code: 1})
				c.Close()
			}
		}
	}()
	go m.boot()
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	go func() {
		for range hups {
			m.daemonReload() // as systemd does on SIGHUP
		}
	}()
	sig := <-sigs
	logger.Printf("%s: stopping every unit", sig)
	ln.Close()
	signal.Reset(syscall.SIGTERM, syscall.SIGINT)
	m.shutdown()
	logger.Printf("stopped; exiting")
	return 0
}

// Limits of the control socket.
const (
	maxClients = 64
	clientIdle = 2 * time.Minute
)

// serve answers the requests on one connection, one JSON line each.
func (m *manager) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(io.LimitReader(c, maxRequestSize*16))
	enc := json.NewEncoder(c)
	for {
		// A client that says nothing for clientIdle is let go.
		c.SetReadDeadline(time.Now().Add(clientIdle))
		line, err := readLine(r, maxRequestSize)
		if err != nil {
			return
		}
		var resp response
		if req, err := decodeRequest(line); err != nil {
			resp = response{Stderr: "bad request: " + err.Error() + "\n", Code: 1}
		} else {
			resp = m.handle(req)
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		part, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, part...)
		if len(line) > max {
			return nil, fmt.Errorf("request too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}
