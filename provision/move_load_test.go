package provision_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/provision"
	"github.com/mailfleet/mailfleet/provision/provisiontest"
	"github.com/mailfleet/mailfleet/runtime/adminapi"
)

// frontendCacheTTL is the front-ends' positive lookup cache (the
// directory package's default; the dev cluster does not change it). The
// move's drain must outlast it, or a front-end could still route to the
// old home after its copy is gone.
const frontendCacheTTL = 30 * time.Second

// moveLoad sends numbered messages through the balancer and retries each
// on a temporary failure, as an MTA's queue would, until it gets a 250.
type moveLoad struct {
	smtp, rcpt string

	mu     sync.Mutex
	acked  map[string]int // id -> 250s received (must end as 1 each)
	byCode map[string]int // "451 4.2.1" -> count of temporary failures
	netErr int
	fatal  []string

	retries atomic.Int64
}

func (l *moveLoad) ack(id string) {
	l.mu.Lock()
	l.acked[id]++
	l.mu.Unlock()
}

// temporary records one failed attempt and tells whether to try again.
func (l *moveLoad) temporary(id string, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	var se *gosmtp.SMTPError
	switch {
	case errors.As(err, &se) && se.Temporary():
		l.byCode[fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])]++
		l.retries.Add(1)
		return true
	case errors.As(err, &se):
		l.fatal = append(l.fatal, fmt.Sprintf("%s: permanent failure: %v", id, err))
		return false
	default:
		// Loopback: a broken connection should not happen, but an MTA
		// would retry it too (its message was not acknowledged).
		l.netErr++
		l.retries.Add(1)
		return true
	}
}

func message(id string) string {
	return "From: <load@sender.test>\r\nTo: <mover@mailfleet.test>\r\nSubject: load " + id +
		"\r\nX-Load-Id: " + id + "\r\nMessage-Id: <" + id + "@sender.test>\r\n\r\nmessage " + id + "\r\n"
}

