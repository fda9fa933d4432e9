// Command store is the load generator of bench/store/run.sh: the same
// SMTP/LMTP and IMAP clients drive mailfleet's store, Postfix and Dovecot,
// so that their figures can be compared. A measurement runs -runs times
// (after an untimed warm-up unless -warmup=false); report merges the runs
// of each target and test and gives their median.
//
//	go run ./bench/store smtp -addr 127.0.0.1:2525 -to user@bench.test -senders 16 -messages 2000 -runs 5
//	go run ./bench/store imap-fill -addr 127.0.0.1:1143 -user user@bench.test -pass pw -messages 1000
//	go run ./bench/store imap-sessions -addr 127.0.0.1:1143 -user user@bench.test -pass pw -clients 1 -sessions 300
//	go run ./bench/store imap-fetch -addr 127.0.0.1:1143 -user user@bench.test -pass pw -messages 1000
//	go run ./bench/store report results.jsonl
//
// Every result is one JSON line on stdout (append them to a file for
// report). Traffic goes only to the addresses given, which run.sh keeps on
// 127.0.0.1.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
)

// Result is one measurement: the median of Runs, in Unit.
type Result struct {
	Target string    `json:"target"` // mailfleet, postfix, dovecot
	Test   string    `json:"test"`
	Unit   string    `json:"unit"`
	Median float64   `json:"median"`
	Runs   []float64 `json:"runs"`
	Note   string    `json:"note,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: store smtp|imap-fill|imap-sessions|imap-fetch|wait-port|free-ports|report ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "smtp":
		err = runSMTP(os.Args[2:])
	case "imap-fill":
		err = runFill(os.Args[2:])
	case "imap-sessions":
		err = runSessions(os.Args[2:])
	case "imap-fetch":
		err = runFetch(os.Args[2:])
	case "wait-port":
		err = waitPort(os.Args[2:])
	case "free-ports":
		err = freePorts(os.Args[2:])
	case "report":
		err = report(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/store %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func emit(r Result) {
	if len(r.Runs) == 0 {
		return // a warm-up only
	}
	r.Median = median(r.Runs)
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

func median(runs []float64) float64 {
	sorted := append([]float64(nil), runs...)
	sort.Float64s(sorted)
	if len(sorted)%2 == 0 {
		return (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return sorted[len(sorted)/2]
}

// message10K is a 10 KB message (headers and 100 lines of 100 bytes).
func message10K(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: user@bench.test\r\nSubject: bench message %d\r\nMessage-Id: <%d.%d@bench>\r\n\r\n", i, time.Now().UnixNano(), i)
	for b.Len() < 10*1024-100 {
		b.WriteString(strings.Repeat("x", 98) + "\r\n")
	}
	return b.String()
}

// --- SMTP / LMTP ------------------------------------------------------------

func runSMTP(args []string) error {
	fs := flag.NewFlagSet("smtp", flag.ExitOnError)
	addr := fs.String("addr", "", "SMTP or LMTP `host:port`")
	lmtp := fs.Bool("lmtp", false, "speak LMTP")
	to := fs.String("to", "", "recipient")
	senders := fs.Int("senders", 1, "concurrent connections")
	n := fs.Int("messages", 500, "messages per run")
	runs := fs.Int("runs", 5, "timed runs")
	warmup := fs.Bool("warmup", true, "one untimed run first")
	maildir := fs.String("maildir", "", "wait after each run until this maildir holds every message sent so far (peers that deliver after the reply)")
	target := fs.String("target", "", "name in the result")
	test := fs.String("test", "", "name in the result")
	fs.Parse(args)
	msg := message10K(0)
	sent := 0
	if *maildir != "" {
		sent = countMaildir(*maildir)
	}
	var rates, delivered []float64
	for r := 0; r <= *runs; r++ {
		if r == 0 && !*warmup {
			continue
		}
		start := time.Now()
		if err := sendAll(*addr, *lmtp, *to, msg, *senders, *n); err != nil {
			return err
		}
		took := time.Since(start)
		sent += *n
		if *maildir != "" {
			if err := waitMaildir(*maildir, sent); err != nil {
				return err
			}
		}
		if r == 0 {
			continue // warm-up
		}
		rates = append(rates, float64(*n)/took.Seconds())
		delivered = append(delivered, float64(*n)/time.Since(start).Seconds())
	}
	emit(Result{Target: *target, Test: *test, Unit: "msgs/s", Runs: rates})
	if *maildir != "" {
		emit(Result{Target: *target, Test: *test + " (in maildir)", Unit: "msgs/s", Runs: delivered})
	}
	return nil
}

func sendAll(addr string, lmtp bool, to, msg string, senders, n int) error {
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *gosmtp.Client
			var err error
			if lmtp {
				var conn net.Conn
				if conn, err = net.Dial("tcp", addr); err == nil {
					c = gosmtp.NewClientLMTP(conn)
					err = c.Hello("bench.client")
				}
			} else if c, err = gosmtp.Dial(addr); err == nil {
				err = c.Hello("bench.client")
			}
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for range jobs {
				if err := c.SendMail("sender@remote.test", []string{to}, strings.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func countMaildir(dir string) int {
	count := 0
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		count += len(ents)
	}
	return count
}

// waitMaildir waits until dir's new/ and cur/ hold at least n messages.
func waitMaildir(dir string, n int) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		count := countMaildir(dir)
		if count >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s holds %d messages of %d after 10 minutes", dir, count, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- IMAP -------------------------------------------------------------------

type imapFlags struct {
	addr, user, pass, target, test *string
	runs                           *int
	warmup                         *bool
}

func newIMAPFlags(fs *flag.FlagSet) imapFlags {
	return imapFlags{addr: fs.String("addr", "", "IMAP `host:port`"), user: fs.String("user", "", "login"),
		pass: fs.String("pass", "", "password"), runs: fs.Int("runs", 5, "timed runs"), warmup: fs.Bool("warmup", true, "one untimed run first"),
		target: fs.String("target", "", "name in the result"), test: fs.String("test", "", "name in the result")}
}

func login(f imapFlags) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(*f.addr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(*f.user, *f.pass).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// runFill appends 10 KB messages to INBOX until it holds -messages.
func runFill(args []string) error {
	fs := flag.NewFlagSet("imap-fill", flag.ExitOnError)
	f := newIMAPFlags(fs)
	n := fs.Int("messages", 1000, "messages INBOX should hold")
	fs.Parse(args)
	c, err := login(f)
	if err != nil {
		return err
	}
	defer c.Close()
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return err
	}
	for i := int(sel.NumMessages); i < *n; i++ {
		msg := message10K(i)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		io.WriteString(cmd, msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			return err
		}
	}
	return c.Logout().Wait()
}

// runSessions: -sessions sessions per run over -clients connections at a
// time, each: connect, LOGIN, SELECT INBOX, FETCH 1:10 (FLAGS BODY.PEEK[]),
// LOGOUT.
func runSessions(args []string) error {
	fs := flag.NewFlagSet("imap-sessions", flag.ExitOnError)
	f := newIMAPFlags(fs)
	clients := fs.Int("clients", 1, "concurrent sessions")
	n := fs.Int("sessions", 300, "sessions per run")
	fs.Parse(args)
	var rates []float64
	for r := 0; r <= *f.runs; r++ {
		if r == 0 && !*f.warmup {
			continue
		}
		jobs := make(chan struct{}, *n)
		for i := 0; i < *n; i++ {
			jobs <- struct{}{}
		}
		close(jobs)
		errs := make(chan error, *clients)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < *clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					if err := session(f); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		if r > 0 {
			rates = append(rates, float64(*n)/took.Seconds())
		}
	}
	emit(Result{Target: *f.target, Test: *f.test, Unit: "sessions/s", Runs: rates})
	return nil
}

func session(f imapFlags) error {
	c, err := login(f)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return err
	}
	bs := &goimap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(goimap.SeqSetNum(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), &goimap.FetchOptions{Flags: true, BodySection: []*goimap.FetchItemBodySection{bs}}).Collect()
	if err != nil {
		return err
	}
	if len(msgs) != 10 || len(msgs[9].FindBodySection(bs)) < 10000 {
		return fmt.Errorf("fetched %d messages", len(msgs))
	}
	return c.Logout().Wait()
}

// runFetch: in one selected session, FETCH 1:* of -messages messages,
// -what "headers" (FLAGS UID RFC822.SIZE BODY.PEEK[HEADER]) or "full"
// (FLAGS UID BODY.PEEK[]); the rate is messages per second.
func runFetch(args []string) error {
	fs := flag.NewFlagSet("imap-fetch", flag.ExitOnError)
	f := newIMAPFlags(fs)
	n := fs.Int("messages", 1000, "messages expected in INBOX")
	what := fs.String("what", "headers", "headers or full")
	fs.Parse(args)
	c, err := login(f)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return err
	}
	opts := &goimap.FetchOptions{Flags: true, UID: true, RFC822Size: true,
		BodySection: []*goimap.FetchItemBodySection{{Specifier: goimap.PartSpecifierHeader, Peek: true}}}
	if *what == "full" {
		opts = &goimap.FetchOptions{Flags: true, UID: true, BodySection: []*goimap.FetchItemBodySection{{Peek: true}}}
	}
	var rates []float64
	for r := 0; r <= *f.runs; r++ {
		if r == 0 && !*f.warmup {
			continue
		}
		start := time.Now()
		msgs, err := c.Fetch(goimap.SeqSet{goimap.SeqRange{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil {
			return err
		}
		took := time.Since(start)
		if len(msgs) != *n {
			return fmt.Errorf("fetched %d messages, want %d", len(msgs), *n)
		}
		if r > 0 {
			rates = append(rates, float64(*n)/took.Seconds())
		}
	}
	emit(Result{Target: *f.target, Test: *f.test, Unit: "msgs/s", Runs: rates})
	return c.Logout().Wait()
}

// --- helpers for run.sh -----------------------------------------------------

// waitPort waits until host:port accepts connections and sends a greeting
// line.
func waitPort(args []string) error {
	for _, addr := range args {
		deadline := time.Now().Add(time.Minute)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = bufio.NewReader(c).ReadString('\n')
				c.Close()
				if err == nil {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %v", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// freePorts prints N ports of 127.0.0.1 that are free now.
func freePorts(args []string) error {
	n := 1
	if len(args) > 0 {
		fmt.Sscan(args[0], &n)
	}
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return nil
}

// report prints the results of a file as a Markdown table, with the ratio
// of mailfleet to the peer measured by the same test.
func report(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: report results.jsonl")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var results []Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err == nil && r.Test != "" {
			results = append(results, r)
		}
	}
	byTest := map[string]map[string]Result{}
	var tests []string
	for _, r := range results {
		if byTest[r.Test] == nil {
			byTest[r.Test] = map[string]Result{}
			tests = append(tests, r.Test)
		}
		// Rounds of one run each add up to one result per target.
		merged := byTest[r.Test][r.Target]
		merged.Target, merged.Test, merged.Unit = r.Target, r.Test, r.Unit
		merged.Runs = append(merged.Runs, r.Runs...)
		merged.Median = median(merged.Runs)
		byTest[r.Test][r.Target] = merged
	}
	fmt.Println("| test | unit | mailfleet | peer | peer figure | mailfleet / peer | mailfleet runs | peer runs |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, t := range tests {
		ours, ok := byTest[t]["mailfleet"]
		peers := []string{}
		for target := range byTest[t] {
			if target != "mailfleet" {
				peers = append(peers, target)
			}
		}
		sort.Strings(peers)
		if len(peers) == 0 {
			peers = []string{""}
		}
		for _, p := range peers {
			peer, hasPeer := byTest[t][p]
			row := []string{t, firstNonEmpty(ours.Unit, peer.Unit), "–", p, "–", "–", runs(ours.Runs), runs(peer.Runs)}
			if ok {
				row[2] = fmt.Sprintf("%.0f", ours.Median)
			}
			if hasPeer {
				row[4] = fmt.Sprintf("%.0f", peer.Median)
			}
			if ok && hasPeer && peer.Median > 0 {
				row[5] = fmt.Sprintf("%.2f", ours.Median/peer.Median)
			}
			fmt.Println("| " + strings.Join(row, " | ") + " |")
		}
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func runs(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(s, " ")
}
