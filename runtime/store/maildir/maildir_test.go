package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openTestAccount(t *testing.T, root string) *Account {
	t.Helper()
	s, err := Open(root, "test.example")
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Account("User@Example.ORG")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func deliver(t *testing.T, m *Mailbox, body string) {
	t.Helper()
	if _, err := m.Deliver(strings.NewReader(body), DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, m *Mailbox, uid uint32) string {
	t.Helper()
	f, _, err := m.Open(uid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAccountLayout(t *testing.T) {
	root := t.TempDir()
	a := openTestAccount(t, root)
	if a.Address != "user@example.org" {
		t.Fatalf("address %q", a.Address)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(root, "example.org", "user", sub)); err != nil || !fi.IsDir() {
			t.Fatalf("missing %s: %v", sub, err)
		}
	}
	for _, bad := range []string{"../x@example.org", "a/b@example.org", "x@../etc", "x@ex/ample", "noat", "@example.org", "x@", "a..b@example.org", "x@-a.org"} {
		if _, err := a.store.Account(bad); !errors.Is(err, ErrBadAddress) {
			t.Errorf("Account(%q) err = %v, want ErrBadAddress", bad, err)
		}
	}
	accts, err := a.store.Accounts()
	if err != nil || len(accts) != 1 || accts[0] != "user@example.org" {
		t.Fatalf("Accounts() = %v, %v", accts, err)
	}
}

func TestDeliverSyncAndUIDsAcrossRestart(t *testing.T) {
	root := t.TempDir()
	a := openTestAccount(t, root)
	inbox := a.Inbox()
	for i := 1; i <= 3; i++ {
		deliver(t, inbox, fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i))
	}
	msgs, err := inbox.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("got %d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.UID != uint32(i+1) {
			t.Fatalf("message %d has UID %d", i, m.UID)
		}
		want := fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i+1, i+1)
		if got := readAll(t, inbox, m.UID); got != want {
			t.Fatalf("content %q, want %q (bare LF must become CRLF)", got, want)
		}
		if m.Size != int64(len(want)) {
			t.Fatalf("size %d, want %d", m.Size, len(want))
		}
	}
	// Seen messages move from new/ to cur/.
	if ents, _ := os.ReadDir(filepath.Join(root, "example.org", "user", "new")); len(ents) != 0 {
		t.Fatalf("new/ still holds %d files", len(ents))
	}
	st1, _ := inbox.Status()

	// A new process sees the same UIDs and UIDVALIDITY and continues UIDNEXT.
	a2 := openTestAccount(t, root)
	in2 := a2.Inbox()
	deliver(t, in2, "Subject: 4\r\n\r\n4\r\n")
	st2, err := in2.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st2.UIDValidity != st1.UIDValidity || st2.Messages != 4 || st2.UIDNext != 5 {
		t.Fatalf("after restart: %+v, before: %+v", st2, st1)
	}
}

func TestFlagsInFileNamesAndKeywords(t *testing.T) {
	root := t.TempDir()
	a := openTestAccount(t, root)
	in := a.Inbox()
	deliver(t, in, "a\r\n")
	deliver(t, in, "b\r\n")
	if _, err := in.Messages(); err != nil {
		t.Fatal(err)
	}
	out, err := in.SetFlags([]uint32{1}, FlagsAdd, "SF", []string{"$Label1", "bad word"})
	if err != nil || len(out) != 1 || out[0].Flags != "FS" || strings.Join(out[0].Keywords, ",") != "$Label1" {
		t.Fatalf("SetFlags = %+v, %v", out, err)
	}
	if _, err := in.SetFlags([]uint32{1}, FlagsRemove, "F", nil); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "example.org", "user", "cur"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !strings.HasSuffix(strings.Join(names, " "), ":2,S") && !strings.Contains(strings.Join(names, " "), ":2,S ") {
		t.Fatalf("no file with :2,S in %v", names)
	}
	in2 := openTestAccount(t, root).Inbox()
	msgs, err := in2.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].Flags != "S" || len(msgs[0].Keywords) != 1 || msgs[1].Flags != "" {
		t.Fatalf("after restart: %+v", msgs)
	}
}

type recorder struct{ events []string }

