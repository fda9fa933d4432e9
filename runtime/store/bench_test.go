package store

// Benchmarks of the store's hot paths, in process, on the test machine's
// disk with fsync on. Run: go test -run '^$' -bench . ./runtime/store
// (for profiles: add -cpuprofile). The comparison with Postfix and Dovecot
// is bench/store/run.sh.

import (
	"crypto/sha512"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/imap"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
	"github.com/mailfleet/mailfleet/runtime/store/smtp"
)

type benchEnv struct {
	store    *maildir.Store
	smtpAddr string
	imapAddr string
}

// newBenchEnv starts SMTP and IMAP on one store. Passwords use {SSHA512}
// so that IMAP session figures measure the server, not bcrypt's cost
// (which is about 50 ms a login by design).
func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	st, err := maildir.Open(filepath.Join(dir, "storage"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	salt := []byte("benchsal")
	sum := sha512.Sum512(append([]byte("pw"), salt...))
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte("user@example.org:{SSHA512}"+base64.StdEncoding.EncodeToString(append(sum[:], salt...))+"\n"), 0o600)
	d, err := auth.NewPasswdFile(passwd)
	if err != nil {
		b.Fatal(err)
	}
	ss := smtp.New(smtp.Options{Hostname: "bench", Store: st, Directory: d})
	is := imap.New(imap.Options{Store: st, Auth: d})
	l1, _ := net.Listen("tcp", "127.0.0.1:0")
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	go ss.Serve(l1)
	go is.Serve(l2)
	b.Cleanup(func() { ss.Close(); is.Close() })
	return &benchEnv{store: st, smtpAddr: l1.Addr().String(), imapAddr: l2.Addr().String()}
}

var msg10k = "Subject: bench\r\nFrom: a@remote.test\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 100)

func benchSMTP(b *testing.B, senders int) {
	env := newBenchEnv(b)
	b.SetBytes(int64(len(msg10k)))
	b.ResetTimer()
	var wg sync.WaitGroup
	jobs := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := gosmtp.Dial(env.smtpAddr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			c.Hello("bench")
			for range jobs {
				if err := c.SendMail("a@remote.test", []string{"user@example.org"}, strings.NewReader(msg10k)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkSMTPDelivery10KB1Sender(b *testing.B)   { benchSMTP(b, 1) }
func BenchmarkSMTPDelivery10KB16Senders(b *testing.B) { benchSMTP(b, 16) }

func fill(b *testing.B, env *benchEnv, n int) {
	a, _ := env.store.Account("user@example.org")
	for i := 0; i < n; i++ {
		if _, err := a.Inbox().Deliver(strings.NewReader(msg10k), maildir.DeliverOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIMAPSession: connect, login, select, fetch 10 messages, logout.
func BenchmarkIMAPSession(b *testing.B) {
	env := newBenchEnv(b)
	fill(b, env, 10)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := imapclient.DialInsecure(env.imapAddr, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Login("user@example.org", "pw").Wait(); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			b.Fatal(err)
		}
		bs := &goimap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(goimap.SeqSet{goimap.SeqRange{Start: 1, Stop: 10}}, &goimap.FetchOptions{Flags: true, BodySection: []*goimap.FetchItemBodySection{bs}}).Collect()
		if err != nil || len(msgs) != 10 {
			b.Fatalf("fetch: %d %v", len(msgs), err)
		}
		c.Logout().Wait()
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkIMAPFetch1000: FETCH 1:* (FLAGS UID RFC822.SIZE BODY.PEEK[HEADER])
// over 1,000 messages in one selected session.
func BenchmarkIMAPFetch1000(b *testing.B) {
	env := newBenchEnv(b)
	fill(b, env, 1000)
	c, err := imapclient.DialInsecure(env.imapAddr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Login("user@example.org", "pw").Wait()
	c.Select("INBOX", nil).Wait()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hs := &goimap.FetchItemBodySection{Specifier: goimap.PartSpecifierHeader, Peek: true}
		msgs, err := c.Fetch(goimap.SeqSet{goimap.SeqRange{Start: 1, Stop: 0}}, &goimap.FetchOptions{Flags: true, UID: true, RFC822Size: true, BodySection: []*goimap.FetchItemBodySection{hs}}).Collect()
		if err != nil || len(msgs) != 1000 {
			b.Fatalf("fetch: %d %v", len(msgs), err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkIMAPFetch1000Full: FETCH 1:* (FLAGS UID BODY.PEEK[]) over 1,000
// messages of 10 KB in one selected session.
func BenchmarkIMAPFetch1000Full(b *testing.B) {
	env := newBenchEnv(b)
	fill(b, env, 1000)
	c, err := imapclient.DialInsecure(env.imapAddr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Login("user@example.org", "pw").Wait()
	c.Select("INBOX", nil).Wait()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bs := &goimap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(goimap.SeqSet{goimap.SeqRange{Start: 1, Stop: 0}}, &goimap.FetchOptions{Flags: true, UID: true, BodySection: []*goimap.FetchItemBodySection{bs}}).Collect()
		if err != nil || len(msgs) != 1000 {
			b.Fatalf("fetch: %d %v", len(msgs), err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "msgs/s")
}
