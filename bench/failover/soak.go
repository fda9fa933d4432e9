package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// runSoak keeps the cluster under a mail load (the prober and the sender)
// while a command (by default the whole test suite) runs again and again
// beside it on the same machine, for -duration; then it checks that
// nothing moved and nothing was fenced, and that every acknowledged
// message is in the mailbox once. This is what shows the short corosync
// timings safe on a busy machine.
func runSoak(args []string) {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	b := &bench{log: os.Stderr, send: true}
	ready := b.commonFlags(fs)
	duration := fs.Duration("duration", 10*time.Minute, "how long to soak")
	load := fs.String("load", "go test -count=1 ./...", "the command run again and again beside the lab")
	fs.Parse(args)
	ready()
	var err error
	where := map[string]string{}
	for _, r := range []string{"AXIGEN1", "AXIGEN2", b.group} {
		if where[r], err = b.locate(r); err != nil {
			fatal(err)
		}
	}
	soakStart := time.Now()
	prefix := fmt.Sprintf("soak-%d", time.Now().UnixNano())
	probe, err := b.start("probe", "-addr", b.imap, "-user", b.account, "-passfile", b.pass, "-every", "200ms")
	if err != nil {
		fatal(err)
	}
	sender, err := b.start("sender", "-addr", b.smtp, "-to", b.mailbox, "-prefix", prefix)
	if err != nil {
		fatal(err)
	}
	// The VRRP pair's adverts are 200 ms apart: a balancer starved for
	// 0.7 s would hand its VIPs over for nothing. Who holds them is
	// sampled every second; any change counts.
	holder, err := b.vipHolder()
	if err != nil {
		fatal(err)
	}
	vipMoves := 0
	stopVIP := make(chan struct{})
	vipDone := make(chan struct{})
	go func() {
		defer close(vipDone)
		last := holder
		for {
			select {
			case <-stopVIP:
				return
			case <-time.After(time.Second):
			}
			now, err := b.vipHolder()
			if err != nil {
				now = "none"
			}
			if now != last {
				b.logf("the balancer VIPs moved from %s to %s", last, now)
				vipMoves++
				last = now
			}
		}
	}()
	start := time.Now()
	rounds, failed := 0, 0
	for time.Since(start) < *duration {
		cmd := exec.Command("sh", "-c", *load)
		out, err := cmd.CombinedOutput()
		rounds++
		if err != nil {
			failed++
			b.logf("load round %d failed: %v\n%s", rounds, err, tail(string(out), 15))
		} else {
			b.logf("load round %d done (%v)", rounds, time.Since(start).Round(time.Second))
		}
	}
	close(stopVIP)
	<-vipDone
	probeEvents, sendEvents := parseEvents(probe.stop()), parseEvents(sender.stop())
	fails := 0
	for _, e := range probeEvents {
		if e.kind == "fail" {
			fails++
		}
	}
	moved := 0
	for r, n := range where {
		if now, err := b.locate(r); err != nil || now != n {
			b.logf("%s ran on %s, now on %q (%v)", r, n, now, err)
			moved++
		}
	}
	fenced := b.fencesSince(soakStart)
	acked := map[string]bool{}
	for _, e := range sendEvents {
		if e.kind == "ack" {
			acked[strings.Fields(e.rest)[0]] = true
		}
	}
	out, err := b.on("workstation", b.self, "count", "-ca", b.ca, "-addr", b.imap, "-user", b.mailbox, "-passfile", b.pass, "-prefix", prefix)
	if err != nil {
		fatal(err)
	}
	counts := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			var n int
			fmt.Sscan(f[1], &n)
			counts[f[0]] = n
		}
	}
	lost, dup := 0, 0
	for id := range acked {
		if counts[id] == 0 {
			lost++
		}
	}
	for _, n := range counts {
		if n > 1 {
			dup += n - 1
		}
	}
	fmt.Printf("soak %v: %d load rounds (%d failed), %d logins (%d failed), %d messages acknowledged, %d lost, %d duplicated, %d fencing, %d resources moved, %d balancer VIP moves\n",
		time.Since(start).Round(time.Second), rounds, failed, len(probeEvents), fails, len(acked), lost, dup, fenced, moved, vipMoves)
	if fenced != 0 || moved != 0 || lost != 0 || dup != 0 || vipMoves != 0 {
		os.Exit(1)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
