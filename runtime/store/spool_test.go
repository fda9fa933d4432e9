package store

import (
	"bufio"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/testutil"
)

// procKB is a /proc/PID/status field in kB (VmRSS, VmHWM).
func procKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestStalledTransfersStayOnDisk: 50 clients each send 45 MB of DATA and
// never end it (the attack of the hardening review, which took a store
// from 147 MB to 1.97 GB). The messages go to the spool as they arrive,
// so the store's peak RSS stays under 200 MB, and a normal client is
// served meanwhile.
func TestStalledTransfersStayOnDisk(t *testing.T) {
	testutil.Long(t)
	d := startDev(t, t.TempDir())
	pid := d.cmd.Process.Pid
	const clients, size = 50, 45 << 20
	line := strings.Repeat("x", 998) + "\r\n"
	chunk := []byte(strings.Repeat(line, 64)) // 64 kB
	var wg sync.WaitGroup
	conns := make(chan net.Conn, clients)
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", d.info["smtp"])
			if err != nil {
				errs <- err
				return
			}
			conns <- c
			br := bufio.NewReader(c)
			expect := func(cmd, code string) error {
				if cmd != "" {
					fmt.Fprintf(c, "%s\r\n", cmd)
				}
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return fmt.Errorf("%s: %w", cmd, err)
					}
					if !strings.HasPrefix(l, code) {
						return fmt.Errorf("%s: %q, want %s", cmd, l, code)
					}
					if len(l) < 4 || l[3] != '-' {
						return nil
					}
				}
			}
			for _, step := range [][2]string{{"", "220"}, {"EHLO attacker.example", "250"}, {"MAIL FROM:<a@attacker.example>", "250"},
				{"RCPT TO:<" + d.info["user"] + ">", "250"}, {"DATA", "354"}} {
				if err := expect(step[0], step[1]); err != nil {
					errs <- err
					return
				}
			}
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					errs <- err
					return
				}
			}
			// and never the final dot
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a stalled client: %v", err)
	}
	defer func() {
		close(conns)
		for c := range conns {
			c.Close()
		}
	}()
	// A normal client, meanwhile.
	msg := "From: b@example.org\r\nTo: " + d.info["user"] + "\r\nSubject: still served\r\n\r\nhello\r\n"
	testutil.Eventually(t, time.Minute, "a normal delivery beside the stalled ones", func() error {
		return smtp.SendMail(d.info["smtp"], nil, "b@example.org", []string{d.info["user"]}, []byte(msg))
	})
	rss, peak := procKB(t, pid, "VmRSS"), procKB(t, pid, "VmHWM")
	t.Logf("store RSS %d MB, peak %d MB after %d stalled transfers of %d MB", rss>>10, peak>>10, clients, size>>20)
	if peak > 200<<10 {
		t.Errorf("the store's peak RSS is %d MB with %d stalled transfers of %d MB, want under 200 MB", peak>>10, clients, size>>20)
	}
}
