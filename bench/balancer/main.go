// Command balancer is the helper of the balancer benchmark (run.sh beside
// it): it serves greeting+echo front-end stand-ins, generates client load,
// and measures the time from a front-end's failure to its mark-down.
//
//	balancer serve -listen ADDR -name NAME
//	balancer load -target ADDR -mode conn|bytes -c N -d DURATION
//	balancer markdown -admin ADDR -service S -backend NAME -pid PID -signal KILL|STOP -probe ADDR
//	balancer hold -target ADDR -n N
//
// Every subcommand that measures prints one JSON line on stdout.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: balancer serve|load|markdown [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "markdown":
		err = markdown(os.Args[2:])
	case "hold":
		err = hold(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "balancer bench:", err)
		os.Exit(1)
	}
}

// serve greets each connection as an IMAP server and echoes every byte.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	name := fs.String("name", "fe", "name in the greeting")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	greeting := []byte("* OK " + *name + " ready\r\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			if _, err := c.Write(greeting); err != nil {
				return
			}
			io.Copy(c, c)
		}()
	}
}

// sourceIP spreads client connections over many loopback addresses so
// that no run runs out of ephemeral ports.
func sourceIP(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(1+i%250))}
}

type loadResult struct {
	Mode     string  `json:"mode"`
	Target   string  `json:"target"`
	Seconds  float64 `json:"seconds"`
	Conns    int64   `json:"conns"`
	Errors   int64   `json:"errors"`
	ConnsPS  float64 `json:"conns_per_s"`
	Bytes    int64   `json:"bytes"`
	MBPerSec float64 `json:"mb_per_s"`
}

// load runs clients against target for a while. Mode conn: each client
// connects, reads the greeting, sends a line, reads its echo and closes,
// again and again. Mode bytes: each client keeps one connection and
// streams data through it while reading the echo.
func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("target", "", "ADDR:PORT")
	mode := fs.String("mode", "conn", "conn or bytes")
	clients := fs.Int("c", 50, "concurrent clients")
	dur := fs.Duration("d", 5*time.Second, "duration")
	fs.Parse(args)
	var conns, errs, bytes atomic.Int64
	start := time.Now()
	end := start.Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: sourceIP(i)}
			if *mode == "bytes" {
				n, err := stream(d, *target, end)
				bytes.Add(n)
				conns.Add(1)
				if err != nil {
					errs.Add(1)
				}
				return
			}
			buf := make([]byte, 256)
			for time.Now().Before(end) {
				if err := session(d, *target, buf); err != nil {
					errs.Add(1)
					continue
				}
				conns.Add(1)
			}
		}(i)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := loadResult{Mode: *mode, Target: *target, Seconds: secs, Conns: conns.Load(), Errors: errs.Load(),
		ConnsPS: float64(conns.Load()) / secs, Bytes: bytes.Load(), MBPerSec: float64(bytes.Load()) / secs / 1e6}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func session(d net.Dialer, target string, buf []byte) error {
	c, err := d.Dial("tcp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "* OK") {
		return fmt.Errorf("greeting %q", buf[:n])
	}
	if _, err := c.Write([]byte("a LOGOUT\r\n")); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:10]); err != nil {
		return err
	}
	return nil
}

