package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Resolver finds mail exchangers; *net.Resolver is one.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options configure a Queue; zero values are documented per field.
type Options struct {
	// Dir is the queue partition.
	Dir      string
	Hostname string
	Resolver Resolver
	// Port is the SMTP port of remote exchangers (0: 25).
	Port int
	// RetryPeriod is how long a message is retried (0: 5 days).
	RetryPeriod time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts
	// (0: 5 minutes and 1 hour); it doubles after each attempt.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds each connection and command (0: 5 minutes).
	Timeout time.Duration
	// Bounce delivers a notification to a local sender.
	Bounce func(to string, msg []byte) error
	// Attempted, if set, is told the outcome of each recipient's attempt
	// ("sent", "deferred" or "failed", also when the retry period ended)
	// and how long the exchange with the domain's exchangers took
	// (metrics).
	Attempted func(outcome string, took time.Duration)
	Logger    *slog.Logger
}

// Queue is the outbound queue.
type Queue struct {
	opts Options
	kick chan struct{}
	mu   sync.Mutex // one delivery run at a time
}

// Recipient is one recipient's state.
type Recipient struct {
	Address string `json:"address"`
	// State is "pending", "sent" or "failed".
	State  string `json:"state"`
	Status string `json:"status,omitempty"` // last reply, e.g. "550 5.1.1 no such user"
	Remote string `json:"remote,omitempty"` // exchanger that answered
}

// Envelope is the queue entry beside the message file.
type Envelope struct {
	ID          string      `json:"id"`
	From        string      `json:"from"`
	Recipients  []Recipient `json:"recipients"`
	Created     time.Time   `json:"created"`
	Attempts    int         `json:"attempts"`
	NextAttempt time.Time   `json:"next_attempt"`
}

