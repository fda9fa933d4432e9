// Package testpeers starts the real programs a store talks to, for tests:
// BIND's named serving a generated zone, and Postfix's smtp-sink as a
// receiving MTA, each on an address of its own in 127.0.0.0/8 so that they
// can use the standard ports 53 and 25 (the tests run as root, as CI does)
// beside anything else on the machine. Processes are stopped by PID when
// the test ends. It must not import spec, render or remote.
package testpeers

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Addr returns an address of 127.0.0.0/8, away from 127.0.0.1, on which
// nothing listens on port.
func Addr(t testing.TB, port int) netip.Addr {
	t.Helper()
	for i := 0; i < 100; i++ {
		var b [3]byte
		rand.Read(b[:])
		a := netip.AddrFrom4([4]byte{127, 100 + b[0]%100, b[1], 1 + b[2]%250})
		ap := netip.AddrPortFrom(a, uint16(port)).String()
		l, err := net.Listen("tcp", ap)
		if err != nil {
			continue
		}
		l.Close()
		if pc, err := net.ListenPacket("udp", ap); err == nil {
			pc.Close()
			return a
		}
	}
	t.Fatalf("testpeers: no free loopback address for port %d (binding port %d needs root)", port, port)
	return netip.Addr{}
}

// tool finds a program that the test needs; a missing one fails the test
// (scripts/deps.sh installs it).
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("testpeers: %s is required (Debian package %s; scripts/deps.sh installs it)", name, pkg)
	return ""
}

// stopOnCleanup ends the process by its PID when the test ends.
func stopOnCleanup(t testing.TB, cmd *exec.Cmd, done <-chan struct{}) {
	t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		cmd.Process.Kill()
		<-done
	})
}

// Zone is a DNS zone: its origin ("example.test") and records, one per
// line in zone-file syntax relative to the origin ("@ MX 10 mx", "mx A
// 127.1.2.3"). SOA and NS records are added.
type Zone struct {
	Origin  string
	Records []string
}

// Named starts BIND's named on addr:53, authoritative for the zones, with
// its config, zone files, pid file and session key in a temporary
// directory. It returns once named says it is running. addr is added to
// the loopback interface until the test ends.
func Named(t testing.TB, addr netip.Addr, zones ...Zone) {
	t.Helper()
	named := tool(t, "named", "bind9")
	// named listens only on addresses of the machine's interfaces (it
	// scans them), so addr joins lo for the test's duration.
	ip := tool(t, "ip", "iproute2")
	prefix := netip.PrefixFrom(addr, 32).String()
	if out, err := exec.Command(ip, "addr", "add", prefix, "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("testpeers: ip addr add %s dev lo: %v\n%s", prefix, err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "addr", "del", prefix, "dev", "lo").Run() })
	dir := t.TempDir()
	var conf strings.Builder
	fmt.Fprintf(&conf, `options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	managed-keys-directory %q;
	listen-on port 53 { %s; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	allow-query { any; };
	notify no;
};
controls { };
`, dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"), dir, addr)
	sort.Slice(zones, func(i, j int) bool { return zones[i].Origin < zones[j].Origin })
	for _, z := range zones {
		file := filepath.Join(dir, z.Origin+".zone")
		body := fmt.Sprintf("$ORIGIN %s.\n$TTL 60\n@ IN SOA ns.%s. hostmaster.%s. 1 60 60 600 60\n@ IN NS ns.%s.\nns IN A %s\n%s\n",
			z.Origin, z.Origin, z.Origin, z.Origin, addr, strings.Join(z.Records, "\n"))
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "zone %q { type primary; file %q; };\n", z.Origin, file)
	}
	confPath := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(named, "-c", confPath, "-u", "root", "-g", "-4")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testpeers: named: %v", err)
	}
	done := make(chan struct{})
	running := make(chan struct{})
	var log strings.Builder
	go func() {
		// named -g logs to stderr; "running" follows the loading of every zone.
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !said && strings.HasSuffix(sc.Text(), " running") {
				said = true
				close(running)
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(done)
	}()
	stopOnCleanup(t, cmd, done)
	select {
	case <-running:
	case <-done:
		t.Fatalf("testpeers: named exited before running:\n%s", log.String())
	case <-time.After(time.Minute):
		t.Fatal("testpeers: named did not say it was running within a minute")
	}
}

// Sink is a running smtp-sink.
type Sink struct {
	// Dir receives one file per accepted message (smtp-sink -d).
	Dir string
}

// SMTPSink starts Postfix's smtp-sink on addr:25 with the given extra
// flags (for example "-r", "RCPT" to answer RCPT with a 4xx), writing each
// accepted message to a file in the returned Sink's Dir. It returns once
// the port accepts connections.
func SMTPSink(t testing.TB, addr netip.Addr, flags ...string) *Sink {
	t.Helper()
	bin := tool(t, "smtp-sink", "postfix")
	s := &Sink{Dir: t.TempDir()}
	ap := netip.AddrPortFrom(addr, 25).String()
	args := append([]string{"-u", "root", "-h", "sink.test", "-d", filepath.Join(s.Dir, "msg.")}, flags...)
	cmd := exec.Command(bin, append(args, ap, "100")...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testpeers: smtp-sink: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopOnCleanup(t, cmd, done)
	// smtp-sink says nothing once listening: wait until it answers.
	for i := 0; ; i++ {
		select {
		case <-done:
			t.Fatalf("testpeers: smtp-sink exited: %s", out.String())
		default:
		}
		c, err := net.Dial("tcp", ap)
		if err == nil {
			greeting, _ := bufio.NewReader(c).ReadString('\n')
			fmt.Fprint(c, "QUIT\r\n")
			c.Close()
			if strings.HasPrefix(greeting, "220") {
				return s
			}
		}
		if i == 600 {
			t.Fatalf("testpeers: smtp-sink on %s did not answer: %v", ap, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Messages returns the messages the sink accepted so far, each with the
// X-Client-Addr, X-Mail-Args and X-Rcpt-Args lines smtp-sink puts first.
func (s *Sink) Messages(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}