// dial opens an SMTP session at the balancer and starts a transaction for
// the account, up to and including RCPT.
func (l *moveLoad) begin() (*gosmtp.Client, error) {
	c, err := gosmtp.Dial(l.smtp)
	if err != nil {
		return nil, err
	}
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	if err := c.Hello("sender.test"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Mail("load@sender.test", nil); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Rcpt(l.rcpt, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// finish sends the data of an open transaction; nil means 250.
func finish(c *gosmtp.Client, id string) error {
	defer c.Close()
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, message(id)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_ = c.Quit()
	return nil
}

// send delivers one message, retrying temporary failures with a backoff
// (20 ms doubling to 500 ms) until a 250; false when it failed for good.
// The first attempt may be a transaction already open up to RCPT.
func (l *moveLoad) send(id string, open *gosmtp.Client) bool {
	backoff := 20 * time.Millisecond
	deadline := time.Now().Add(2 * frontendCacheTTL)
	for {
		c, err := open, error(nil)
		open = nil
		if c == nil {
			c, err = l.begin()
		}
		if err == nil {
			err = finish(c, id)
		}
		if err == nil {
			l.ack(id)
			return true
		}
		if !l.temporary(id, err) {
			return false
		}
		if time.Now().After(deadline) {
			l.mu.Lock()
			l.fatal = append(l.fatal, fmt.Sprintf("%s: still refused after %v: %v", id, 2*frontendCacheTTL, err))
			l.mu.Unlock()
			return false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

type seen struct {
	uid   goimap.UID
	flags []string
}

// readInbox logs in to an instance's IMAP listener and returns the
// INBOX's UIDVALIDITY and its messages by X-Load-Id (a list: a duplicate
// shows as two).
func readInbox(t *testing.T, addr, user, pass string, edit func(*imapclient.Client, map[string][]seen)) (uint32, map[string][]seen) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN at %s: %v", addr, err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]seen{}
	if sel.NumMessages > 0 {
		hdr := &goimap.FetchItemBodySection{Specifier: goimap.PartSpecifierHeader, HeaderFields: []string{"X-Load-Id"}, Peek: true}
		msgs, err := c.Fetch(goimap.SeqSet{goimap.SeqRange{Start: 1, Stop: 0}},
			&goimap.FetchOptions{UID: true, Flags: true, BodySection: []*goimap.FetchItemBodySection{hdr}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != int(sel.NumMessages) {
			t.Fatalf("FETCH 1:* gave %d messages, SELECT said %d", len(msgs), sel.NumMessages)
		}
		for _, m := range msgs {
			h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(m.FindBodySection(hdr)))).ReadMIMEHeader()
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("UID %d: header: %v", m.UID, err)
			}
			id := h.Get("X-Load-Id")
			if id == "" {
				t.Fatalf("UID %d has no X-Load-Id", m.UID)
			}
			var fl []string
			for _, f := range m.Flags {
				fl = append(fl, strings.ToLower(string(f)))
			}
			sort.Strings(fl)
			got[id] = append(got[id], seen{uid: m.UID, flags: fl})
		}
	}
	if edit != nil {
		edit(c, got)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	return sel.UIDValidity, got
}

// TestMoveUnderLoad moves an account while mail keeps arriving for it
// through the balancer: every message that got a 250 is on the new home
// exactly once, the messages from before keep their UIDs, UIDVALIDITY
// and flags, and the old home holds nothing. One transaction is held open
// across the move (RCPT accepted by the old home before it was marked
// moving, DATA sent after the directory names the new home), as a slow
// client does: it must be refused for a retry, not accepted into the copy
// that is about to be removed.
func TestMoveUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the front-ends' lookup cache (30 s)")
	}
	dev := provisiontest.Start(t, addrBase)
	ss := open(t, dev.Topology)
	watch := open(t, dev.Topology) // the slow client's view of the directory
	ctx := context.Background()
	const addr, pass = "mover@mailfleet.test", "m0ve-pass"
	if _, err := ss.Add(ctx, provision.AddRequest{Address: addr, Password: pass, Instance: "inst1"}); err != nil {
		t.Fatal(err)
	}
	l := &moveLoad{smtp: dev.Info.SMTP, rcpt: addr, acked: map[string]int{}, byCode: map[string]int{}}

	// Before: five messages, two of them flagged over IMAP.
	for i := range 5 {
		if !l.send(fmt.Sprintf("pre-%d", i), nil) {
			t.Fatalf("pre-move delivery: %v", l.fatal)
		}
	}
	inst1, inst2 := dev.Info.Instances["inst1"], dev.Info.Instances["inst2"]
	flagged := map[string][]goimap.Flag{
		"pre-1": {goimap.FlagFlagged, "$Work"},
		"pre-3": {goimap.FlagSeen, goimap.FlagAnswered},
	}
	validity, before := readInbox(t, inst1.IMAP, addr, pass, func(c *imapclient.Client, got map[string][]seen) {
		for id, fl := range flagged {
			if _, err := c.Store(goimap.UIDSetNum(got[id][0].uid), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: fl}, nil).Collect(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if len(before) != 5 {
		t.Fatalf("inst1 holds %d messages before the move, want 5", len(before))
	}
	_, before = readInbox(t, inst1.IMAP, addr, pass, nil)
	for id, fl := range flagged {
		if len(before[id][0].flags) != len(fl) {
			t.Fatalf("%s flags %v after STORE, want %v", id, before[id][0].flags, fl)
		}
	}

	// The slow client: its RCPT is accepted by inst1 before the move.
	slow, err := l.begin()
	if err != nil {
		t.Fatalf("the slow transaction's RCPT: %v", err)
	}

	// The load: three senders, each its own numbered messages, paced.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var afterMove atomic.Bool
	var sentAfter [3]atomic.Int64
	for s := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				moved := afterMove.Load()
				if !l.send(fmt.Sprintf("s%d-%d", s, n), nil) {
					return
				}
				if moved {
					sentAfter[s].Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	// The slow client sends its data once the directory names inst2.
	var slowFirst error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			es, err := watch.Conn.Find(addr)
			if err == nil && len(es) == 1 && watch.InstanceOf(es[0].MailHost) == "inst2" {
				break
			}
			select {
			case <-stop:
				slow.Close()
				l.mu.Lock()
				l.fatal = append(l.fatal, "the directory never named inst2")
				l.mu.Unlock()
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		err := finish(slow, "slow")
		slowFirst = err
		switch {
		case err == nil:
			l.ack("slow")
		case l.temporary("slow", err):
			l.send("slow", nil)
		}
	}()

	waitAcked := func(n int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			l.mu.Lock()
			got, fatal := len(l.acked), len(l.fatal)
			l.mu.Unlock()
			if got >= n {
				return
			}
			if fatal > 0 || time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%d messages accepted, waited for %d: %v", got, n, l.fatal)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcked(5+15, 20*time.Second) // the load is flowing

	drain := frontendCacheTTL + 3*time.Second
	start := time.Now()
	res, err := ss.Move(ctx, addr, "inst2", drain)
	took := time.Since(start)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("move under load: %v (senders: %v)", err, l.fatal)
	}
	afterMove.Store(true)
	// Keep sending a little: every sender gets mail in on the new home.
	deadline := time.Now().Add(20 * time.Second)
	for sentAfter[0].Load() < 5 || sentAfter[1].Load() < 5 || sentAfter[2].Load() < 5 {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(l.fatal) > 0 {
		t.Fatalf("senders: %v", l.fatal)
	}
	for s := range sentAfter {
		if n := sentAfter[s].Load(); n < 5 {
			t.Fatalf("sender %d got only %d messages in after the move", s, n)
		}
	}
	// inst1 accepted its RCPT before the mark; its DATA, after the
	// switch, must not land in inst1's copy: a 451 sends it again.
	var se *gosmtp.SMTPError
	if !errors.As(slowFirst, &se) || se.Code != 451 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 2, 1}) {
		t.Errorf("the transaction held open across the move: DATA answered %v, want 451 4.2.1 (its account moved meanwhile)", slowFirst)
	}
	if l.acked["slow"] != 1 {
		t.Fatalf("the slow transaction was acknowledged %d times", l.acked["slow"])
	}

	// After: the account lives on inst2 only.
	acc, err := ss.Show(ctx, addr)
	if err != nil || acc.Instance != "inst2" || acc.Problem != "" {
		t.Fatalf("show after the move: %+v %v", acc, err)
	}
	if _, err := ss.Instances["inst1"].Account(ctx, addr); !errors.Is(err, adminapi.ErrNotFound) {
		t.Fatalf("inst1 still has the mailbox: %v", err)
	}
	newValidity, after := readInbox(t, inst2.IMAP, addr, pass, nil)

	var lost, dup, unexpected []string
	for id, n := range l.acked {
		if n != 1 {
			dup = append(dup, fmt.Sprintf("%s acknowledged %d times", id, n))
		}
		switch len(after[id]) {
		case 1:
		case 0:
			lost = append(lost, id)
		default:
			dup = append(dup, fmt.Sprintf("%s stored %d times", id, len(after[id])))
		}
	}
	for id := range after {
		if l.acked[id] == 0 {
			unexpected = append(unexpected, id)
		}
	}
	sort.Strings(lost)
	sort.Strings(dup)
	sort.Strings(unexpected)
	if len(lost)+len(dup)+len(unexpected) > 0 {
		t.Errorf("%d acknowledged, %d stored on inst2; lost %v; duplicated %v; stored without a 250 %v",
			len(l.acked), len(after), lost, dup, unexpected)
	}
	if len(after) != len(l.acked) || int64(len(after)) != acc.Mailbox.Usage.Messages {
		t.Errorf("count: %d acknowledged, %d read over IMAP on inst2, %d in its usage",
			len(l.acked), len(after), acc.Mailbox.Usage.Messages)
	}

	// The messages from before keep UIDVALIDITY, UIDs and flags; the new
	// ones come after them.
	if newValidity != validity {
		t.Errorf("UIDVALIDITY %d on inst2, %d before", newValidity, validity)
	}
	var maxBefore goimap.UID
	for id, b := range before {
		a := after[id]
		if len(a) == 0 {
			continue
		}
		if a[0].uid != b[0].uid || !slices.Equal(a[0].flags, b[0].flags) {
			t.Errorf("%s: UID %d flags %v on inst2, UID %d flags %v before", id, a[0].uid, a[0].flags, b[0].uid, b[0].flags)
		}
		maxBefore = max(maxBefore, b[0].uid)
	}
	uids := map[goimap.UID]string{}
	for id, a := range after {
		for _, m := range a {
			if other, ok := uids[m.uid]; ok {
				t.Errorf("UID %d is both %s and %s", m.uid, other, id)
			}
			uids[m.uid] = id
			if _, old := before[id]; !old && m.uid <= maxBefore {
				t.Errorf("%s got UID %d, not above the moved messages' %d", id, m.uid, maxBefore)
			}
		}
	}
	mustCheck(t, ss)

	codes := make([]string, 0, len(l.byCode))
	for c, n := range l.byCode {
		codes = append(codes, fmt.Sprintf("%s ×%d", c, n))
	}
	sort.Strings(codes)
	t.Logf("move %s -> %s took %v (drain %v), %d messages moved; %d messages acknowledged (%d before the move), %d stored on inst2; %d retries: temporary failures %v, connection errors %d",
		res.From, res.To, took.Round(time.Millisecond), drain, res.Messages, len(l.acked), len(before), len(after),
		l.retries.Load(), codes, l.netErr)
	t.Logf("the transaction held open across the move: DATA answered %v, then sent again", slowFirst)
}
