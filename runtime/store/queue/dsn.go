package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// replyCode finds the enhanced status code of an SMTP reply ("450 4.3.0 …").
var replyCode = regexp.MustCompile(`^[245]\d\d ([245])\.(\d{1,3})\.(\d{1,3})\b`)

// expiredPrefix starts the status of a recipient given up after the retry
// period: "expired after 5d0h0m0s: <last reply or error>".
const expiredPrefix = "expired after "

// lastReply is the exchanger's reply within a recipient's status.
func lastReply(status string) string {
	if rest, ok := strings.CutPrefix(status, expiredPrefix); ok {
		if _, reply, ok := strings.Cut(rest, ": "); ok {
			return reply
		}
	}
	return status
}

// dsnStatus is the RFC 3463 status of a failed recipient. A permanent
// failure keeps the exchanger's code; a recipient given up after the retry
// period keeps the last transient code (as Postfix does), or 4.4.7
// (delivery time expired) when no exchanger gave one.
func dsnStatus(status string) string {
	m := replyCode.FindStringSubmatch(lastReply(status))
	switch {
	case strings.HasPrefix(status, expiredPrefix) && m != nil && m[1] == "4":
		return "4." + m[2] + "." + m[3]
	case strings.HasPrefix(status, expiredPrefix):
		return "4.4.7"
	case m != nil:
		return "5." + m[2] + "." + m[3] // the final outcome is a failure
	}
	return "5.0.0"
}

// bounce sends the sender a delivery status notification (RFC 3464) for
// the failed recipients. Nothing is sent for the null sender, so that a
// notification never causes another.
func (q *Queue) bounce(env Envelope, msg []byte) error {
	var failed []Recipient
	for _, r := range env.Recipients {
		if r.State == "failed" {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 || env.From == "" || q.opts.Bounce == nil {
		return nil
	}
	return q.opts.Bounce(env.From, q.dsn(env, failed, msg))
}

func (q *Queue) dsn(env Envelope, failed []Recipient, msg []byte) []byte {
	var rb [8]byte
	rand.Read(rb[:])
	boundary := "dsn-" + hex.EncodeToString(rb[:])
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", q.opts.Hostname)
	w("To: <%s>", env.From)
	w("Subject: Undelivered Mail Returned to Sender")
	w("Date: %s", time.Now().Format(time.RFC1123Z))
	w("Message-Id: <%s.dsn@%s>", env.ID, q.opts.Hostname)
	w("Auto-Submitted: auto-replied")
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status; boundary=%q", boundary)
	w("")
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("")
	w("Your message could not be delivered to these recipients:")
	w("")
	for _, r := range failed {
		w("  <%s>: %s", r.Address, r.Status)
	}
	w("")
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", q.opts.Hostname)
	w("X-Mailfleet-Queue-Id: %s", env.ID)
	w("Arrival-Date: %s", env.Created.Format(time.RFC1123Z))
	for _, r := range failed {
		w("")
		w("Final-Recipient: rfc822; %s", r.Address)
		w("Action: failed")
		w("Status: %s", dsnStatus(r.Status))
		if r.Remote != "" {
			w("Remote-MTA: dns; %s", r.Remote)
			w("Diagnostic-Code: smtp; %s", lastReply(r.Status))
		}
	}
	w("")
	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		b.Write(msg[:i+2])
	} else {
		b.Write(msg)
		b.WriteString("\r\n")
	}
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}
