package imap

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

type fakeAuth map[string]string

func (f fakeAuth) Authenticate(_ context.Context, user, pass string) (string, error) {
	u := strings.ToLower(user)
	if pw, ok := f[u]; ok && pw == pass {
		return u, nil
	}
	return "", auth.ErrInvalidCredentials
}

const (
	user = "bob@example.org"
	pass = "secret"
)

type testServer struct {
	addr  string
	store *maildir.Store
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	st, err := maildir.Open(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Store: st, Auth: fakeAuth{user: pass}, FailedLoginDelay: time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &testServer{addr: l.Addr().String(), store: st}
}

func (ts *testServer) deliver(t *testing.T, body string) {
	t.Helper()
	a, err := ts.store.Account(user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Inbox().Deliver(strings.NewReader(body), maildir.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
}

func dial(t *testing.T, addr string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func loggedIn(t *testing.T, addr string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := dial(t, addr, opts)
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

const msg1 = "From: Alice <alice@remote.test>\r\nTo: bob@example.org\r\nSubject: hello imap\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nfirst body\r\n"

func TestIMAPSession(t *testing.T) {
	ts := startServer(t)
	ts.deliver(t, msg1)
	ts.deliver(t, "Subject: second\r\n\r\nsecond body\r\n")

	c := dial(t, ts.addr, nil)
	if err := c.Login(user, "wrong").Wait(); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	caps := c.Caps()
	for _, cp := range []goimap.Cap{goimap.CapIdle, goimap.CapUIDPlus, goimap.CapMove, goimap.CapSpecialUse, goimap.CapNamespace} {
		if !caps.Has(cp) {
			t.Errorf("capability %s missing", cp)
		}
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]goimap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
	}
	if _, ok := attrs["INBOX"]; !ok {
		t.Fatalf("LIST lacks INBOX: %v", attrs)
	}
	if !hasAttr(attrs["Sent"], goimap.MailboxAttrSent) || !hasAttr(attrs["Trash"], goimap.MailboxAttrTrash) {
		t.Fatalf("special-use attributes missing: %v", attrs)
	}
	for _, bad := range []string{"../etc", "a/../../b", "x\x01y"} {
		if err := c.Create(bad, nil).Wait(); err == nil {
			t.Errorf("CREATE %q accepted", bad)
		}
	}
	if err := c.Create("Work/Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Work/Projects", nil).Wait(); err == nil {
		t.Fatal("duplicate CREATE accepted")
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 || sel.UIDNext != 3 || sel.UIDValidity == 0 {
		t.Fatalf("SELECT = %+v", sel)
	}
	// FETCH envelope, size and a body section; a non-peek fetch sets \Seen.
	bs := &goimap.FetchItemBodySection{}
	msgs, err := c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{Envelope: true, RFC822Size: true, UID: true, BodySection: []*goimap.FetchItemBodySection{bs}, BodyStructure: &goimap.FetchItemBodyStructure{}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Envelope == nil || msgs[0].Envelope.Subject != "hello imap" || msgs[0].RFC822Size != int64(len(msg1)) {
		if len(msgs) == 1 {
			t.Fatalf("FETCH = %+v, envelope %+v", *msgs[0], msgs[0].Envelope)
		}
		t.Fatalf("FETCH = %+v", msgs)
	}
	if got := string(msgs[0].FindBodySection(bs)); got != msg1 {
		t.Fatalf("BODY[] = %q", got)
	}
	flags, _ := c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{Flags: true}).Collect()
	if !hasFlag2(flags[0].Flags, goimap.FlagSeen) {
		t.Fatalf("\\Seen not set after FETCH BODY[]: %v", flags[0].Flags)
	}
	// Partial fetch.
	part := &goimap.FetchItemBodySection{Specifier: goimap.PartSpecifierText, Partial: &goimap.SectionPartial{Offset: 0, Size: 5}, Peek: true}
	msgs, err = c.Fetch(goimap.SeqSetNum(2), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{part}}).Collect()
	if err != nil || string(msgs[0].FindBodySection(part)) != "secon" {
		t.Fatalf("partial fetch: %v %+v", err, msgs)
	}

	// STORE and SEARCH.
	if _, err := c.Store(goimap.SeqSetNum(2), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{goimap.FlagFlagged, "$Work"}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	sr, err := c.UIDSearch(&goimap.SearchCriteria{Flag: []goimap.Flag{goimap.FlagFlagged, "$Work"}}, nil).Wait()
	if err != nil || len(sr.AllUIDs()) != 1 || sr.AllUIDs()[0] != 2 {
		t.Fatalf("UID SEARCH FLAGGED = %v %v", sr, err)
	}
	sr, err = c.Search(&goimap.SearchCriteria{Body: []string{"FIRST BODY"}}, nil).Wait()
	if err != nil || len(sr.AllSeqNums()) != 1 || sr.AllSeqNums()[0] != 1 {
		t.Fatalf("SEARCH BODY = %v %v", sr, err)
	}
	sr, err = c.Search(&goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "From", Value: "alice"}}}, nil).Wait()
	if err != nil || len(sr.AllSeqNums()) != 1 {
		t.Fatalf("SEARCH FROM = %v %v", sr, err)
	}

	// COPY with COPYUID, MOVE, then EXPUNGE.
	cd, err := c.Copy(goimap.SeqSetNum(1), "Work/Projects").Wait()
	if err != nil || cd.UIDValidity == 0 || cd.DestUIDs.String() != "1" {
		t.Fatalf("COPY = %+v %v", cd, err)
	}
	if _, err := c.Copy(goimap.SeqSetNum(1), "Nope").Wait(); err == nil || !strings.Contains(err.Error(), "TRYCREATE") {
		t.Fatalf("COPY to a missing mailbox: %v", err)
	}
	md, err := c.Move(goimap.SeqSetNum(2), "Work/Projects").Wait()
	if err != nil || md.DestUIDs.String() != "2" {
		t.Fatalf("MOVE = %+v %v", md, err)
	}
	if _, err := c.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.Expunge().Collect()
	if err != nil || len(exp) != 1 || exp[0] != 1 {
		t.Fatalf("EXPUNGE = %v %v", exp, err)
	}
	st, err := c.Status("Work/Projects", &goimap.StatusOptions{NumMessages: true, UIDNext: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 2 || st.UIDNext != 3 || *st.NumUnseen != 1 {
		t.Fatalf("STATUS = %+v %v", st, err)
	}
	// The moved message kept its keyword.
	if _, err := c.Select("Work/Projects", &goimap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	fl, _ := c.Fetch(goimap.UIDSetNum(2), &goimap.FetchOptions{Flags: true}).Collect()
	if len(fl) != 1 || !hasFlag2(fl[0].Flags, "$Work") || !hasFlag2(fl[0].Flags, goimap.FlagFlagged) {
		t.Fatalf("moved flags: %+v", fl)
	}
	if _, err := c.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Collect(); err == nil {
		t.Fatal("STORE in a read-only mailbox accepted")
	}
	// APPEND with flags and date.
	body := "Subject: appended\r\n\r\nx\r\n"
	ac := c.Append("INBOX", int64(len(body)), &goimap.AppendOptions{Flags: []goimap.Flag{goimap.FlagDraft}})
	io.WriteString(ac, body)
	ac.Close()
	ad, err := ac.Wait()
	if err != nil || ad.UID != 3 {
		t.Fatalf("APPEND = %+v %v", ad, err)
	}
	if err := c.Rename("Work", "Old", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Old").Wait(); err == nil {
		t.Fatal("DELETE of a mailbox with children accepted")
	}
	if err := c.Delete("Old/Projects").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

func hasAttr(attrs []goimap.MailboxAttr, a goimap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

func hasFlag2(flags []goimap.Flag, f goimap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// TestIdleAnnouncesDelivery: a message delivered while a client idles is
// announced with EXISTS; an expunge by another session reaches it too.
func TestIdleAnnouncesDelivery(t *testing.T) {
	ts := startServer(t)
	ts.deliver(t, "Subject: before\r\n\r\nx\r\n")
	exists := make(chan uint32, 10)
	expunged := make(chan uint32, 10)
	c := loggedIn(t, ts.addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
		Expunge: func(seq uint32) { expunged <- seq },
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	ts.deliver(t, "Subject: during idle\r\n\r\nx\r\n")
	select {
	case n := <-exists:
		if n != 2 {
			t.Fatalf("EXISTS %d", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no EXISTS while idling")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// Another session deletes message 1; this one learns at NOOP.
	c2 := loggedIn(t, ts.addr, nil)
	c2.Select("INBOX", nil).Wait()
	c2.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Collect()
	if _, err := c2.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-expunged:
		if seq != 1 {
			t.Fatalf("EXPUNGE %d", seq)
		}
	default:
		t.Fatal("no EXPUNGE after NOOP")
	}
	msgs, err := c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "during idle" {
		t.Fatalf("after expunge: %+v %v", msgs, err)
	}
}

func TestPythonImaplibAndCurl(t *testing.T) {
	ts := startServer(t)
	ts.deliver(t, msg1)
	ts.deliver(t, "Subject: second\r\n\r\nsecond body\r\n")
	host, port, _ := net.SplitHostPort(ts.addr)
	script := `
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=10)
try:
    m.login(sys.argv[3], "bad")
    raise SystemExit("bad password accepted")
except imaplib.IMAP4.error:
    pass
m.login(sys.argv[3], sys.argv[4])
typ, data = m.list()
assert typ == "OK" and any(b'"INBOX"' in d or b' INBOX' in d for d in data), data
typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"2", data
typ, data = m.fetch("1", "(RFC822)")
assert b"first body" in data[0][1], data
typ, data = m.store("2", "+FLAGS", "(\\Flagged)")
assert typ == "OK", data
typ, data = m.search(None, "FLAGGED")
assert data[0] == b"2", data
typ, data = m.create("Archive2")
assert typ == "OK", data
typ, data = m.uid("MOVE", "2", "Archive2")
assert typ == "OK", data
typ, data = m.store("1", "+FLAGS", "(\\Deleted)")
typ, data = m.expunge()
assert data[-1] == b"1", data  # the MOVE's EXPUNGE 2 comes first
typ, data = m.status("Archive2", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], data
typ, data = m.create("../escape")
assert typ == "NO", data
m.logout()
print("OK")
`
	out, err := exec.Command("python3", "-c", script, host, port, user, pass).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	ts.deliver(t, "Subject: for curl\r\n\r\ncurl imap body\r\n")
	b, err := exec.Command("curl", "-sS", "--max-time", "20", "-u", user+":"+pass, "imap://"+ts.addr+"/INBOX;UID=3").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "curl imap body") {
		t.Fatalf("curl imap: %v %q", err, b)
	}
}

// TestFetchHeaderOnly: FETCH items that need only the header read the
// file up to the blank line; the answers are the same as from the whole
// message, for a header longer than one read and for an empty header.
func TestFetchHeaderOnly(t *testing.T) {
	ts := startServer(t)
	long := "Subject: long\r\nX-Long: " + strings.Repeat("y", 6000) + "\r\nFrom: a@b.test\r\n\r\nthe body\r\n"
	ts.deliver(t, long)
	ts.deliver(t, "\r\nno header at all\r\n")
	c := loggedIn(t, ts.addr, nil)
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	hdr := &goimap.FetchItemBodySection{Specifier: goimap.PartSpecifierHeader, Peek: true}
	fields := &goimap.FetchItemBodySection{Specifier: goimap.PartSpecifierHeader, HeaderFields: []string{"From"}, Peek: true}
	full := &goimap.FetchItemBodySection{Peek: true}
	opts := &goimap.FetchOptions{Envelope: true, BodySection: []*goimap.FetchItemBodySection{hdr, fields}}
	msgs, err := c.Fetch(goimap.SeqSetNum(1, 2), opts).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("fetch: %d %v", len(msgs), err)
	}
	whole, err := c.Fetch(goimap.SeqSetNum(1, 2), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{full}}).Collect()
	if err != nil || len(whole) != 2 {
		t.Fatalf("fetch: %d %v", len(whole), err)
	}
	m := string(whole[0].FindBodySection(full))
	wantHdr := m[:strings.Index(m, "\r\n\r\n")+4]
	if got := string(msgs[0].FindBodySection(hdr)); got != wantHdr {
		t.Errorf("BODY[HEADER] of a long header: %d bytes, want %d", len(got), len(wantHdr))
	}
	if got := string(msgs[0].FindBodySection(fields)); got != "From: a@b.test\r\n\r\n" {
		t.Errorf("BODY[HEADER.FIELDS (FROM)] = %q", got)
	}
	if msgs[0].Envelope == nil || msgs[0].Envelope.Subject != "long" {
		t.Errorf("envelope %+v", msgs[0].Envelope)
	}
	// The second time, the headers come from the cache: the same answers.
	again, err := c.Fetch(goimap.SeqSetNum(1, 2), opts).Collect()
	if err != nil || len(again) != 2 {
		t.Fatalf("fetch: %d %v", len(again), err)
	}
	for i := range again {
		for _, bs := range []*goimap.FetchItemBodySection{hdr, fields} {
			if a, b := again[i].FindBodySection(bs), msgs[i].FindBodySection(bs); string(a) != string(b) {
				t.Errorf("message %d from the cache: %q, first %q", i+1, a, b)
			}
		}
	}
	if !strings.HasPrefix(string(whole[1].FindBodySection(full)), "\r\nno header") {
		t.Fatalf("second message %q", whole[1].FindBodySection(full))
	}
	if got := string(msgs[1].FindBodySection(hdr)); got != "\r\n" {
		t.Errorf("BODY[HEADER] of a message without header = %q", got)
	}
}