func (r *recorder) Appended(total uint32) {
	r.events = append(r.events, fmt.Sprintf("exists %d", total))
}
func (r *recorder) Expunged(seq uint32) { r.events = append(r.events, fmt.Sprintf("expunge %d", seq)) }
func (r *recorder) FlagsChanged(seq uint32, m Message) {
	r.events = append(r.events, fmt.Sprintf("flags %d %s", seq, m.Flags))
}
func (r *recorder) NewMail() { r.events = append(r.events, "newmail") }

func TestExpungeKeepsUIDsAndObserver(t *testing.T) {
	root := t.TempDir()
	in := openTestAccount(t, root).Inbox()
	if _, err := in.Messages(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	in.AddObserver(rec)
	for i := 0; i < 4; i++ {
		deliver(t, in, fmt.Sprintf("m%d\r\n", i))
	}
	if _, err := in.Messages(); err != nil {
		t.Fatal(err)
	}
	if _, err := in.SetFlags([]uint32{2}, FlagsAdd, "T", nil); err != nil {
		t.Fatal(err)
	}
	removed, err := in.Expunge([]uint32{2, 4, 99})
	if err != nil || fmt.Sprint(removed) != "[2 4]" {
		t.Fatalf("Expunge = %v, %v", removed, err)
	}
	want := "newmail newmail newmail newmail exists 4 flags 2 T expunge 4 expunge 2"
	if got := strings.Join(rec.events, " "); got != want {
		t.Fatalf("events %q\nwant   %q", got, want)
	}
	in2 := openTestAccount(t, root).Inbox()
	deliver(t, in2, "m5\r\n")
	msgs, err := in2.Messages()
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	if fmt.Sprint(uids) != "[1 3 5]" {
		t.Fatalf("UIDs after expunge and restart: %v (UIDs must never be reused)", uids)
	}
	u, err := in2.Account().Usage()
	if err != nil || u.Messages != 3 {
		t.Fatalf("usage %+v, %v", u, err)
	}
}

func TestMailboxOperations(t *testing.T) {
	root := t.TempDir()
	a := openTestAccount(t, root)
	for _, n := range []string{"Sent", "Archive/2024", "Mr. Smith"} {
		if err := a.CreateMailbox(n); err != nil {
			t.Fatalf("create %q: %v", n, err)
		}
	}
	if err := a.CreateMailbox("sent"); err != nil {
		t.Fatalf("names are case-sensitive except INBOX: %v", err)
	}
	if err := a.CreateMailbox("Sent"); !errors.Is(err, ErrMailboxExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if err := a.CreateMailbox("inbox"); !errors.Is(err, ErrMailboxExists) {
		t.Fatalf("create INBOX: %v", err)
	}
	for _, bad := range []string{"../../etc", "a/../../b", "x\x01", "\xff"} {
		if err := a.CreateMailbox(bad); !errors.Is(err, ErrBadMailboxName) {
			t.Fatalf("create %q: %v", bad, err)
		}
	}
	list, _ := a.List()
	if got := strings.Join(list, "|"); got != "INBOX|Archive|Archive/2024|Mr. Smith|Sent|sent" {
		t.Fatalf("List = %s", got)
	}
	if err := a.DeleteMailbox("Archive"); !errors.Is(err, ErrHasChildren) {
		t.Fatalf("delete with children: %v", err)
	}
	if err := a.DeleteMailbox("INBOX"); !errors.Is(err, ErrInboxSpecial) {
		t.Fatalf("delete INBOX: %v", err)
	}
	arch, err := a.Mailbox("Archive/2024")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := arch.Append(strings.NewReader("x\r\n"), "S", nil, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), 0); err != nil {
		t.Fatal(err)
	}
	st, _ := arch.Status()
	if err := a.RenameMailbox("Archive", "Old/Archive"); err != nil {
		t.Fatal(err)
	}
	list, _ = a.List()
	if got := strings.Join(list, "|"); got != "INBOX|Mr. Smith|Old|Old/Archive|Old/Archive/2024|Sent|sent" {
		t.Fatalf("List after rename = %s", got)
	}
	if _, err := arch.Messages(); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("old object after rename: %v", err)
	}
	moved, err := a.Mailbox("Old/Archive/2024")
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := moved.Status()
	if st2.UIDValidity != st.UIDValidity || st2.Messages != 1 {
		t.Fatalf("renamed mailbox status %+v, before %+v", st2, st)
	}
	msgs, _ := moved.Messages()
	if !msgs[0].Date.Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) || msgs[0].Flags != "S" {
		t.Fatalf("appended message %+v", msgs[0])
	}
	if err := a.DeleteMailbox("Sent"); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox("Sent"); err != nil {
		t.Fatal(err)
	}
	sent, _ := a.Mailbox("Sent")
	st3, _ := sent.Status()
	if st3.UIDValidity == st.UIDValidity {
		t.Fatalf("re-created mailbox reuses UIDVALIDITY %d", st3.UIDValidity)
	}
	// Nothing but mailbox folders and our files in the account directory.
	ents, _ := os.ReadDir(filepath.Join(root, "example.org", "user"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "creating-") || strings.HasPrefix(e.Name(), "deleting-") {
			t.Fatalf("leftover %s", e.Name())
		}
	}
	// Renaming INBOX moves its messages.
	deliver(t, a.Inbox(), "in\r\n")
	if err := a.RenameMailbox("INBOX", "Saved"); err != nil {
		t.Fatal(err)
	}
	saved, _ := a.Mailbox("Saved")
	if st, _ := saved.Status(); st.Messages != 1 {
		t.Fatalf("Saved has %d messages", st.Messages)
	}
	if st, _ := a.Inbox().Status(); st.Messages != 0 {
		t.Fatalf("INBOX has %d messages after rename", st.Messages)
	}
}

