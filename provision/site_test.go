package provision_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/provision"
	"github.com/mailfleet/mailfleet/provision/provisiontest"
	"github.com/mailfleet/mailfleet/runtime/adminapi"
	"github.com/mailfleet/mailfleet/runtime/devcluster"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
)

// Each test takes its own 10 loopback addresses: the tests of this package
// run one at a time, but cmd/mailfleet's run beside them.
const addrBase = "127.0.11.100"

func open(t *testing.T, path string) *provision.Session {
	t.Helper()
	tp, _, ds := decode.Load(path, decode.Options{Env: os.LookupEnv})
	if tp != nil {
		ds = append(ds, spec.Validate(tp)...)
	}
	if ds.HasErrors() {
		t.Fatalf("topology %s: %v", path, ds)
	}
	s, err := provision.Open(tp)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Session()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	return ss
}

func mustCheck(t *testing.T, ss *provision.Session, want ...string) {
	t.Helper()
	probs, err := ss.Check(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.Kind+" "+p.Address)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("check: got %q, want %q", got, want)
	}
}

func fix(t *testing.T, ss *provision.Session) {
	t.Helper()
	probs, err := ss.Check(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.Fixed == "" {
			t.Fatalf("not fixed: %+v", p)
		}
	}
	mustCheck(t, ss)
}

func TestEntryShapeAndBind(t *testing.T) {
	testutil.Long(t)
	dev := provisiontest.Start(t, addrBase)
	ss := open(t, dev.Topology)
	ctx := context.Background()
	q := int64(2 << 30)
	res, err := ss.Add(ctx, provision.AddRequest{Address: "Carol.Doe+x@Mailfleet.test", Password: "c0rrect horse", Quota: &q})
	if err != nil {
		t.Fatal(err)
	}
	// One validation for every path: a domain the site does not serve
	// (the account could never receive mail) and a negative quota are
	// refused before anything is written.
	neg := int64(-5)
	for _, r := range []provision.AddRequest{
		{Address: "zed@example.com", Password: "c0rrect horse"},
		{Address: "zed@maİlfleet.test", Password: "c0rrect horse"},
		{Address: "zed@mailfleet.test", Password: "c0rrect horse", Quota: &neg},
	} {
		if _, err := ss.Add(ctx, r); err == nil {
			t.Errorf("Add(%s, quota %v): accepted", r.Address, r.Quota)
		}
	}
	if _, err := ss.Show(ctx, "zed@mailfleet.test"); err == nil {
		t.Error("a refused Add left an account")
	}
	addr := "carol.doe+x@mailfleet.test"
	wantDN := "uid=" + ldap.EscapeDN(addr) + "," + devcluster.Suffix
	if wantDN != `uid=carol.doe\+x@mailfleet.test,dc=mailfleet,dc=test` {
		t.Fatalf("EscapeDN gave %s", wantDN)
	}
	if res.DN != wantDN {
		t.Fatalf("DN %q, want %q", res.DN, wantDN)
	}
	c, err := ldap.DialURL(dev.Info.LDAP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sr, err := c.Search(ldap.NewSearchRequest(wantDN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"*"}, nil))
	if err == nil {
		t.Fatalf("an anonymous search read the entry: %v", sr.Entries)
	}
	// Read it as the admin the topology names.
	tp, _, _ := decode.Load(dev.Topology, decode.Options{Env: os.LookupEnv})
	if err := c.Bind(tp.Directory.AdminDN, tp.Directory.AdminPassword.Value); err != nil {
		t.Fatal(err)
	}
	sr, err = c.Search(ldap.NewSearchRequest(wantDN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"*"}, nil))
	if err != nil || len(sr.Entries) != 1 {
		t.Fatalf("entry %s: %v", wantDN, err)
	}
	e := sr.Entries[0]
	got := map[string][]string{}
	for _, a := range e.Attributes {
		vs := append([]string(nil), a.Values...)
		sort.Strings(vs)
		got[a.Name] = vs
	}
	hash := got["userPassword"]
	delete(got, "userPassword")
	want := map[string][]string{
		"objectClass":      {"account", "inetLocalMailRecipient", "simpleSecurityObject"},
		"uid":              {addr},
		"mailLocalAddress": {addr},
		"mailHost":         {res.MailHost},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entry attributes\n got %v\nwant %v", got, want)
	}
	if len(hash) != 1 || !strings.HasPrefix(hash[0], "{SSHA}") || strings.Contains(hash[0], "c0rrect") || !provision.VerifyPassword(hash[0], "c0rrect horse") {
		t.Fatalf("userPassword %q is not an {SSHA} hash of the password", hash)
	}
	// slapd verifies it: a bind as the account.
	c2, _ := ldap.DialURL(dev.Info.LDAP)
	defer c2.Close()
	if err := c2.Bind(wantDN, "c0rrect horse"); err != nil {
		t.Fatalf("bind as the new account: %v", err)
	}
	if err := c2.Bind(wantDN, "wrong"); err == nil {
		t.Fatal("bind with a wrong password succeeded")
	}
	// The mailbox exists with the quota; the account logs in through the
	// balancer and the proxies.
	acc, err := ss.Show(ctx, addr)
	if err != nil || acc.Mailbox == nil || acc.Mailbox.Quota.MaxBytes != q || acc.Problem != "" {
		t.Fatalf("show: %+v %v", acc, err)
	}
	imapLogin(t, dev.Info.IMAP, addr, "c0rrect horse", true)
	imapLogin(t, dev.Info.IMAP, addr, "not it", false)

	// passwd changes the directory only; set changes the quota only.
	if err := ss.Passwd(ctx, addr, "n3w pass"); err != nil {
		t.Fatal(err)
	}
	if err := c2.Bind(wantDN, "n3w pass"); err != nil {
		t.Fatalf("bind with the new password: %v", err)
	}
	mb, err := ss.SetQuota(ctx, addr, 500<<20)
	if err != nil || mb.Quota.MaxBytes != 500<<20 {
		t.Fatalf("set quota: %+v %v", mb, err)
	}
	mustCheck(t, ss)
	// rm: entry then mailbox.
	done, err := ss.Remove(ctx, addr)
	if err != nil || len(done) != 2 {
		t.Fatalf("rm: %v %v", done, err)
	}
	if _, err := ss.Show(ctx, addr); !errors.Is(err, provision.ErrNoAccount) {
		t.Fatalf("show after rm: %v", err)
	}
	mustCheck(t, ss)
}

