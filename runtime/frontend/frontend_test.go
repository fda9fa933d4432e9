package frontend

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/internal/programs"
	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/storetest"
)

func frontendConfig(cl *storetest.Cluster, instances map[string]config.InstanceRoute) *config.Frontend {
	return &config.Frontend{
		FormatVersion: config.FormatVersion,
		Node:          "fe1",
		Admin:         "127.0.0.1:0",
		IMAP:          &config.Proxy{Listen: "127.0.0.1:0", AuthenticateOnProxy: true},
		POP3:          &config.Proxy{Listen: "127.0.0.1:0", AuthenticateOnProxy: true},
		SMTP:          &config.Router{Listen: "127.0.0.1:0", Routing: true},
		LDAP:          cl.Slapd.Config(),
		Instances:     instances,
		Domains:       []string{"example.org"},
		Limits: config.Limits{MaxConnections: 100, MaxPerClient: 50, PreAuthTimeout: config.Duration(time.Minute),
			IdleTimeout: config.Duration(time.Minute), FailedLoginDelay: config.Duration(10 * time.Millisecond),
			MaxMessageBytes: 1 << 20, MaxRecipients: 100},
	}
}

func startNode(t *testing.T, cfg *config.Frontend) (*Node, *storetest.Buffer) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := &storetest.Buffer{}
	n, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	n.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n, log
}

const pythonClients = `
import imaplib, json, poplib, smtplib, sys
smtp, imap, pop3 = sys.argv[1:4]
host, port = smtp.rsplit(":", 1)
out = {}
s = smtplib.SMTP(host, int(port), timeout=20)
# alice (inst1) and bob (inst2) in one transaction: bob gets 452 and
# goes in a second one, as a real MTA would send him.
refused = s.sendmail("sender@outside.test", ["alice@example.org", "bob@example.org"],
    "Subject: for alice\r\nFrom: sender@outside.test\r\n\r\nhello alice\r\n")
out["refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
s.sendmail("sender@outside.test", list(refused), "Subject: for bob\r\nFrom: sender@outside.test\r\n\r\nhello bob\r\n")
try:
    s.sendmail("sender@outside.test", ["someone@elsewhere.test"], "Subject: relay\r\n\r\nx\r\n")
    out["relay"] = "accepted"
except smtplib.SMTPRecipientsRefused as e:
    out["relay"] = e.recipients["someone@elsewhere.test"][0]
s.quit()

host, port = imap.rsplit(":", 1)
m = imaplib.IMAP4(host, int(port), timeout=20)
m.login("alice@example.org", "alice-pw")
typ, data = m.select("INBOX")
out["imap_exists"] = int(data[0])
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
out["imap_subject"] = data[0][1].decode().strip()
m.logout()
try:
    m = imaplib.IMAP4(host, int(port), timeout=20)
    m.login("alice@example.org", "wrong")
    out["imap_wrong"] = "accepted"
except imaplib.IMAP4.error as e:
    out["imap_wrong"] = str(e)

host, port = pop3.rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=20)
p.user("bob@example.org")
p.pass_("bob-pw")
out["pop3_stat"] = p.stat()[0]
out["pop3_body"] = b"\n".join(p.retr(1)[1]).decode()
p.quit()
print(json.dumps(out))
`