func TestCopyMove(t *testing.T) {
	a := openTestAccount(t, t.TempDir())
	in := a.Inbox()
	deliver(t, in, "one\r\n")
	deliver(t, in, "two\r\n")
	in.Messages()
	in.SetFlags([]uint32{2}, FlagsAdd, "F", []string{"work"})
	a.CreateMailbox("Dest")
	dst, _ := a.Mailbox("Dest")
	src, dstUIDs, err := in.Copy([]uint32{2, 1}, dst)
	if err != nil || fmt.Sprint(src, dstUIDs) != "[2 1] [1 2]" {
		t.Fatalf("Copy = %v %v %v", src, dstUIDs, err)
	}
	if got := readAll(t, dst, 1); got != "two\r\n" {
		t.Fatalf("copied content %q", got)
	}
	msgs, _ := dst.Messages()
	if msgs[0].Flags != "F" || len(msgs[0].Keywords) != 1 {
		t.Fatalf("copied flags %+v", msgs[0])
	}
	res, err := in.Move([]uint32{1}, dst)
	if err != nil || fmt.Sprint(res.SrcUIDs, res.DstUIDs) != "[1] [3]" {
		t.Fatalf("Move = %+v, %v", res, err)
	}
	if st, _ := in.Status(); st.Messages != 1 {
		t.Fatalf("INBOX has %d after move", st.Messages)
	}
	if u, _ := a.Usage(); u.Messages != 4 {
		t.Fatalf("usage %+v", u)
	}
}

func TestQuotaAndSizeLimit(t *testing.T) {
	root := t.TempDir()
	a := openTestAccount(t, root)
	if err := a.SetQuota(Quota{MaxBytes: 100}); err != nil {
		t.Fatal(err)
	}
	in := a.Inbox()
	deliver(t, in, strings.Repeat("x", 60))
	if _, err := in.Deliver(strings.NewReader(strings.Repeat("y", 60)), DeliverOptions{}); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if _, err := in.Deliver(strings.NewReader(strings.Repeat("y", 60)), DeliverOptions{MaxSize: 10, IgnoreQuota: true}); !errors.Is(err, ErrTooBig) {
		t.Fatalf("too big: %v", err)
	}
	if q := openTestAccount(t, root).Quota(); q.MaxBytes != 100 {
		t.Fatalf("quota not persisted: %+v", q)
	}
	for _, sub := range []string{"tmp", "new"} {
		ents, _ := os.ReadDir(filepath.Join(root, "example.org", "user", sub))
		if (sub == "tmp" && len(ents) != 0) || (sub == "new" && len(ents) != 1) {
			t.Fatalf("%s/ holds %d files after refused deliveries", sub, len(ents))
		}
	}
}