// imapLogin logs in through addr (the balancer's IMAP); the proxy may
// need a moment for a new account (its negative cache).
func imapLogin(t *testing.T, addr, user, pass string, wantOK bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, line := imapTry(t, addr, user, pass)
		if ok == wantOK {
			return
		}
		if !wantOK || time.Now().After(deadline) {
			t.Fatalf("IMAP LOGIN %s through %s: %q, want ok=%v", user, addr, line, wantOK)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func imapTry(t *testing.T, addr, user, pass string) (bool, string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "a1 LOGIN %q %q\r\n", user, pass)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false, err.Error()
		}
		if strings.HasPrefix(line, "a1 ") {
			return strings.HasPrefix(line, "a1 OK"), strings.TrimSpace(line)
		}
	}
}

func TestLeastUsedFillsTheEmptiest(t *testing.T) {
	dev := provisiontest.Start(t, addrBase)
	ss := open(t, dev.Topology)
	ctx := context.Background()
	// The dev cluster seeds one account per instance; put 3 more on inst1.
	for i := 0; i < 3; i++ {
		if _, err := ss.Add(ctx, provision.AddRequest{Address: fmt.Sprintf("pre%d@mailfleet.test", i), Password: "pw", Instance: "inst1"}); err != nil {
			t.Fatal(err)
		}
	}
	var homes []string
	for i := 0; i < 5; i++ {
		res, err := ss.Add(ctx, provision.AddRequest{Address: fmt.Sprintf("lu%d@mailfleet.test", i), Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		homes = append(homes, res.Instance)
	}
	// inst1 4, inst2 1: three to inst2, then alternate from a tie (inst1 first).
	if got := strings.Join(homes, ","); got != "inst2,inst2,inst2,inst1,inst2" {
		t.Fatalf("least used chose %s", got)
	}
	mustCheck(t, ss)
}

const provisioningDomain = `
provisioning {
  policy  = "domain"
  domains = { "mailfleet.test" = mail_instance.inst2 }
  default_quota = "100M"
  account_limit = 50
}
`

func TestDomainPolicyAlwaysTheHome(t *testing.T) {
	dev := provisiontest.Start(t, addrBase)
	path := dev.TopologyVariant("topology-domain", nil, map[string]string{"provisioning.hcl": provisioningDomain})
	ss := open(t, path)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		res, err := ss.Add(ctx, provision.AddRequest{Address: fmt.Sprintf("u%d@mailfleet.test", i), Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Instance != "inst2" {
			t.Fatalf("account %d went to %s", i, res.Instance)
		}
	}
	if _, err := ss.Add(ctx, provision.AddRequest{Address: "x@elsewhere.test", Password: "pw"}); !errors.Is(err, provision.ErrForeignDomain) {
		t.Fatalf("a domain the site does not serve: %v", err)
	}
	// The domain exists on its home only, with the topology's settings.
	d2, err := ss.Instances["inst2"].Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := adminapi.DomainSettings{DefaultQuota: adminapi.Quota{MaxBytes: 100 << 20}, MaxAccounts: 50}
	if d2["mailfleet.test"] != want {
		t.Fatalf("inst2 domain settings %+v, want %+v", d2["mailfleet.test"], want)
	}
	d1, _ := ss.Instances["inst1"].Domains(ctx)
	if _, ok := d1["mailfleet.test"]; ok {
		t.Fatal("the domain was created on inst1 too")
	}
	mb, _ := ss.Instances["inst2"].Account(ctx, "u0@mailfleet.test")
	if mb.Quota.MaxBytes != 100<<20 {
		t.Fatalf("the domain's default quota was not applied: %+v", mb)
	}
	mustCheck(t, ss)
}

// The directory stops between the two writes: Add fails clearly, and since
// the directory never answered (the entry may or may not have been
// written) the mailbox is kept: check reports at most an orphaned mailbox,
// and check -fix leaves the two places consistent.
func TestFaultLDAPStoppedBetweenWrites(t *testing.T) {
	testutil.Long(t)
	dev := provisiontest.Start(t, addrBase)
	ss := open(t, dev.Topology)
	ss.Dir.Timeout = 2 * time.Second
	ss2 := open(t, dev.Topology) // its connection is made before slapd stops
	ctx := context.Background()
	pid := dev.Info.SlapdPID
	ss.AfterMailbox = func(string) error {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			return err
		}
		for i := 0; i < 200; i++ { // until the kernel has stopped it
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "T" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	_, err := ss.Add(ctx, provision.AddRequest{Address: "stopped@mailfleet.test", Password: "secretpw"})
	syscall.Kill(pid, syscall.SIGCONT)
	if err == nil || !strings.Contains(err.Error(), "directory: add uid=stopped@mailfleet.test") || !errors.Is(err, provision.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "is kept") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "secretpw") {
		t.Fatal("the password is in the error")
	}
	ss2.AfterMailbox = nil
	// slapd may still apply the add it had read before it stopped: wait
	// until two checks a second apart agree, so fix acts on the final state.
	var probs []provision.Problem
	for i, last := 0, "?"; i < 20; i++ {
		var err error
		probs, err = ss2.Check(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		now := fmt.Sprint(probs)
		if now == last {
			break
		}
		last = now
		time.Sleep(time.Second)
	}
	for _, p := range probs {
		if p.Kind != provision.OrphanMailbox || p.Address != "stopped@mailfleet.test" {
			t.Fatalf("check found %s %s; only an orphaned mailbox may be left", p.Kind, p.Address)
		}
	}
	fix(t, ss2)
	mustCheck(t, ss2)
}

// The tool dies between the two writes (slapd killed, no rollback): the
// mailbox is left without entry; check reports it, -fix removes it, and
// add afterwards works.
func TestFaultCrashBetweenWrites(t *testing.T) {
	testutil.Long(t)
	dev := provisiontest.Start(t, addrBase)
	ss := open(t, dev.Topology)
	ss.AfterMailbox = func(string) error {
		if err := syscall.Kill(dev.Info.SlapdPID, syscall.SIGKILL); err != nil {
			return err
		}
		return errors.New("simulated crash")
	}
	_, err := ss.Add(context.Background(), provision.AddRequest{Address: "crash@mailfleet.test", Password: "pw"})
	if err == nil || !strings.Contains(err.Error(), "interrupted after the mailbox step") {
		t.Fatalf("error %v", err)
	}
	<-dev.Exited() // mailfleetd dev stops when slapd dies
	dev.Restart()
	ss = open(t, dev.Topology)
	mustCheck(t, ss, provision.OrphanMailbox+" crash@mailfleet.test")
	fix(t, ss)
	if _, err := ss.Add(context.Background(), provision.AddRequest{Address: "crash@mailfleet.test", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, ss)
}

// An instance's admin API is down: add fails before any write; rm stops
// routing and leaves the mailbox, which check reports and -fix removes.
func TestFaultAdminAPIDown(t *testing.T) {
	dev := provisiontest.Start(t, addrBase)
	ss := open(t, dev.Topology)
	ctx := context.Background()
	if _, err := ss.Add(ctx, provision.AddRequest{Address: "on2@mailfleet.test", Password: "pw", Instance: "inst2"}); err != nil {
		t.Fatal(err)
	}
	// A closed port for inst2's admin listener.
	l, _ := net.Listen("tcp", dev.Info.Instances["inst2"].Admin[:strings.LastIndexByte(dev.Info.Instances["inst2"].Admin, ':')]+":0")
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	adminPort := dev.Info.Instances["inst2"].Admin[strings.LastIndexByte(dev.Info.Instances["inst2"].Admin, ':')+1:]
	down := dev.TopologyVariant("topology-down", func(s string) string {
		// inst2 is the second instance block; its admin listener moves.
		i := strings.Index(s, `mail_instance "inst2"`)
		return s[:i] + regexp.MustCompile(`admin = `+adminPort).ReplaceAllString(s[i:], fmt.Sprintf("admin = %d", closed))
	}, nil)
	bad := open(t, down)
	_, err := bad.Add(ctx, provision.AddRequest{Address: "nope@mailfleet.test", Password: "pw"})
	if err == nil || !strings.Contains(err.Error(), "instance inst2: admin API") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("add with inst2 down: %v", err)
	}
	mustCheck(t, ss)
	_, err = bad.Remove(ctx, "on2@mailfleet.test")
	if err == nil || !strings.Contains(err.Error(), "no longer routes") {
		t.Fatalf("rm with inst2 down: %v", err)
	}
	mustCheck(t, ss, provision.OrphanMailbox+" on2@mailfleet.test")
	fix(t, ss)
}

// A duplicate address: add refuses it; a second entry made behind our back
// is reported and removed by -fix, as are a mailHost naming no instance
// and an entry without mailbox.
func TestFaultDuplicateAndStrayEntries(t *testing.T) {
	dev := provisiontest.Start(t, addrBase)
	ss := open(t, dev.Topology)
	ctx := context.Background()
	if _, err := ss.Add(ctx, provision.AddRequest{Address: "dup@mailfleet.test", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Add(ctx, provision.AddRequest{Address: "DUP@mailfleet.test", Password: "pw"}); !errors.Is(err, provision.ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	c := ldapAdmin(t, dev)
	add := func(dn, addr, host string) {
		req := ldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", []string{"account", "inetLocalMailRecipient", "simpleSecurityObject"})
		req.Attribute("uid", []string{addr})
		req.Attribute("mailLocalAddress", []string{addr})
		req.Attribute("mailHost", []string{host})
		req.Attribute("userPassword", []string{"{SSHA}x"})
		if err := c.Add(req); err != nil {
			t.Fatal(err)
		}
	}
	add("uid=dup@mailfleet.test,"+devcluster.PeopleDN, "dup@mailfleet.test", "inst2.cluster.test")
	add("uid=lost@mailfleet.test,"+devcluster.Suffix, "lost@mailfleet.test", "nowhere.cluster.test")
	add("uid=empty@mailfleet.test,"+devcluster.Suffix, "empty@mailfleet.test", "inst1.cluster.test")
	if _, err := ss.Instances["inst2"].CreateAccount(ctx, "lost@mailfleet.test"); err != nil {
		t.Fatal(err)
	}
	if err := ss.Passwd(ctx, "dup@mailfleet.test", "x"); err == nil || !strings.Contains(err.Error(), "2 directory entries") {
		t.Fatalf("passwd of a duplicate: %v", err)
	}
	mustCheck(t, ss, provision.Duplicate+" dup@mailfleet.test", provision.UnknownHost+" lost@mailfleet.test",
		provision.NoMailbox+" empty@mailfleet.test")
	fix(t, ss)
	acc, err := ss.Show(ctx, "lost@mailfleet.test")
	if err != nil || acc.Instance != "inst2" {
		t.Fatalf("lost@ after fix: %+v %v", acc, err)
	}
}

func ldapAdmin(t *testing.T, dev *provisiontest.Dev) *ldap.Conn {
	t.Helper()
	tp, _, _ := decode.Load(dev.Topology, decode.Options{Env: os.LookupEnv})
	c, err := ldap.DialURL(dev.Info.LDAP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Bind(tp.Directory.AdminDN, tp.Directory.AdminPassword.Value); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestImportResumable(t *testing.T) {
	dev := provisiontest.Start(t, addrBase)
	ctx := context.Background()
	ss := open(t, dev.Topology)
	hash, _ := provision.HashPassword("hashed pw")
	var b strings.Builder
	b.WriteString("address,password,instance,quota\n")
	for i := 0; i < 60; i++ {
		switch {
		case i == 0:
			fmt.Fprintf(&b, "imp%d@mailfleet.test,%s,,\n", i, hash)
		case i%10 == 1:
			fmt.Fprintf(&b, "imp%d@mailfleet.test,pw%d,inst1,1G\n", i, i)
		default:
			fmt.Fprintf(&b, "imp%d@mailfleet.test,pw%d\n", i, i)
		}
	}
	rows, err := provision.ReadCSV(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	// An interrupted first run: the first 25.
	sum, err := ss.Site.Import(ctx, rows[:25], provision.ImportOptions{Workers: 4})
	if err != nil || sum.Created != 25 {
		t.Fatalf("first run %+v %v", sum, err)
	}
	sum, err = ss.Site.Import(ctx, rows, provision.ImportOptions{Workers: 8})
	if err != nil || sum.Created != 35 || sum.Skipped != 25 || sum.Failed != 0 {
		t.Fatalf("resumed run %+v %v", sum, err)
	}
	mustCheck(t, ss)
	c, _ := ldap.DialURL(dev.Info.LDAP)
	defer c.Close()
	if err := c.Bind("uid=imp0@mailfleet.test,"+devcluster.Suffix, "hashed pw"); err != nil {
		t.Fatalf("an imported hash does not bind: %v", err)
	}
	acc, _ := ss.Show(ctx, "imp1@mailfleet.test")
	if acc.Instance != "inst1" || acc.Mailbox.Quota.MaxBytes != 1<<30 {
		t.Fatalf("imp1: %+v", acc)
	}
	// least_used spread them evenly.
	n := map[string]int{}
	all, _ := ss.List(ctx)
	for _, a := range all {
		if strings.HasPrefix(a.Address, "imp") && strings.HasSuffix(a.Address, "@mailfleet.test") {
			n[a.Instance]++
		}
	}
	if d := n["inst1"] - n["inst2"]; d < -8 || d > 8 {
		t.Errorf("import spread %v", n)
	}
}
