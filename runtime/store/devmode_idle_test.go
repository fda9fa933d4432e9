package store

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/internal/testutil"
)

// TestDevModeIdleWithGoIMAP: go-imap's client idles on the -dev instance's
// INBOX and is told of a message delivered over SMTP meanwhile.
func TestDevModeIdleWithGoIMAP(t *testing.T) {
	testutil.Long(t)
	d := startDev(t, t.TempDir())
	user, pass := d.info["user"], d.info["password"]

	exists := make(chan uint32, 10)
	c, err := imapclient.DialInsecure(d.info["imap"], &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(m *imapclient.UnilateralDataMailbox) {
			if m.NumMessages != nil {
				exists <- *m.NumMessages
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	before := sel.NumMessages
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	msg := "Subject: during idle\r\n\r\nhello\r\n"
	sc, err := gosmtp.Dial(d.info["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.SendMail("a@remote.test", []string{user}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	sc.Quit()
	select {
	case n := <-exists:
		if n != before+1 {
			t.Fatalf("EXISTS %d, want %d", n, before+1)
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
}