func TestCorruptUIDListGetsNewUIDValidity(t *testing.T) {
	root := t.TempDir()
	in := openTestAccount(t, root).Inbox()
	deliver(t, in, "a\r\n")
	st, _ := in.Status()
	os.WriteFile(filepath.Join(root, "example.org", "user", uidListFile), []byte("garbage"), 0o600)
	in2 := openTestAccount(t, root).Inbox()
	st2, err := in2.Status()
	if err != nil || st2.Messages != 1 || st2.UIDValidity == st.UIDValidity {
		t.Fatalf("after corruption: %+v %v (before %+v)", st2, err, st)
	}
}

func TestLeftoverTmpFilesAreInvisible(t *testing.T) {
	root := t.TempDir()
	in := openTestAccount(t, root).Inbox()
	deliver(t, in, "complete\r\n")
	// A writer that died mid-way leaves its file in tmp/.
	os.WriteFile(filepath.Join(root, "example.org", "user", "tmp", "1.M1P1Q1.host"), []byte("Subject: half"), 0o600)
	msgs, err := openTestAccount(t, root).Inbox().Messages()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages %v %v", msgs, err)
	}
}

func TestSubscriptions(t *testing.T) {
	root := t.TempDir()
	a := openTestAccount(t, root)
	a.Subscribe("Sent", true)
	a.Subscribe("inbox", true)
	a.Subscribe("Sent", false)
	subs, err := openTestAccount(t, root).Subscriptions()
	if err != nil || len(subs) != 1 || !subs["INBOX"] {
		t.Fatalf("subscriptions %v %v", subs, err)
	}
}

// TestCrashDuringDelivery runs a delivering child process, kills it with
// SIGKILL while it writes, and checks that every message the child
// acknowledged is present exactly once and intact, and that nothing else is
// visible.
func TestCrashDuringDelivery(t *testing.T) {
	if os.Getenv("MAILDIR_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	root := t.TempDir()
	acked := map[string]bool{}
	for round := 0; round < 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringDelivery$")
		cmd.Env = append(os.Environ(), "MAILDIR_CRASH_CHILD="+root, "MAILDIR_CRASH_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
				acked[id] = true
				n++
				if n == 20+round*7 {
					cmd.Process.Kill()
					break
				}
			}
		}
		cmd.Wait()
		msgs, err := openTestAccount(t, root).Inbox().Messages()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		in := openTestAccount(t, root).Inbox()
		for _, m := range msgs {
			body := readAll(t, in, m.UID)
			id, ok := strings.CutPrefix(strings.SplitN(body, "\r\n", 2)[0], "Message-Id: ")
			if !ok || body != crashBody(id) {
				t.Fatalf("round %d: message UID %d is not intact: %q", round, m.UID, body)
			}
			seen[id]++
		}
		for id := range acked {
			if seen[id] != 1 {
				t.Fatalf("round %d: acknowledged message %s seen %d times", round, id, seen[id])
			}
		}
	}
}

func crashBody(id string) string {
	return "Message-Id: " + id + "\r\n\r\n" + strings.Repeat("0123456789abcdef", 4096) + "\r\nend " + id + "\r\n"
}

func crashChild() {
	s, err := Open(os.Getenv("MAILDIR_CRASH_CHILD"), "child")
	if err != nil {
		panic(err)
	}
	a, _ := s.Account("user@example.org")
	in := a.Inbox()
	for i := 0; ; i++ {
		id := fmt.Sprintf("<%s.%d@test>", os.Getenv("MAILDIR_CRASH_ROUND"), i)
		if _, err := in.Deliver(strings.NewReader(crashBody(id)), DeliverOptions{}); err != nil {
			panic(err)
		}
		fmt.Printf("ACK %s\n", id)
		if i%3 == 0 {
			in.Messages() // a reader syncs concurrently with deliveries
		}
	}
}

