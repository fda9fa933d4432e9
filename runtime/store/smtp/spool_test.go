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