// TestRealClientsThroughFrontend: Python's smtplib, imaplib and poplib and
// curl against a front-end node in front of two store instances; each
// account's mail lands only in its own instance.
func TestRealClientsThroughFrontend(t *testing.T) {
	testutil.Long(t)
	programs.Require(t, "python3", "curl")
	cl := storetest.NewCluster(t, nil)
	n, log := startNode(t, frontendConfig(cl, cl.Instances))
	addrs := n.Addrs()
	script := filepath.Join(t.TempDir(), "clients.py")
	os.WriteFile(script, []byte(pythonClients), 0o600)
	out, err := exec.Command("python3", script, addrs["smtp"], addrs["imap"], addrs["pop3"]).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var res struct {
		Refused     map[string][]any `json:"refused"`
		Relay       any              `json:"relay"`
		IMAPExists  int              `json:"imap_exists"`
		IMAPSubject string           `json:"imap_subject"`
		IMAPWrong   string           `json:"imap_wrong"`
		POP3Stat    int              `json:"pop3_stat"`
		POP3Body    string           `json:"pop3_body"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r := res.Refused["bob@example.org"]; len(r) != 2 || r[0] != float64(452) || !strings.Contains(r[1].(string), "4.5.3") {
		t.Errorf("bob in alice's transaction: %v", res.Refused)
	}
	if res.Relay != float64(550) {
		t.Errorf("relay without auth: %v", res.Relay)
	}
	if res.IMAPExists != 1 || res.IMAPSubject != "Subject: for alice" || !strings.Contains(res.IMAPWrong, "AUTHENTICATIONFAILED") {
		t.Errorf("imap: %+v", res)
	}
	if res.POP3Stat != 1 || !strings.Contains(res.POP3Body, "hello bob") {
		t.Errorf("pop3: %+v", res)
	}
	if cl.Inst1.Messages("alice@example.org") != 1 || cl.Inst2.Messages("bob@example.org") != 1 ||
		cl.Inst2.Messages("alice@example.org") != 0 || cl.Inst1.Messages("bob@example.org") != 0 {
		t.Errorf("messages: inst1 alice %d bob %d, inst2 alice %d bob %d", cl.Inst1.Messages("alice@example.org"),
			cl.Inst1.Messages("bob@example.org"), cl.Inst2.Messages("alice@example.org"), cl.Inst2.Messages("bob@example.org"))
	}

	// curl: SMTP to carol (inst1), then read it back over IMAP and POP3.
	msg := filepath.Join(t.TempDir(), "msg.txt")
	os.WriteFile(msg, []byte("Subject: curl for carol\r\nFrom: x@outside.test\r\n\r\nvia curl\r\n"), 0o600)
	curl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	curl("smtp://"+addrs["smtp"], "--mail-from", "x@outside.test", "--mail-rcpt", "carol@example.org", "-T", msg)
	if got := curl("imap://"+addrs["imap"]+"/INBOX;UID=1", "-u", "carol@example.org:carol-pw"); !strings.Contains(got, "via curl") {
		t.Errorf("curl imap: %q", got)
	}
	if got := curl("pop3://"+addrs["pop3"]+"/1", "-u", "carol@example.org:carol-pw"); !strings.Contains(got, "via curl") {
		t.Errorf("curl pop3: %q", got)
	}
	if cl.Inst1.Messages("carol@example.org") != 1 || cl.Inst2.Messages("carol@example.org") != 0 {
		t.Error("carol's message is not only on inst1")
	}

	// Health and metrics on the admin listener.
	resp, err := http.Get("http://" + addrs["admin"] + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + addrs["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mailfleet_frontend_connections_total{service="imap"}`, `mailfleet_frontend_connections_total{service="smtp"}`,
		`mailfleet_frontend_directory_lookups_total{result="ok",source="cache"}`, `mailfleet_frontend_ldap_request_seconds_bucket{op="bind"`,
		`mailfleet_frontend_backend_up{instance="inst1.backend.test",service="imap"} 1`, `mailfleet_frontend_refusals_total{reason="relay",service="smtp"}`,
		`mailfleet_frontend_logins_total{result="invalid",service="imap"}`, `mailfleet_frontend_messages_total{result="accepted"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// One session id runs through the front-end's log and the store's.
	var id string
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, `"logged in"`) && strings.Contains(line, `"service":"pop3"`) {
			var rec map[string]any
			json.Unmarshal([]byte(line), &rec)
			id, _ = rec["session"].(string)
		}
	}
	if id == "" || !strings.Contains(cl.Inst1.Log.String()+cl.Inst2.Log.String(), id) {
		t.Errorf("session id %q not in the store's log", id)
	}
}

// TestSecurityStoreRefusesUntrustedForwarder: a store that does not trust
// the front-end's network refuses its PROXY header, so the client address
// cannot be forged from there; the clients get clean temporary errors.
func TestSecurityStoreRefusesUntrustedForwarder(t *testing.T) {
	testutil.Long(t)
	cl := storetest.NewCluster(t, nil)
	strict := storetest.Start(t, storetest.Options{Name: "strict", LDAP: cl.Slapd.Config(), Domains: []string{"example.org"},
		TrustedNetworks: []string{"10.0.0.0/8"}})
	instances := map[string]config.InstanceRoute{cl.Inst1.FQDN: strict.Route(), cl.Inst2.FQDN: cl.Inst2.Route()}
	n, _ := startNode(t, frontendConfig(cl, instances))
	addrs := n.Addrs()
	script := `
import imaplib, smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
m = imaplib.IMAP4(host, int(port), timeout=20)
try:
    m.login("alice@example.org", "alice-pw")
    print("imap accepted")
except imaplib.IMAP4.error as e:
    print("imap", e)
host, port = sys.argv[2].rsplit(":", 1)
s = smtplib.SMTP(host, int(port), timeout=20)
try:
    s.sendmail("x@outside.test", ["alice@example.org"], "Subject: x\r\n\r\nx\r\n")
    print("smtp accepted")
except smtplib.SMTPRecipientsRefused as e:
    print("smtp", e.recipients["alice@example.org"][0])
`
	out, err := exec.Command("python3", "-c", script, addrs["imap"], addrs["smtp"]).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := string(out); !strings.Contains(got, "imap b'[UNAVAILABLE]") || !strings.Contains(got, "smtp 451") {
		t.Fatalf("got %s", got)
	}
	if strict.Messages("alice@example.org") != 0 {
		t.Fatal("the untrusting store took the message")
	}
}
