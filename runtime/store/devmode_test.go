package store

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mailfleetd builds the binary once per test run.
func mailfleetd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailfleetd-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mailfleetd")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/mailfleet/mailfleet/cmd/mailfleetd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type devInstance struct {
	cmd  *exec.Cmd
	info map[string]string
	done chan error
}

func startDev(t *testing.T, dir string) *devInstance {
	t.Helper()
	cmd := exec.Command(mailfleetd(t), "store", "-dev", "-data", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devInstance{cmd: cmd, done: make(chan error, 1)}
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("no JSON line from -dev: %v", err)
	}
	if err := json.Unmarshal([]byte(line), &d.info); err != nil {
		cmd.Process.Kill()
		t.Fatalf("bad JSON line %q: %v", line, err)
	}
	go func() {
		rest, _ := io.ReadAll(r)
		if len(rest) > 0 {
			t.Errorf("more output on stdout after the JSON line: %q", rest)
		}
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	for _, k := range []string{"smtp", "imap", "pop3", "admin", "admin_secret", "user", "password"} {
		if d.info[k] == "" {
			t.Fatalf("JSON line lacks %q: %s", k, line)
		}
	}
	return d
}

func (d *devInstance) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-d.done; err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

const pyClients = `
import imaplib, poplib, smtplib, sys, json
info = json.loads(sys.argv[1])
host, user, pw = "127.0.0.1", info["user"], info["password"]
def port(k): return int(info[k].rsplit(":", 1)[1])

s = smtplib.SMTP(host, port("smtp"), timeout=10)
for i in range(3):
    s.sendmail("sender@remote.test", [user], ("Subject: py %d\r\n\r\npython message %d\r\n" % (i, i)).encode())
try:
    s.sendmail("sender@remote.test", ["nobody@mailfleet.test"], b"Subject: x\r\n\r\nx\r\n")
    raise SystemExit("unknown recipient accepted")
except smtplib.SMTPRecipientsRefused:
    pass
s.quit()

m = imaplib.IMAP4(host, port("imap"), timeout=10)
m.login(user, pw)
typ, data = m.list()
assert typ == "OK" and any(b"Sent" in d for d in data), data
typ, data = m.select("INBOX")
n = int(data[0])
assert n == 4, data  # curl's message and three from smtplib
typ, data = m.search(None, 'SUBJECT "py 1"')
seq = data[0].split()[0]
typ, data = m.fetch(seq, "(BODY.PEEK[])")
assert b"python message 1" in data[0][1], data
m.store(seq, "+FLAGS", "(\\Flagged)")
typ, data = m.search(None, "FLAGGED")
assert data[0] == seq, data
typ, data = m.create("Kept")
assert typ == "OK", data
typ, data = m.copy(seq, "Kept")
assert typ == "OK", data
typ, data = m.uid("SEARCH", None, 'SUBJECT "py 2"')
typ, data = m.uid("MOVE", data[0].decode(), "Kept")
assert typ == "OK", data
m.store("1", "+FLAGS", "(\\Deleted)")
typ, data = m.expunge()
assert typ == "OK", data
typ, data = m.status("Kept", "(MESSAGES)")
assert b"MESSAGES 2" in data[0], data
typ, data = m.create("../../escape")
assert typ == "NO", data
m.logout()

p = poplib.POP3(host, port("pop3"), timeout=10)
p.user(user); p.pass_(pw)
count, _ = p.stat()
assert count == 2, count
resp, lines, _ = p.retr(1)
assert any(b"python message" in l for l in lines), lines
p.dele(1)
p.quit()
p = poplib.POP3(host, port("pop3"), timeout=10)
p.user(user); p.pass_(pw)
assert p.stat()[0] == 1
p.quit()
print("OK")
`

func TestDevModeRealClients(t *testing.T) {
	testutil.Long(t)
	dir := t.TempDir()
	d := startDev(t, dir)
	info := d.info
	user, pass := info["user"], info["password"]

	// curl sends over SMTP and reads over IMAP and POP3.
	cmd := exec.Command("curl", "-sS", "--max-time", "20", "smtp://"+info["smtp"], "--mail-from", "a@remote.test", "--mail-rcpt", user, "-T", "-")
	cmd.Stdin = strings.NewReader("Subject: via curl\r\n\r\ncurl was here\r\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl smtp: %v\n%s", err, out)
	}
	if out := run(t, "curl", "-sS", "--max-time", "20", "-u", user+":"+pass, "imap://"+info["imap"]+"/INBOX;UID=1"); !strings.Contains(out, "curl was here") {
		t.Fatalf("curl imap: %q", out)
	}
	if out := run(t, "curl", "-sS", "--max-time", "20", "-u", user+":"+pass, "pop3://"+info["pop3"]+"/1"); !strings.Contains(out, "curl was here") {
		t.Fatalf("curl pop3: %q", out)
	}
	b, _ := json.Marshal(info)
	if out := run(t, "python3", "-c", pyClients, string(b)); strings.TrimSpace(out) != "OK" {
		t.Fatalf("python clients: %s", out)
	}

	// The admin API needs the secret.
	resp, err := http.Get("http://" + info["admin"] + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status without secret: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+info["admin"]+"/v1/accounts", nil)
	req.Header.Set("Authorization", "Bearer "+info["admin_secret"])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var accts []struct {
		Address string        `json:"address"`
		Usage   maildir.Usage `json:"usage"`
	}
	json.NewDecoder(resp.Body).Decode(&accts)
	resp.Body.Close()
	if len(accts) != 1 || accts[0].Address != user || accts[0].Usage.Messages != 3 {
		t.Fatalf("accounts: %+v", accts)
	}

	// Metrics count the deliveries (curl's and smtplib's three).
	resp, err = http.Get("http://" + info["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), `mailfleet_store_deliveries_total{instance="dev",result="ok"} 4`) {
		t.Fatalf("metrics:\n%s", mb)
	}

	// Moving an account: export is refused until it is marked moving; then
	// deliveries get 451 and logins a temporary refusal.
	admin := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, "http://"+info["admin"]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+info["admin_secret"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := admin("GET", "/v1/accounts/"+user+"/export", ""); code != http.StatusConflict {
		t.Fatalf("export without moving: %d", code)
	}
	if code, b := admin("PUT", "/v1/accounts/"+user+"/moving", `{"moving":true}`); code != 200 {
		t.Fatalf("moving: %d %s", code, b)
	}
	c, err := gosmtp.Dial(info["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	c.Hello("test")
	c.Mail("a@remote.test", nil)
	if err := c.Rcpt(user, nil); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("RCPT for a moving account: %v", err)
	}
	c.Close()
	if out, err := exec.Command("curl", "-sS", "--max-time", "20", "-u", user+":"+pass, "imap://"+info["imap"]+"/INBOX;UID=1").CombinedOutput(); err == nil {
		t.Fatalf("IMAP login for a moving account succeeded: %s", out)
	}
	code, tarball := admin("GET", "/v1/accounts/"+user+"/export", "")
	if code != 200 || len(tarball) < 1024 {
		t.Fatalf("export: %d, %d bytes", code, len(tarball))
	}
	if code, b := admin("PUT", "/v1/accounts/"+user+"/import", string(tarball)); code != http.StatusConflict {
		t.Fatalf("import over an account with mail: %d %s", code, b)
	}
	if code, b := admin("PUT", "/v1/accounts/copy@mailfleet.test/import", string(tarball)); code != 200 || !strings.Contains(string(b), `"messages":3`) {
		t.Fatalf("import as a new account: %d %s", code, b)
	}
	admin("PUT", "/v1/accounts/"+user+"/moving", `{"moving":false}`)

	// Credentials are 0600 and stable across a restart; the mail stays.
	for _, f := range []string{"credentials.json", "passwd", "admin-secret"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	d.stop(t)
	d2 := startDev(t, dir)
	if d2.info["user"] != user || d2.info["password"] != pass || d2.info["admin_secret"] != info["admin_secret"] {
		t.Fatalf("credentials changed across restart: %v vs %v", d2.info, info)
	}
	if out := run(t, "curl", "-sS", "--max-time", "20", "-u", user+":"+pass, "pop3://"+d2.info["pop3"]+"/"); len(strings.Split(strings.TrimSpace(out), "\n")) != 1 {
		t.Fatalf("after restart, POP3 LIST = %q", out)
	}
	d2.stop(t)
}

// TestDevModeKillDurability sends messages one after another while the
// process is SIGKILLed at random moments, 20 times, restarting it on the
// same directory: every message that got a 250 is present exactly once and
// intact, and nothing else is.
func TestDevModeKillDurability(t *testing.T) {
	testutil.Long(t)
	dir := t.TempDir()
	acked := map[string]bool{}
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	body := func(id string) string {
		return "Message-Id: <" + id + ">\r\nSubject: durability\r\n\r\n" + strings.Repeat("durable line "+id+"\r\n", 200) + "end\r\n"
	}
	var user string
	for round := 0; round < 20; round++ {
		d := startDev(t, dir)
		user = d.info["user"]
		stop := make(chan struct{})
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("r%d.m%d@test", round, i)
				c, err := gosmtp.Dial(d.info["smtp"])
				if err != nil {
					return
				}
				err = c.SendMail("a@remote.test", []string{user}, strings.NewReader(body(id)))
				c.Close()
				if err != nil {
					return // killed mid-transaction: no 250, no promise
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(5+rng.Intn(150)) * time.Millisecond)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		close(stop)
		<-sent

		// Check the storage directly while nothing runs.
		st, err := maildir.Open(filepath.Join(dir, "storage"), "check")
		if err != nil {
			t.Fatal(err)
		}
		a, err := st.Account(user)
		if err != nil {
			t.Fatal(err)
		}
		in := a.Inbox()
		msgs, err := in.Messages()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, m := range msgs {
			f, _, err := in.Open(m.UID)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(f)
			f.Close()
			s := string(b)
			i := strings.Index(s, "Message-Id: <")
			if i < 0 {
				t.Fatalf("round %d: message without Message-Id: %q", round, s)
			}
			id := s[i+len("Message-Id: <") : i+strings.Index(s[i:], ">")]
			if !strings.HasSuffix(s, body(id)) {
				t.Fatalf("round %d: message %s is not intact", round, id)
			}
			seen[id]++
		}
		mu.Lock()
		for id := range acked {
			if seen[id] != 1 {
				t.Fatalf("round %d: acknowledged message %s present %d times", round, id, seen[id])
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("round %d: message %s present %d times", round, id, n)
			}
		}
		mu.Unlock()
	}
	t.Logf("%d messages acknowledged over 20 kills", len(acked))
	if len(acked) == 0 {
		t.Fatal("no message was acknowledged; the test proved nothing")
	}
}