// The UID list keeps each message's internal date, so that opening a folder
// needs no stat per message: a reopened folder takes the dates from the
// list, not from the files. A version 1 list (no dates) is read, its UIDs
// kept, and rewritten with the dates.
func TestUIDListKeepsDates(t *testing.T) {
	root := t.TempDir()
	in := openTestAccount(t, root).Inbox()
	deliver(t, in, "a\r\n")
	deliver(t, in, "b\r\n")
	before, err := in.Messages()
	if err != nil || len(before) != 2 {
		t.Fatalf("messages %v %v", before, err)
	}
	dir := filepath.Join(root, "example.org", "user")
	list, _ := os.ReadFile(filepath.Join(dir, uidListFile))
	if !strings.HasPrefix(string(list), "mailfleet-uidlist 2 ") {
		t.Fatalf("list %q", list)
	}
	// Touch the files: a reopened folder must not look at them for dates.
	cur, _ := os.ReadDir(filepath.Join(dir, "cur"))
	later := time.Now().Add(48 * time.Hour)
	for _, e := range cur {
		os.Chtimes(filepath.Join(dir, "cur", e.Name()), later, later)
	}
	after, err := openTestAccount(t, root).Inbox().Messages()
	if err != nil || len(after) != 2 {
		t.Fatalf("reopened: %v %v", after, err)
	}
	for i := range after {
		if after[i].UID != before[i].UID || !after[i].Date.Equal(before[i].Date) {
			t.Errorf("message %d: %+v, was %+v", i, after[i], before[i])
		}
	}

	// A version 1 list: the same UIDs, dates from the files, written down.
	var v1 strings.Builder
	lines := strings.Split(strings.TrimSpace(string(list)), "\n")
	h := strings.Fields(lines[0])
	fmt.Fprintf(&v1, "mailfleet-uidlist 1 %s %s\n", h[2], h[3])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		fmt.Fprintf(&v1, "%s %s %s\n", f[0], f[1], strings.Join(f[3:], " "))
	}
	os.WriteFile(filepath.Join(dir, uidListFile), []byte(v1.String()), 0o600)
	old, err := openTestAccount(t, root).Inbox().Messages()
	if err != nil || len(old) != 2 || old[0].UID != before[0].UID || old[1].UID != before[1].UID {
		t.Fatalf("from a version 1 list: %+v %v", old, err)
	}
	if !old[0].Date.Equal(later) {
		t.Errorf("date from the file %v, want %v", old[0].Date, later)
	}
	if list, _ := os.ReadFile(filepath.Join(dir, uidListFile)); !strings.HasPrefix(string(list), "mailfleet-uidlist 2 ") {
		t.Errorf("the version 1 list was not rewritten: %q", list)
	}
}

// New mail is appended to the UID list, a line each; a last line torn by a
// crash is not read, and the next change rewrites the list whole.
func TestUIDListAppends(t *testing.T) {
	root := t.TempDir()
	in := openTestAccount(t, root).Inbox()
	dir := filepath.Join(root, "example.org", "user")
	list := func() string { b, _ := os.ReadFile(filepath.Join(dir, uidListFile)); return string(b) }
	for i := 0; i < 3; i++ {
		deliver(t, in, fmt.Sprintf("m%d\r\n", i))
		if _, err := in.Status(); err != nil { // a reader looks: UIDs given
			t.Fatal(err)
		}
	}
	l := list()
	lines := strings.Split(strings.TrimSuffix(l, "\n"), "\n")
	if len(lines) != 4 || strings.Count(l, "mailfleet-uidlist") != 1 {
		t.Fatalf("list after three deliveries:\n%s", l)
	}
	// A crash in the middle of an append leaves a torn line.
	os.WriteFile(filepath.Join(dir, uidListFile), []byte(l+"4 1700000000.M1P1Q1.torn 17"), 0o600)
	in2 := openTestAccount(t, root).Inbox()
	msgs, err := in2.Messages()
	if err != nil || len(msgs) != 3 || msgs[0].UID != 1 || msgs[2].UID != 3 {
		t.Fatalf("after a torn line: %+v %v", msgs, err)
	}
	st, _ := in2.Status()
	if st.UIDNext != 4 {
		t.Errorf("UIDNEXT %d after a torn line, want 4", st.UIDNext)
	}
	deliver(t, in2, "m3\r\n")
	msgs, err = in2.Messages()
	if err != nil || len(msgs) != 4 || msgs[3].UID != 4 {
		t.Fatalf("after the next delivery: %+v %v", msgs, err)
	}
	if l := list(); strings.Contains(l, "torn") || !strings.HasSuffix(l, "\n") {
		t.Errorf("the torn line survived:\n%s", l)
	}
	// A reopened folder agrees.
	again, err := openTestAccount(t, root).Inbox().Messages()
	if err != nil || len(again) != 4 || again[3].UID != 4 {
		t.Errorf("reopened: %+v %v", again, err)
	}
}