// stream writes 64 KiB chunks until end and counts the echoed bytes.
func stream(d net.Dialer, target string, end time.Time) (int64, error) {
	c, err := d.Dial("tcp", target)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		return 0, err
	}
	go func() {
		chunk := make([]byte, 64<<10)
		for time.Now().Before(end) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(end.Add(30 * time.Second))
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := br.Read(buf)
		// Only what came back before the end counts for the rate.
		if time.Now().Before(end) {
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

type markResult struct {
	Signal        string  `json:"signal"`
	Probe         bool    `json:"probe"`
	MarkDownMS    float64 `json:"markdown_ms"`
	Probes        int     `json:"probes"`
	ProbeFailures int     `json:"probe_failures"`
	FailuresAfter int     `json:"probe_failures_after_markdown"`
}

// markdown waits until backend is up, sends pid the signal at a random
// phase of the check interval, and measures until the balancer's /healthz
// shows the backend down. Meanwhile (with -probe) clients connect to the
// service over and over, counting failures; their failed connects also
// make the balancer check at once, so a killed backend goes down faster
// under traffic than when idle.
func markdown(args []string) error {
	fs := flag.NewFlagSet("markdown", flag.ExitOnError)
	admin := fs.String("admin", "", "balancer admin ADDR:PORT")
	service := fs.String("service", "imap", "service name")
	backend := fs.String("backend", "", "backend name")
	pid := fs.Int("pid", 0, "process of the backend")
	sig := fs.String("signal", "KILL", "KILL or STOP (hung: accepts, never greets)")
	probe := fs.String("probe", "", "service ADDR:PORT for the probe client")
	fs.Parse(args)
	state := func() string {
		resp, err := http.Get("http://" + *admin + "/healthz")
		if err != nil {
			return "error"
		}
		defer resp.Body.Close()
		var st struct {
			Services []struct {
				Name     string
				Backends []struct{ Name, State string }
			}
		}
		json.NewDecoder(resp.Body).Decode(&st)
		for _, s := range st.Services {
			for _, b := range s.Backends {
				if s.Name == *service && b.Name == *backend {
					return b.State
				}
			}
		}
		return "absent"
	}
	for deadline := time.Now().Add(time.Minute); state() != "up"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never up", *backend)
		}
	}
	time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))

	var downAt atomic.Int64 // unix nanos once seen down
	var res markResult
	var after atomic.Int64 // probes started after mark-down
	var wg sync.WaitGroup
	stopProbe := make(chan struct{})
	var mu sync.Mutex
	// Four probe clients, so that one stuck on a hung backend (before
	// mark-down) does not stop the others.
	for w := 0; *probe != "" && w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 256)
			d := net.Dialer{Timeout: 10 * time.Second}
			for i := w; ; i += 4 {
				select {
				case <-stopProbe:
					return
				default:
				}
				wasDown := downAt.Load() != 0
				if wasDown {
					after.Add(1)
				}
				d.LocalAddr = sourceIP(i)
				err := probeSession(d, *probe, buf)
				mu.Lock()
				res.Probes++
				if err != nil {
					res.ProbeFailures++
					if wasDown {
						res.FailuresAfter++
					}
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}(w)
	}
	signal := syscall.SIGKILL
	if *sig == "STOP" {
		signal = syscall.SIGSTOP
	}
	t0 := time.Now()
	if err := syscall.Kill(*pid, signal); err != nil {
		return err
	}
	for state() != "down" {
		if time.Since(t0) > time.Minute {
			return fmt.Errorf("%s not marked down after a minute", *backend)
		}
		time.Sleep(2 * time.Millisecond)
	}
	res.MarkDownMS = float64(time.Since(t0).Microseconds()) / 1000
	downAt.Store(time.Now().UnixNano())
	// At least 200 probes after mark-down (or 20 s).
	for t1 := time.Now(); *probe != "" && after.Load() < 200 && time.Since(t1) < 20*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	close(stopProbe)
	wg.Wait()
	res.Probe = *probe != ""
	res.Signal = *sig
	return json.NewEncoder(os.Stdout).Encode(res)
}

func probeSession(d net.Dialer, target string, buf []byte) error {
	c, err := d.Dial("tcp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "* OK") {
		return fmt.Errorf("greeting %q", buf[:n])
	}
	return nil
}

// hold opens n sessions through target, each past its greeting, prints
// one line once they are all open and keeps them until stdin closes.
func hold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	target := fs.String("target", "", "ADDR:PORT")
	n := fs.Int("n", 1000, "sessions")
	fs.Parse(args)
	conns := make([]net.Conn, 0, *n)
	buf := make([]byte, 256)
	for i := 0; i < *n; i++ {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: sourceIP(i)}
		c, err := d.Dial("tcp", *target)
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(buf); err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	fmt.Printf("{\"open\": %d}\n", len(conns))
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}
