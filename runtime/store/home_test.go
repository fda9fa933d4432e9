package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/go-ldap/ldap/v3"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory/slapdtest"
)

// homeDirectory is a private slapd loaded with slapdtest's entry shape,
// whose root DN may write (slapdtest's service DN only reads), so that a
// test can switch an entry's mailHost as `mailfleet account move` does.
type homeDirectory struct {
	cfg      config.LDAP
	url      string
	rootDN   string
	rootPass string
}

func startHomeDirectory(t *testing.T, accounts []slapdtest.Account) *homeDirectory {
	t.Helper()
	for _, tool := range []string{"/usr/sbin/slapd", "/usr/sbin/slapadd"} {
		if _, err := os.Stat(tool); err != nil {
			t.Fatalf("%s is required for this test: %v", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "store-home")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Mkdir(filepath.Join(dir, "db"), 0o700)
	d := &homeDirectory{rootDN: "cn=root," + slapdtest.Suffix, rootPass: "root-secret"}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 67108864
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="%[5]s" read by * none
`, dir, slapdtest.Suffix, d.rootDN, slapdtest.SSHA(d.rootPass), slapdtest.ServiceDN)
	confPath := filepath.Join(dir, "slapd.conf")
	os.WriteFile(confPath, []byte(conf), 0o600)
	ldifPath := filepath.Join(dir, "base.ldif")
	os.WriteFile(ldifPath, []byte(slapdtest.LDIF(accounts)), 0o600)
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", confPath, "-l", ldifPath).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	pwFile := filepath.Join(dir, "service-password")
	os.WriteFile(pwFile, []byte(slapdtest.ServicePassword+"\n"), 0o600)
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		d.url = "ldap://" + addr + "/"
		cmd := exec.Command("/usr/sbin/slapd", "-f", confPath, "-h", d.url, "-d", "0")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		up := false
		for deadline := time.Now().Add(30 * time.Second); !up && time.Now().Before(deadline); {
			select {
			case <-exited:
				deadline = time.Time{} // the port was taken meanwhile
				continue
			default:
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				up = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if up {
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })
			break
		}
		cmd.Process.Kill()
		<-exited
		if try == 2 {
			t.Fatal("slapd did not start listening")
		}
	}
	d.cfg = config.LDAP{URLs: []string{d.url}, BindDN: slapdtest.ServiceDN, BindPasswordFile: pwFile,
		Base: slapdtest.Suffix, Filter: slapdtest.Filter, HostAttribute: "mailHost", RefuseDuplicates: true,
		Timeout: config.Duration(5 * time.Second)}
	return d
}

// setMailHost replaces the account's mailHost, as the move's switch does.
func (d *homeDirectory) setMailHost(t *testing.T, address, host string) {
	t.Helper()
	c, err := ldap.DialURL(d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(d.rootDN, d.rootPass); err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest("uid="+address+",ou=people,"+slapdtest.Suffix, nil)
	m.Replace("mailHost", []string{host})
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
}

// rcptReply opens an SMTP (or LMTP) session and returns the error RCPT TO
// gets for rcpt (nil: accepted).
func rcptReply(t *testing.T, addr string, lmtp bool, rcpt string) error {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClient(conn)
	if lmtp {
		c = gosmtp.NewClientLMTP(conn)
	}
	defer c.Close()
	if err := c.Hello("router.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@outside.test", nil); err != nil {
		t.Fatal(err)
	}
	return c.Rcpt(rcpt, nil)
}

// wantSMTP checks a RCPT answer's code and enhanced code.
func wantSMTP(t *testing.T, what string, err error, code int, ec gosmtp.EnhancedCode, text string) {
	t.Helper()
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != ec || !strings.Contains(se.Message, text) {
		t.Fatalf("%s: RCPT answered %v, want %d %d.%d.%d (%q)", what, err, code, ec[0], ec[1], ec[2], text)
	}
}

// imapLogin tries LOGIN (or AUTHENTICATE PLAIN) and returns its error.
func imapLogin(t *testing.T, addr, user, pass string, plain bool) error {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if plain {
		return c.Authenticate(sasl.NewPlainClient("", user, pass))
	}
	return c.Login(user, pass).Wait()
}

func wantIMAPNo(t *testing.T, what string, err error, code goimap.ResponseCode, text string) {
	t.Helper()
	var ie *goimap.Error
	if !errors.As(err, &ie) || ie.Type != goimap.StatusResponseTypeNo || ie.Code != code || !strings.Contains(ie.Text, text) {
		t.Fatalf("%s: %v, want NO [%s] %q", what, err, code, text)
	}
}

// pop3Auth tries AUTH PLAIN and returns the answer.
func pop3Auth(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ReadLine()
	c.PrintfLine("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
	reply, _ := c.ReadLine()
	c.PrintfLine("QUIT")
	c.ReadLine()
	return reply
}

// TestAccountHomedElsewhere: with an LDAP directory, an account whose
// mailHost names another instance gets a temporary refusal (RCPT 451
// 4.4.0, IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP]) and no mailbox here;
// the admin API (create, moving, export, import: a move's copy) is not
// checked; once mailHost names this instance, deliveries and logins are
// accepted, and refused again when it names another one.
func TestAccountHomedElsewhere(t *testing.T) {
	dir := startHomeDirectory(t, []slapdtest.Account{
		{Address: "here@example.org", Password: "here-pw", MailHost: "STORE-A.test."},
		{Address: "away@example.org", Password: "away-pw", MailHost: "store-b.test"},
		{Address: "nohost@example.org", Password: "nohost-pw"},
	})
	in := startInstance(t, func(cfg *config.Store) {
		cfg.Hostname = "store-a.test"
		cfg.PasswdFile = ""
		cfg.LDAP = &dir.cfg
		cfg.Listeners["lmtp"] = "127.0.0.1:0"
		// Nothing answers there: the queued notification below stays
		// deferred instead of asking the real DNS.
		cfg.Resolver = config.Resolver{Nameservers: []config.Nameserver{{Address: "127.0.0.1"}}, Timeout: config.Duration(time.Second)}
	})
	addrs := in.Addrs()
	const secret = "0123456789abcdef0123"
	admin := func(method, path string, body io.Reader) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addrs["admin"]+path, body)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	accountDir := filepath.Join(in.cfg.StoragePath, "example.org", "away")

	// Homed on store-b: temporary refusals everywhere, nothing created.
	for _, lmtp := range []bool{false, true} {
		wantSMTP(t, fmt.Sprintf("away (lmtp %v)", lmtp), rcptReply(t, addrs[map[bool]string{false: "smtp", true: "lmtp"}[lmtp]], lmtp, "away@example.org"),
			451, gosmtp.EnhancedCode{4, 4, 0}, "account is homed on store-b.test; routing is catching up")
	}
	if err := rcptReply(t, addrs["smtp"], false, "here@example.org"); err != nil {
		t.Fatalf("here (mailHost in another case, with a trailing dot): %v", err)
	}
	if err := rcptReply(t, addrs["smtp"], false, "nohost@example.org"); err != nil {
		t.Fatalf("an entry without mailHost: %v", err)
	}
	wantSMTP(t, "nobody", rcptReply(t, addrs["smtp"], false, "nobody@example.org"), 550, gosmtp.EnhancedCode{5, 1, 1}, "No such user")
	wantIMAPNo(t, "LOGIN away", imapLogin(t, addrs["imap"], "away@example.org", "away-pw", false), goimap.ResponseCodeUnavailable, "homed on store-b.test")
	wantIMAPNo(t, "AUTHENTICATE away", imapLogin(t, addrs["imap"], "away@example.org", "away-pw", true), goimap.ResponseCodeUnavailable, "homed on store-b.test")
	// A wrong password stays a failure: the home is told only to the owner.
	wantIMAPNo(t, "LOGIN away, wrong password", imapLogin(t, addrs["imap"], "away@example.org", "wrong", false), goimap.ResponseCodeAuthenticationFailed, "")
	wantIMAPNo(t, "LOGIN nobody", imapLogin(t, addrs["imap"], "nobody@example.org", "x", false), goimap.ResponseCodeAuthenticationFailed, "")
	if err := imapLogin(t, addrs["imap"], "here@example.org", "here-pw", false); err != nil {
		t.Fatalf("LOGIN here: %v", err)
	}
	if r := pop3Login(t, addrs["pop3"], "away@example.org", "away-pw"); !strings.HasPrefix(r, "-ERR [SYS/TEMP] ") || !strings.Contains(r, "store-b.test") {
		t.Fatalf("POP3 PASS away: %q", r)
	}
	if r := pop3Auth(t, addrs["pop3"], "away@example.org", "away-pw"); !strings.HasPrefix(r, "-ERR [SYS/TEMP] ") {
		t.Fatalf("POP3 AUTH away: %q", r)
	}
	if r := pop3Login(t, addrs["pop3"], "away@example.org", "wrong"); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Fatalf("POP3 PASS away, wrong password: %q", r)
	}
	if r := pop3Login(t, addrs["pop3"], "nohost@example.org", "nohost-pw"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("POP3 PASS nohost: %q", r)
	}
	if _, err := os.Stat(accountDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refusals left a mailbox for away here: %v", err)
	}
	m := scrape(t, addrs["admin"])
	inst := `instance="ocf",`
	for series, want := range map[string]float64{
		`mailfleet_store_refusals_total{` + inst + `proto="smtp",reason="elsewhere"}`: 1,
		`mailfleet_store_refusals_total{` + inst + `proto="lmtp",reason="elsewhere"}`: 1,
		`mailfleet_store_refusals_total{` + inst + `proto="imap",reason="elsewhere"}`: 2,
		`mailfleet_store_refusals_total{` + inst + `proto="pop3",reason="elsewhere"}`: 2,
		`mailfleet_store_logins_total{` + inst + `proto="imap",result="elsewhere"}`:   2,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}

	// The admin API is the move's path and is not checked: the target
	// holds the copy before mailHost names it.
	if code, b := admin("POST", "/v1/accounts/away@example.org", nil); code != 201 {
		t.Fatalf("create away: %d %s", code, b)
	}
	if code, b := admin("PUT", "/v1/accounts/away@example.org/moving", strings.NewReader(`{"moving":true}`)); code != 200 {
		t.Fatalf("mark away moving: %d %s", code, b)
	}
	code, tarball := admin("GET", "/v1/accounts/away@example.org/export", nil)
	if code != 200 {
		t.Fatalf("export away: %d %s", code, tarball)
	}
	if code, b := admin("DELETE", "/v1/accounts/away@example.org", nil); code != 204 {
		t.Fatalf("delete away: %d %s", code, b)
	}
	if code, b := admin("PUT", "/v1/accounts/away@example.org/import", bytes.NewReader(tarball)); code != 200 {
		t.Fatalf("import away: %d %s", code, b)
	}
	wantSMTP(t, "away, imported but not yet switched", rcptReply(t, addrs["smtp"], false, "away@example.org"),
		451, gosmtp.EnhancedCode{4, 4, 0}, "homed on store-b.test")

	// The switch: mailHost names this instance, and it serves the account.
	dir.setMailHost(t, "away@example.org", "store-a.test")
	if err := sendFrom(t, "127.0.0.1", addrs["smtp"], "", "sender@outside.test", []string{"away@example.org"},
		"Subject: after the switch\r\n\r\nhello\r\n"); err != nil {
		t.Fatalf("delivery once mailHost names this instance: %v", err)
	}
	if err := rcptReply(t, addrs["lmtp"], true, "away@example.org"); err != nil {
		t.Fatalf("LMTP RCPT once mailHost names this instance: %v", err)
	}
	if err := imapLogin(t, addrs["imap"], "away@example.org", "away-pw", false); err != nil {
		t.Fatalf("LOGIN once mailHost names this instance: %v", err)
	}
	if r := pop3Login(t, addrs["pop3"], "away@example.org", "away-pw"); r != "+OK maildrop has 1 messages" {
		t.Fatalf("POP3 once mailHost names this instance: %q", r)
	}

	// Moved away again (the old home's side of a move, after its copy is
	// gone): refused again, and the delivery is not made here.
	dir.setMailHost(t, "away@example.org", "store-b.test")
	wantSMTP(t, "away, moved on", rcptReply(t, addrs["smtp"], false, "away@example.org"),
		451, gosmtp.EnhancedCode{4, 4, 0}, "homed on store-b.test")
	wantIMAPNo(t, "LOGIN away, moved on", imapLogin(t, addrs["imap"], "away@example.org", "away-pw", false), goimap.ResponseCodeUnavailable, "homed on store-b.test")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := in.dir.Lookup(ctx, "away@example.org"); err == nil {
		t.Fatal("Lookup of an account homed elsewhere gave no error")
	}
	// A delivery notification for a sender that has moved goes to its new
	// home through the outbound queue, from the null sender, not into the
	// copy left here.
	if err := in.bounce("away@example.org", []byte("Subject: report\r\n\r\nfailed\r\n")); err != nil {
		t.Fatalf("notification for a sender homed elsewhere: %v", err)
	}
	envs, err := in.queue.Entries()
	if err != nil || len(envs) != 1 || envs[0].From != "" || len(envs[0].Recipients) != 1 || envs[0].Recipients[0].Address != "away@example.org" {
		t.Fatalf("queued notification: %+v %v", envs, err)
	}
}