// Open opens (creating) the queue directory.
func Open(opts Options) (*Queue, error) {
	if opts.Port == 0 {
		opts.Port = 25
	}
	if opts.RetryPeriod == 0 {
		opts.RetryPeriod = 5 * 24 * time.Hour
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 5 * time.Minute
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = time.Hour
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	for _, sub := range []string{"tmp", "msg"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	// Leftovers of writes that never got their 250 are dropped.
	if ents, err := os.ReadDir(filepath.Join(opts.Dir, "tmp")); err == nil {
		for _, e := range ents {
			os.Remove(filepath.Join(opts.Dir, "tmp", e.Name()))
		}
	}
	return &Queue{opts: opts, kick: make(chan struct{}, 1)}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeSynced(path string, data []byte) error {
	_, err := writeSyncedFrom(path, bytes.NewReader(data))
	return err
}

// writeSyncedFrom writes what r holds to path, streaming, and fsyncs it.
func writeSyncedFrom(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return n, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return n, err
	}
	return n, f.Close()
}

// Enqueue stores the message msg holds (read as it is written, never
// whole in memory) for the recipients. A nil error means the message and
// its envelope are durable on the queue partition.
func (q *Queue) Enqueue(from string, rcpts []string, msg io.Reader) (string, error) {
	var b [10]byte
	rand.Read(b[:])
	id := time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
	env := Envelope{ID: id, From: from, Created: time.Now().UTC(), NextAttempt: time.Now().UTC()}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, Recipient{Address: r, State: "pending"})
	}
	ej, _ := json.Marshal(env)
	tmp, dst := filepath.Join(q.opts.Dir, "tmp"), filepath.Join(q.opts.Dir, "msg")
	size, err := writeSyncedFrom(filepath.Join(tmp, id+".eml"), msg)
	if err != nil {
		os.Remove(filepath.Join(tmp, id+".eml"))
		return "", fmt.Errorf("queue: %w", err)
	}
	if err := writeSynced(filepath.Join(tmp, id+".json"), ej); err != nil {
		return "", fmt.Errorf("queue: %w", err)
	}
	// The message goes first: an envelope in msg/ always has its message.
	if err := os.Rename(filepath.Join(tmp, id+".eml"), filepath.Join(dst, id+".eml")); err != nil {
		return "", fmt.Errorf("queue: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, id+".json"), filepath.Join(dst, id+".json")); err != nil {
		return "", fmt.Errorf("queue: %w", err)
	}
	if err := syncDir(dst); err != nil {
		return "", fmt.Errorf("queue: fsync: %w", err)
	}
	q.opts.Logger.Info("queued", "id", id, "from", from, "rcpts", len(rcpts), "size", size)
	q.Kick()
	return id, nil
}

// Kick wakes the delivery loop.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Entries lists the queued envelopes, oldest first.
func (q *Queue) Entries() ([]Envelope, error) {
	dir := filepath.Join(q.opts.Dir, "msg")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var out []Envelope
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var env Envelope
		if json.Unmarshal(b, &env) == nil && env.ID+".json" == e.Name() {
			out = append(out, env)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Run delivers due messages until ctx ends, waking on Kick and when the
// earliest deferred message is due (at least every minute).
func (q *Queue) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		q.RunOnce(ctx)
		wait := time.Minute
		if envs, err := q.Entries(); err == nil {
			for _, env := range envs {
				wait = min(wait, max(time.Until(env.NextAttempt), 10*time.Millisecond))
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-q.kick:
			t.Stop() // since Go 1.23, Reset after Stop never sees a stale tick
		}
	}
}

// Len counts the queued messages without reading them.
func (q *Queue) Len() (int, error) {
	ents, err := os.ReadDir(filepath.Join(q.opts.Dir, "msg"))
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	return n, nil
}

// RunOnce attempts every message whose next attempt is due.
func (q *Queue) RunOnce(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	envs, err := q.Entries()
	if err != nil {
		return err
	}
	now := time.Now()
	for _, env := range envs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if env.NextAttempt.After(now) {
			continue
		}
		if err := q.attempt(ctx, env); err != nil {
			q.opts.Logger.Error("queue attempt", "id", env.ID, "err", err)
		}
	}
	return nil
}

func (q *Queue) paths(id string) (msg, env string) {
	dir := filepath.Join(q.opts.Dir, "msg")
	return filepath.Join(dir, id+".eml"), filepath.Join(dir, id+".json")
}

func (q *Queue) attempt(ctx context.Context, env Envelope) error {
	msgPath, envPath := q.paths(env.ID)
	msg, err := os.ReadFile(msgPath)
	if err != nil {
		return err
	}
	byDomain := map[string][]int{}
	for i, r := range env.Recipients {
		if r.State == "pending" {
			_, d, _ := strings.Cut(r.Address, "@")
			byDomain[strings.ToLower(d)] = append(byDomain[strings.ToLower(d)], i)
		}
	}
	domains := make([]string, 0, len(byDomain))
	for d := range byDomain {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	took := map[int]time.Duration{}
	for _, d := range domains {
		start := time.Now()
		q.deliverDomain(ctx, &env, d, byDomain[d], msg)
		for _, i := range byDomain[d] {
			took[i] = time.Since(start)
		}
	}
	env.Attempts++
	expired := time.Since(env.Created) >= q.opts.RetryPeriod
	pending := 0
	for i := range env.Recipients {
		r := &env.Recipients[i]
		if r.State == "pending" && expired {
			r.State = "failed"
			r.Status = expiredPrefix + q.opts.RetryPeriod.String() + ": " + r.Status
		}
		if r.State == "pending" {
			pending++
		}
		if d, ok := took[i]; ok {
			outcome := r.State
			if outcome == "pending" {
				outcome = "deferred"
			}
			q.opts.Logger.Info(outcome, "id", env.ID, "rcpt", r.Address, "remote", r.Remote, "status", r.Status)
			if q.opts.Attempted != nil {
				q.opts.Attempted(outcome, d)
			}
		}
	}
	if pending > 0 {
		backoff := q.opts.MinBackoff << min(env.Attempts-1, 20)
		if backoff > q.opts.MaxBackoff || backoff <= 0 {
			backoff = q.opts.MaxBackoff
		}
		env.NextAttempt = time.Now().UTC().Add(backoff)
		b, _ := json.Marshal(env)
		tmp := envPath + ".tmp"
		if err := writeSynced(tmp, b); err != nil {
			return err
		}
		if err := os.Rename(tmp, envPath); err != nil {
			return err
		}
		return syncDir(filepath.Dir(envPath))
	}
	// Every recipient has a final state: notify the sender of failures,
	// then forget the message.
	if err := q.bounce(env, msg); err != nil {
		// Keep the entry; the next run tries the notification again.
		return fmt.Errorf("bounce: %w", err)
	}
	os.Remove(envPath)
	os.Remove(msgPath)
	q.opts.Logger.Info("done", "id", env.ID, "attempts", env.Attempts)
	return syncDir(filepath.Dir(envPath))
}

// exchangers returns the hosts to try for a domain, by preference; a domain
// without MX records is its own exchanger (RFC 5321 5.1).
func (q *Queue) exchangers(ctx context.Context, domain string) ([]string, error) {
	mxs, err := q.opts.Resolver.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		return nil, err
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	var hosts []string
	for _, mx := range mxs {
		h := strings.TrimSuffix(mx.Host, ".")
		if h == "" {
			return nil, ErrNullMX
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		hosts = []string{domain}
	}
	return hosts, nil
}

// ErrNullMX is the lookup of a domain that publishes a null MX: it
// accepts no mail, so its recipients fail at once (556 5.1.10).
var ErrNullMX = errors.New("domain accepts no mail (null MX, RFC 7505)")

func (q *Queue) deliverDomain(ctx context.Context, env *Envelope, domain string, idx []int, msg []byte) {
	setAll := func(state, status, remote string) {
		for _, i := range idx {
			if env.Recipients[i].State == "pending" {
				env.Recipients[i].State, env.Recipients[i].Status, env.Recipients[i].Remote = state, status, remote
			}
		}
	}
	hosts, err := q.exchangers(ctx, domain)
	if err != nil {
		setAll("pending", "DNS: "+err.Error(), "")
		if errors.Is(err, ErrNullMX) {
			setAll("failed", "556 5.1.10 "+err.Error(), "")
		}
		return
	}
	var lastErr string
	for _, h := range hosts {
		addrs, err := q.opts.Resolver.LookupHost(ctx, h)
		if err != nil {
			lastErr = "DNS " + h + ": " + err.Error()
			continue
		}
		for _, a := range addrs {
			err := q.send(ctx, env, idx, net.JoinHostPort(a, strconv.Itoa(q.opts.Port)), h, msg)
			if err == nil {
				return
			}
			lastErr = err.Error()
		}
	}
	setAll("pending", lastErr, "")
}

// send talks to one exchanger. It returns nil once every recipient of idx
// has a final or temporary status from that host.
func (q *Queue) send(ctx context.Context, env *Envelope, idx []int, addr, host string, msg []byte) error {
	d := net.Dialer{Timeout: q.opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(q.opts.Timeout))
	conn, err = q.startTLS(conn, host)
	if err != nil {
		return err
	}
	c := gosmtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(q.opts.Hostname); err != nil {
		return err
	}
	if err := c.Mail(env.From, &gosmtp.MailOptions{Size: int64(len(msg))}); err != nil {
		return err
	}
	var accepted []int
	for _, i := range idx {
		r := &env.Recipients[i]
		err := c.Rcpt(r.Address, nil)
		var se *gosmtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, i)
		case errors.As(err, &se) && se.Code >= 500:
			r.State, r.Status, r.Remote = "failed", smtpStatus(se), host
		case errors.As(err, &se):
			r.Status, r.Remote = smtpStatus(se), host
		default:
			return err
		}
	}
	if len(accepted) == 0 {
		c.Quit()
		return nil
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, bytes.NewReader(msg)); err != nil {
		return err
	}
	err = w.Close()
	var se *gosmtp.SMTPError
	for _, i := range accepted {
		r := &env.Recipients[i]
		switch {
		case err == nil:
			r.State, r.Status, r.Remote = "sent", "250", host
		case errors.As(err, &se) && se.Code >= 500:
			r.State, r.Status, r.Remote = "failed", smtpStatus(se), host
		case errors.As(err, &se):
			r.Status, r.Remote = smtpStatus(se), host
		default:
			return err
		}
	}
	c.Quit()
	return nil
}

func smtpStatus(se *gosmtp.SMTPError) string {
	s := strconv.Itoa(se.Code)
	if se.EnhancedCode != (gosmtp.EnhancedCode{}) && se.EnhancedCode != gosmtp.NoEnhancedCode {
		s += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return s + " " + se.Message
}

// startTLS speaks the greeting, EHLO and, when offered, STARTTLS on the raw
// connection (opportunistic TLS, RFC 3207 without a policy: encrypt when we
// can, without refusing an exchanger whose certificate we cannot check).
// It returns a connection that replays a greeting, so that the SMTP client
// starts afresh with its own EHLO, as RFC 3207 requires after TLS.
func (q *Queue) startTLS(conn net.Conn, host string) (net.Conn, error) {
	br := bufio.NewReader(conn)
	greeting, err := readReply(br)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.HasPrefix(greeting, "220") {
		conn.Close()
		return nil, fmt.Errorf("greeting: %s", strings.TrimSpace(greeting))
	}
	fmt.Fprintf(conn, "EHLO %s\r\n", q.opts.Hostname)
	ehlo, err := readReply(br)
	if err != nil {
		conn.Close()
		return nil, err
	}
	replay := "220 " + host + "\r\n"
	if !strings.HasPrefix(ehlo, "250") || !strings.Contains(strings.ToUpper(ehlo), "STARTTLS") {
		// No TLS: replay the greeting; the client's EHLO comes again.
		return &replayConn{Conn: conn, r: io.MultiReader(strings.NewReader(replay), br)}, nil
	}
	fmt.Fprint(conn, "STARTTLS\r\n")
	if rep, err := readReply(br); err != nil || !strings.HasPrefix(rep, "220") {
		conn.Close()
		return nil, fmt.Errorf("STARTTLS refused: %q %w", rep, err)
	}
	if br.Buffered() > 0 {
		conn.Close()
		return nil, errors.New("data after the STARTTLS reply")
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, err
	}
	return &replayConn{Conn: tc, r: io.MultiReader(strings.NewReader(replay), tc)}, nil
}

// readReply reads one (possibly multi-line) SMTP reply.
func readReply(br *bufio.Reader) (string, error) {
	var all strings.Builder
	for i := 0; i < 100; i++ {
		l, err := br.ReadString('\n')
		if err != nil {
			return all.String(), err
		}
		all.WriteString(l)
		if len(l) < 4 || l[3] != '-' {
			return all.String(), nil
		}
	}
	return all.String(), errors.New("reply too long")
}

type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
