package store

import (
	"bufio"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/internal/testutil"
)

// scrape reads /metrics, checks that it is well-formed Prometheus text
// (every sample belongs to a family declared by # TYPE, summaries and
// histograms included; histogram buckets
// are cumulative and end with +Inf = _count) and returns the samples by
// series ("name{labels}").
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("metrics content type %q", ct)
	}
	out := map[string]float64{}
	types := map[string]string{}
	lastBucket := map[string]float64{} // series without le → last cumulative count
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		series := line[:i]
		name, lbls, _ := strings.Cut(series, "{")
		family := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && (types[base] == "histogram" || types[base] == "summary") {
				family = base
			}
		}
		if types[family] == "" {
			t.Fatalf("sample %q has no # TYPE", line)
		}
		if strings.HasSuffix(name, "_bucket") {
			key := name + "{" + strings.Join(withoutLe(lbls), ",")
			if v < lastBucket[key] {
				t.Fatalf("histogram buckets decrease at %q", line)
			}
			lastBucket[key] = v
		}
		if _, dup := out[series]; dup {
			t.Fatalf("series %s written twice", series)
		}
		out[series] = v
	}
	for key, v := range lastBucket {
		count := strings.Replace(key, "_bucket{", "_count{", 1) + "}"
		if out[count] != v {
			t.Fatalf("%s = %v, but the +Inf bucket holds %v", count, out[count], v)
		}
	}
	return out
}

func withoutLe(lbls string) []string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSuffix(lbls, "}"), ",") {
		if !strings.HasPrefix(l, "le=") {
			keep = append(keep, l)
		}
	}
	return keep
}

// pop3Login opens a POP3 session, tries USER/PASS and quits.
func pop3Login(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ReadLine()
	c.PrintfLine("USER %s", user)
	c.ReadLine()
	c.PrintfLine("PASS %s", pass)
	reply, _ := c.ReadLine()
	c.PrintfLine("QUIT")
	c.ReadLine()
	return reply
}

// TestMetricsCountSessionsAndFailures drives real SMTP, IMAP and POP3
// sessions and admin requests, then scrapes /metrics.
func TestMetricsCountSessionsAndFailures(t *testing.T) {
	in := startInstance(t, nil)
	addrs := in.Addrs()
	const user, inst = "user@example.org", `instance="ocf",`
	before := scrape(t, addrs["admin"])
	for _, series := range []string{`mailfleet_store_sessions{` + inst + `listener="imap"}`, `mailfleet_store_deliveries_total{` + inst + `result="ok"}`,
		`mailfleet_store_logins_total{` + inst + `proto="pop3",result="failed"}`, `mailfleet_store_queue_messages{instance="ocf"}`} {
		if v, ok := before[series]; !ok || v != 0 {
			t.Errorf("before any session, %s = %v (present %v), want 0", series, v, ok)
		}
	}

	// SMTP: two deliveries and an unknown recipient, in one session.
	c, err := gosmtp.Dial(addrs["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := c.SendMail("a@remote.test", []string{user}, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SendMail("a@remote.test", []string{"nobody@example.org"}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Fatal("unknown recipient accepted")
	}
	c.Quit()

	// IMAP: a good and a bad login; one session stays open while scraping.
	open, err := imapclient.DialInsecure(addrs["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := open.Login(user, "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	bad, err := imapclient.DialInsecure(addrs["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Login(user, "wrong").Wait(); err == nil {
		t.Fatal("wrong IMAP password accepted")
	}
	bad.Close()
	// POP3 likewise.
	if r := pop3Login(t, addrs["pop3"], user, "pw"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("POP3 login: %s", r)
	}
	if r := pop3Login(t, addrs["pop3"], user, "wrong"); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("POP3 wrong password: %s", r)
	}
	// A login refused because the account is moving, and an admin request
	// with a wrong secret.
	in.mu.Lock()
	in.moving[user] = true
	in.mu.Unlock()
	if r := pop3Login(t, addrs["pop3"], user, "pw"); !strings.Contains(r, "moved") {
		t.Fatalf("POP3 login to a moving account: %s", r)
	}
	in.mu.Lock()
	in.moving[user] = false
	in.mu.Unlock()
	req, _ := http.NewRequest("GET", "http://"+addrs["admin"]+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer not-the-secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong admin secret: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	m := scrape(t, addrs["admin"])
	for series, want := range map[string]float64{
		`mailfleet_store_sessions{` + inst + `listener="imap"}`:                          1,
		`mailfleet_store_sessions_total{` + inst + `listener="imap"}`:                    2,
		`mailfleet_store_sessions_total{` + inst + `listener="smtp"}`:                    1,
		`mailfleet_store_sessions_total{` + inst + `listener="pop3"}`:                    3,
		`mailfleet_store_deliveries_total{` + inst + `result="ok"}`:                      2,
		`mailfleet_store_delivery_seconds_count{instance="ocf"}`:                         2,
		`mailfleet_store_logins_total{` + inst + `proto="imap",result="ok"}`:             1,
		`mailfleet_store_logins_total{` + inst + `proto="imap",result="failed"}`:         1,
		`mailfleet_store_logins_total{` + inst + `proto="pop3",result="ok"}`:             2,
		`mailfleet_store_logins_total{` + inst + `proto="pop3",result="failed"}`:         1,
		`mailfleet_store_login_seconds_count{` + inst + `proto="imap"}`:                  2,
		`mailfleet_store_refusals_total{` + inst + `proto="smtp",reason="unknown_user"}`: 1,
		`mailfleet_store_refusals_total{` + inst + `proto="pop3",reason="moving"}`:       1,
		`mailfleet_store_refusals_total{` + inst + `proto="admin",reason="bad_secret"}`:  1,
		`mailfleet_store_queue_messages{instance="ocf"}`:                                 0,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if b := m[`mailfleet_store_delivered_bytes_total{instance="ocf"}`]; b < float64(2*len("Subject: 0\r\n\r\nbody\r\n")) {
		t.Errorf("delivered bytes %v", b)
	}
	if m[`mailfleet_store_up_seconds{instance="ocf"}`] <= 0 {
		t.Error("up_seconds not positive")
	}

	// Closed sessions leave the gauge.
	open.Logout().Wait()
	open.Close()
	testutil.Until(t, time.Minute, "the IMAP session gauge to drop", func() bool {
		return scrape(t, addrs["admin"])[`mailfleet_store_sessions{`+inst+`listener="imap"}`] == 0
	})
}
