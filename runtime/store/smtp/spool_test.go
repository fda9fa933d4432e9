package smtp

import (
	"bufio"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"testing"
)

// TestSpoolShare: beyond MaxSpoolBytes, a session holding more than its
// share has its message refused (452 4.3.1) while a small message still
// goes through, even with the big transfer stalled beside it; every
// message arrives through an unlinked file, so the spool directory stays
// empty.
func TestSpoolShare(t *testing.T) {
	spoolDir := t.TempDir()
	ts := startServer(t, func(o *Options) {
		o.MaxMessageBytes = 4 << 20
		o.MaxSpoolBytes = 1 << 20
		o.SpoolDir = spoolDir
	})
	big := strings.Repeat(strings.Repeat("y", 998)+"\r\n", 3<<10) // 3 MB
	err := smtp.SendMail(ts.addr, nil, "a@remote.test", []string{"bob@example.org"}, []byte("Subject: big\r\n\r\n"+big))
	if err == nil || !strings.Contains(err.Error(), "452") || !strings.Contains(err.Error(), "4.3.1") {
		t.Fatalf("a message over the whole spool: %v, want 452 4.3.1", err)
	}
	// A big transfer that stalls in the middle of its data…
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, cmd := range []string{"", "EHLO x", "MAIL FROM:<a@remote.test>", "RCPT TO:<bob@example.org>", "DATA"} {
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if len(l) < 4 || l[3] != '-' {
				break
			}
		}
	}
	fmt.Fprint(c, big)
	// …does not keep a small one out.
	if err := smtp.SendMail(ts.addr, nil, "b@remote.test", []string{"bob@example.org"}, []byte("Subject: small\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("a small message beside a stalled big one: %v", err)
	}
	if got := ts.inbox(t, "bob@example.org"); len(got) != 1 || !strings.Contains(got[0], "Subject: small") {
		t.Errorf("bob's inbox: %d messages, want the small one only", len(got))
	}
	if ents, _ := os.ReadDir(spoolDir); len(ents) != 0 {
		t.Errorf("the spool directory holds %d files, want none (unlinked while in use)", len(ents))
	}
}

// TestHopLimit: a message with more Received: fields than MaxHops (50, as
// Postfix) is a loop, refused with 554 5.4.6; 50 pass. Fields are counted
// in the header only, in any case, not in folded lines or the body.
func TestHopLimit(t *testing.T) {
	ts := startServer(t, nil)
	msg := func(n int) []byte {
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i%2 == 0 {
				fmt.Fprintf(&b, "Received: from hop%d.example\r\n\tby next.example; Mon, 7 Dec 2026 10:00:00 +0000\r\n", i)
			} else {
				fmt.Fprintf(&b, "RECEIVED: from hop%d.example by next.example; Mon, 7 Dec 2026 10:00:00 +0000\r\n", i)
			}
		}
		b.WriteString("Subject: hops\r\n X-Folded: Received: not a field\r\n\r\n")
		for i := 0; i < 100; i++ {
			b.WriteString("Received: in the body, not counted\r\n")
		}
		return []byte(b.String())
	}
	if err := smtp.SendMail(ts.addr, nil, "a@remote.test", []string{"bob@example.org"}, msg(50)); err != nil {
		t.Errorf("50 hops: %v, want accepted", err)
	}
	err := smtp.SendMail(ts.addr, nil, "a@remote.test", []string{"bob@example.org"}, msg(51))
	if err == nil || !strings.Contains(err.Error(), "554") || !strings.Contains(err.Error(), "5.4.6") {
		t.Errorf("51 hops: %v, want 554 5.4.6", err)
	}
	if got := ts.inbox(t, "bob@example.org"); len(got) != 1 {
		t.Errorf("bob's inbox holds %d messages, want the one of 50 hops", len(got))
	}
}

func FuzzHopCounter(f *testing.F) {
	f.Add([]byte("Received: a\r\nreceived:b\r\n\r\nReceived: c\r\n"), 3)
	f.Add([]byte("X: y\r\n\tReceived: folded\r\n"), 1)
	f.Fuzz(func(t *testing.T, msg []byte, split int) {
		var whole, parts hopCounter
		whole.Write(msg)
		split = int(uint(split) % uint(len(msg)+1))
		parts.Write(msg[:split])
		parts.Write(msg[split:])
		if whole.n != parts.n || whole.n > strings.Count(strings.ToLower(string(msg)), "received:") {
			t.Fatalf("%q: %d whole, %d in two writes", msg, whole.n, parts.n)
		}
	})
}
