package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
	"github.com/mailfleet/mailfleet/runtime/store/proxyhdr"
)

// Directory tells which addresses are accounts; see auth.Directory. An
// account homed on another instance is an auth.ErrElsewhere error, which
// RCPT answers with 451 4.4.0.
type Directory interface {
	Lookup(ctx context.Context, address string) (string, bool, error)
}

// Options configure a Server; zero values are documented per field.
type Options struct {
	// Hostname is used in the greeting and the Received: header.
	Hostname  string
	Store     *maildir.Store
	Directory Directory
	// Domains, when not empty, restricts recipients to these domains.
	Domains []string
	// DomainServed, if set, decides instead of Domains (domains managed
	// through the admin API).
	DomainServed func(domain string) bool
	// LMTP speaks LMTP (RFC 2033) with a status per recipient.
	LMTP      bool
	TLSConfig *tls.Config
	// MaxMessageBytes (0: 50 MiB), MaxRecipients (0: 100), MaxLineLength
	// (0: 2000, RFC 5321 asks for at least 1000).
	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineLength   int
	// Timeout bounds each read and write (0: 5 minutes, RFC 5321 4.5.3.2).
	Timeout time.Duration
	// Relay, if set, says whether a connection from peer (the TCP peer,
	// not the client a PROXY header names) may hand over mail for other
	// domains: the front-end routers, for mail their authenticated users
	// send (authenticated: the account the front-end's PROXY header
	// names, "" for none). Such recipients go to Enqueue, durably, before
	// the 250.
	Relay   func(peer net.Addr, authenticated string) bool
	Enqueue func(from string, rcpts []string, msg io.Reader) error
	// SpoolDir holds each message while it arrives (an unlinked temporary
	// file, so nothing is left behind by a crash): memory per connection
	// stays one small buffer whatever the message's size. Empty: the
	// system's temporary directory.
	SpoolDir string
	// MaxSpoolBytes bounds what all the sessions together hold in
	// SpoolDir at a time (0: 8 × MaxMessageBytes). Once it is reached,
	// a session that holds more than its share of it (MaxSpoolBytes over
	// the sessions spooling) has the rest of its message read and dropped,
	// and the message refused with 452 4.3.1; a small message still goes
	// through, so that clients that stall big transfers cannot keep the
	// others out.
	MaxSpoolBytes int64
	// MaxHops bounds the Received: header fields of a message (0: 50, as
	// Postfix's hopcount_limit): more is a mail loop, refused with 554
	// 5.4.6.
	MaxHops int
	// Refuse, if set, may refuse an account temporarily (being moved).
	Refuse func(address string) error
	// Hold, if set, is called with the recipients' accounts (their
	// maildir.Account addresses) once the message is read, just before it
	// is written to their mailboxes: it may still refuse them temporarily
	// (an account marked moving since its RCPT was accepted), and release
	// is called once the writes are over. It lets the instance wait for
	// the deliveries under way before it exports an account.
	Hold func(addresses []string) (release func(), err error)
	// Delivered, if set, is told of each delivery (metrics).
	Delivered func(address string, size int64, took time.Duration, err error)
	// Rejected, if set, is told why a recipient was refused (metrics):
	// relay_denied, unknown_user, directory_unavailable, elsewhere,
	// moving, quota, bad_address or error.
	Rejected func(reason string)
	Logger   *slog.Logger
}

// Server is a delivery listener.
type Server struct {
	opts Options
	srv  *gosmtp.Server
	// spooled is what the sessions hold in SpoolDir now, spooling how
	// many sessions are reading a message into it.
	spooled, spooling atomic.Int64
}

// New returns a server.
func New(opts Options) *Server {
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 50 << 20
	}
	if opts.MaxRecipients == 0 {
		opts.MaxRecipients = 100
	}
	if opts.MaxLineLength == 0 {
		opts.MaxLineLength = 2000
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.MaxHops == 0 {
		opts.MaxHops = 50
	}
	if opts.MaxSpoolBytes == 0 {
		opts.MaxSpoolBytes = 8 * opts.MaxMessageBytes
	}
	s := &Server{opts: opts}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(s.newSession))
	srv.Domain = opts.Hostname
	srv.LMTP = opts.LMTP
	srv.TLSConfig = opts.TLSConfig
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	srv.MaxLineLength = opts.MaxLineLength
	srv.ReadTimeout = opts.Timeout
	srv.WriteTimeout = opts.Timeout
	srv.ErrorLog = slogLogger{opts.Logger}
	s.srv = srv
	return s
}

type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Printf(format string, v ...interface{}) { l.l.Error(fmt.Sprintf(format, v...)) }
func (l slogLogger) Println(v ...interface{})               { l.l.Error(fmt.Sprint(v...)) }

// Serve accepts connections on l. After Shutdown it returns
// ErrServerClosed.
func (s *Server) Serve(l net.Listener) error { return s.srv.Serve(l) }

// ErrServerClosed is what Serve returns once the server is shut down.
var ErrServerClosed = gosmtp.ErrServerClosed

// Shutdown stops accepting and waits for the running transactions until
// ctx ends; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error { return s.srv.Close() }

// rcpt is one accepted recipient account with the RCPT TO arguments that
// named it (LMTP reports a status per argument).
type rcpt struct {
	acct *maildir.Account
	args []string
}

type session struct {
	s      *Server
	conn   *gosmtp.Conn
	id     string
	log    *slog.Logger
	from   string
	rcpts  []*rcpt
	relay  []string // recipients in other domains, for the queue
	peer   net.Addr
	tlsOn  bool
	remote string
}

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	var b [8]byte
	rand.Read(b[:])
	_, tlsOn := c.TLSConnectionState()
	remote := c.Conn().RemoteAddr().String()
	id := hex.EncodeToString(b[:])
	if fe := proxyhdr.SessionID(c.Conn()); fe != "" {
		id = fe // the front-end's session id ties its log to ours
	}
	return &session{s: s, conn: c, id: id, tlsOn: tlsOn, remote: remote, peer: proxyhdr.Peer(c.Conn()),
		log: s.opts.Logger.With("session", id, "remote", remote, "proto", s.proto())}, nil
}

func (s *Server) proto() string {
	if s.opts.LMTP {
		return "lmtp"
	}
	return "smtp"
}

func smtpErr(code int, ec gosmtp.EnhancedCode, msg string) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

func (ss *session) Reset()        { ss.from, ss.rcpts, ss.relay = "", nil, nil }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	if from != "" {
		if _, err := mail.ParseAddress("<" + from + ">"); err != nil {
			return smtpErr(553, gosmtp.EnhancedCode{5, 1, 7}, "Malformed sender address")
		}
	}
	ss.from, ss.rcpts, ss.relay = from, nil, nil
	return nil
}

func (ss *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	err := ss.rcpt(to)
	var se *gosmtp.SMTPError
	if ss.s.opts.Rejected != nil && errors.As(err, &se) {
		ss.s.opts.Rejected(rejectReason(se))
	}
	return err
}

// rejectReason names a RCPT refusal for metrics, from its enhanced code.
func rejectReason(se *gosmtp.SMTPError) string {
	switch se.EnhancedCode {
	case gosmtp.EnhancedCode{5, 7, 1}:
		return "relay_denied"
	case gosmtp.EnhancedCode{5, 1, 1}:
		return "unknown_user"
	case gosmtp.EnhancedCode{4, 4, 3}:
		return "directory_unavailable"
	case gosmtp.EnhancedCode{4, 4, 0}:
		return "elsewhere"
	case gosmtp.EnhancedCode{4, 2, 1}:
		return "moving"
	case gosmtp.EnhancedCode{4, 2, 2}:
		return "quota"
	case gosmtp.EnhancedCode{5, 1, 3}:
		return "bad_address"
	}
	return "error"
}

func (ss *session) rcpt(to string) error {
	addr, err := mail.ParseAddress("<" + to + ">")
	if err != nil {
		return smtpErr(501, gosmtp.EnhancedCode{5, 1, 3}, "Malformed recipient address")
	}
	_, domain, _ := strings.Cut(addr.Address, "@")
	if served := ss.s.opts.DomainServed; served != nil && !served(domain) ||
		served == nil && len(ss.s.opts.Domains) > 0 && !containsFold(ss.s.opts.Domains, domain) {
		if ss.s.opts.Relay != nil && ss.s.opts.Enqueue != nil && ss.s.opts.Relay(ss.peer, proxyhdr.Authenticated(ss.conn.Conn())) {
			ss.relay = append(ss.relay, addr.Address)
			return nil
		}
		return smtpErr(550, gosmtp.EnhancedCode{5, 7, 1}, "Relaying denied: not a domain of this instance")
	}
	if _, _, err := maildir.SplitAddress(addr.Address); err != nil {
		return smtpErr(550, gosmtp.EnhancedCode{5, 1, 1}, "No such user here")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	canon, ok, err := ss.s.opts.Directory.Lookup(ctx, addr.Address)
	if errors.Is(err, auth.ErrElsewhere) {
		// Temporary: right after a move, a front-end whose lookup cache
		// still names this instance routes here; the retry reaches the
		// new home. A 250 here would strand the message.
		ss.log.Info("recipient homed on another instance", "rcpt", addr.Address, "err", err)
		return smtpErr(451, gosmtp.EnhancedCode{4, 4, 0}, "Mailbox temporarily unavailable: "+err.Error())
	}
	if err != nil {
		ss.log.Warn("directory lookup failed", "rcpt", addr.Address, "err", err)
		return smtpErr(451, gosmtp.EnhancedCode{4, 4, 3}, "Directory temporarily unavailable")
	}
	if !ok {
		return smtpErr(550, gosmtp.EnhancedCode{5, 1, 1}, "No such user here")
	}
	if ss.s.opts.Refuse != nil {
		if err := ss.s.opts.Refuse(canon); err != nil {
			return smtpErr(451, gosmtp.EnhancedCode{4, 2, 1}, "Mailbox temporarily unavailable: "+err.Error())
		}
	}
	acct, err := ss.s.opts.Store.Account(canon)
	if err != nil {
		ss.log.Error("open account", "rcpt", canon, "err", err)
		return smtpErr(451, gosmtp.EnhancedCode{4, 3, 0}, "Mailbox temporarily unavailable")
	}
	if err := acct.CheckQuota(0); errors.Is(err, maildir.ErrQuota) {
		return smtpErr(452, gosmtp.EnhancedCode{4, 2, 2}, "Mailbox full")
	} else if err != nil {
		return smtpErr(451, gosmtp.EnhancedCode{4, 3, 0}, "Mailbox temporarily unavailable")
	}
	for _, r := range ss.rcpts {
		if r.acct == acct {
			r.args = append(r.args, to) // a duplicate recipient gets one copy
			return nil
		}
	}
	ss.rcpts = append(ss.rcpts, &rcpt{acct: acct, args: []string{to}})
	return nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// spool is a message being handed over, in an unlinked temporary file.
type spool struct {
	f    *os.File
	size int64
	s    *Server
}

// reader reads the message from its start; readers do not disturb each
// other.
func (m *spool) reader() io.Reader { return io.NewSectionReader(m.f, 0, m.size) }

// close gives the file and its share of MaxSpoolBytes back.
func (m *spool) close() {
	m.f.Close()
	m.s.spooled.Add(-m.size)
}

// readMessage spools the data to a temporary file as it arrives (go-smtp
// bounds it by MaxMessageBytes). Beyond MaxSpoolBytes for all sessions
// together the rest is read and dropped, and the message refused (452).
func (ss *session) readMessage(r io.Reader) (*spool, error) {
	f, err := os.CreateTemp(ss.s.opts.SpoolDir, "data-")
	if err != nil {
		ss.log.Error("spool", "err", err)
		io.Copy(io.Discard, r)
		return nil, smtpErr(451, gosmtp.EnhancedCode{4, 3, 0}, "Local error in processing, try again later")
	}
	os.Remove(f.Name()) // the open file stays until close
	m := &spool{f: f, s: ss.s}
	w := &spoolWriter{m: m}
	hops := &hopCounter{}
	ss.s.spooling.Add(1)
	_, err = io.CopyBuffer(io.MultiWriter(w, hops), r, make([]byte, 32<<10))
	ss.s.spooling.Add(-1)
	switch {
	case err != nil:
	case hops.n > ss.s.opts.MaxHops:
		err = smtpErr(554, gosmtp.EnhancedCode{5, 4, 6}, "Too many hops (a mail loop?)")
		ss.log.Info("too many hops, message refused", "from", ss.from, "received", hops.n)
	case w.full:
		err = smtpErr(452, gosmtp.EnhancedCode{4, 3, 1}, "Insufficient system storage, try again later")
		ss.log.Info("spool full, message refused", "from", ss.from)
	}
	if err != nil {
		m.close()
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, smtpErr(451, gosmtp.EnhancedCode{4, 3, 0}, "Error reading message")
	}
	return m, nil
}

// spoolWriter writes to the spool while the server's total allows it, or
// while its session holds no more than its share of MaxSpoolBytes; then it
// drops what comes (full).
type spoolWriter struct {
	m    *spool
	full bool
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.full {
		return len(p), nil
	}
	s, n := w.m.s, int64(len(p))
	if s.spooled.Add(n) > s.opts.MaxSpoolBytes && w.m.size+n > s.opts.MaxSpoolBytes/max(s.spooling.Load(), 1) {
		s.spooled.Add(-n)
		w.full = true
		return len(p), nil
	}
	written, err := w.m.f.Write(p)
	w.m.size += int64(written)
	s.spooled.Add(int64(written) - n)
	return written, err
}

// hopCounter counts the Received: fields of a message's header as the
// message streams through it (a field's line starts with its name, in any
// case; folded lines start with white space and are not fields).
type hopCounter struct {
	n     int
	done  bool   // past the header
	start []byte // the current line's first bytes, at most len(receivedField)
	long  bool   // the current line has more bytes than start holds
}

var receivedField = []byte("received:")

func (h *hopCounter) Write(p []byte) (int, error) {
	for _, c := range p {
		if h.done {
			break
		}
		if c == '\n' {
			line := h.start
			if !h.long {
				line = bytes.TrimSuffix(line, []byte("\r"))
			}
			switch {
			case len(line) == 0:
				h.done = true // the empty line ends the header
			case len(h.start) == len(receivedField) && bytes.EqualFold(h.start, receivedField):
				h.n++
			}
			h.start, h.long = h.start[:0], false
			continue
		}
		if len(h.start) < len(receivedField) {
			h.start = append(h.start, c)
		} else {
			h.long = true
		}
	}
	return len(p), nil
}

func (ss *session) header(rcpt string) []byte {
	with := "ESMTP"
	if ss.s.opts.LMTP {
		with = "LMTP"
	}
	if ss.tlsOn {
		with += "S"
	}
	host, _, _ := net.SplitHostPort(ss.remote)
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", ss.from)
	fmt.Fprintf(&b, "Delivered-To: %s\r\n", rcpt)
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (mailfleet) with %s id %s\r\n\tfor <%s>; %s\r\n",
		sanitize(ss.conn.Hostname()), host, ss.s.opts.Hostname, with, ss.id, rcpt, time.Now().Format(time.RFC1123Z))
	return b.Bytes()
}

// sanitize keeps a client-supplied HELO name from breaking the header.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' {
			return -1
		}
		return r
	}, s)
	if len(s) > 255 {
		s = s[:255]
	}
	if s == "" {
		s = "unknown"
	}
	return s
}

// deliver stores the message for one account. A nil result means the
// message is durable.
func (ss *session) deliver(acct *maildir.Account, msg *spool) error {
	hdr := ss.header(acct.Address)
	start := time.Now()
	size, err := acct.Inbox().Deliver(io.MultiReader(bytes.NewReader(hdr), msg.reader()),
		maildir.DeliverOptions{MaxSize: ss.s.opts.MaxMessageBytes + int64(len(hdr)) + 1024})
	if ss.s.opts.Delivered != nil {
		ss.s.opts.Delivered(acct.Address, size, time.Since(start), err)
	}
	switch {
	case errors.Is(err, maildir.ErrQuota):
		ss.log.Info("over quota", "rcpt", acct.Address, "size", msg.size)
		return smtpErr(552, gosmtp.EnhancedCode{5, 2, 2}, "Mailbox full")
	case errors.Is(err, maildir.ErrTooBig):
		return gosmtp.ErrDataTooLarge
	case err != nil:
		ss.log.Error("delivery failed", "rcpt", acct.Address, "err", err)
		return smtpErr(451, gosmtp.EnhancedCode{4, 3, 0}, "Local error in processing, try again later")
	}
	ss.log.Info("delivered", "from", ss.from, "rcpt", acct.Address, "size", size)
	return nil
}

// Data delivers to every recipient. With several recipients, a quota
// problem of one fails the whole transaction temporarily (452) before any
// delivery, so that the retry brings no duplicates; LMTP reports each.
func (ss *session) Data(r io.Reader) error {
	msg, err := ss.readMessage(r)
	if err != nil {
		return err
	}
	defer msg.close()
	size := msg.size
	for _, r := range ss.rcpts {
		if err := r.acct.CheckQuota(size); errors.Is(err, maildir.ErrQuota) {
			if len(ss.rcpts) == 1 {
				return smtpErr(552, gosmtp.EnhancedCode{5, 2, 2}, "Mailbox full")
			}
			return smtpErr(452, gosmtp.EnhancedCode{4, 2, 2}, "Mailbox of <"+r.acct.Address+"> full, try again later")
		}
	}
	// Held before the queue takes the relay recipients: a refusal leaves
	// nothing delivered, so the retry brings no duplicate.
	release, err := ss.hold(ss.rcpts...)
	if err != nil {
		return err
	}
	defer release()
	if err := ss.enqueue(msg); err != nil {
		return err
	}
	for _, r := range ss.rcpts {
		if err := ss.deliver(r.acct, msg); err != nil {
			return err
		}
	}
	return nil
}

// hold asks Options.Hold for the accounts of rcpts: an account may have
// been marked moving since its RCPT was accepted, and a message written
// now would miss the copy that is being made of it.
func (ss *session) hold(rcpts ...*rcpt) (func(), error) {
	if ss.s.opts.Hold == nil || len(rcpts) == 0 {
		return func() {}, nil
	}
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = r.acct.Address
	}
	release, err := ss.s.opts.Hold(addrs)
	if err != nil {
		ss.log.Info("delivery refused at end of data", "rcpts", addrs, "err", err)
		if ss.s.opts.Rejected != nil {
			ss.s.opts.Rejected("moving")
		}
		return nil, smtpErr(451, gosmtp.EnhancedCode{4, 2, 1}, "Mailbox temporarily unavailable: "+err.Error())
	}
	return release, nil
}

// LMTPData delivers to each recipient and reports each result.
func (ss *session) LMTPData(r io.Reader, status gosmtp.StatusCollector) error {
	msg, err := ss.readMessage(r)
	if err != nil {
		return err
	}
	defer msg.close()
	for _, r := range ss.rcpts {
		release, err := ss.hold(r)
		if err == nil {
			err = ss.deliver(r.acct, msg)
			release()
		}
		for _, arg := range r.args {
			status.SetStatus(arg, err)
		}
	}
	if len(ss.relay) > 0 {
		err := ss.enqueue(msg)
		for _, r := range ss.relay {
			status.SetStatus(r, err)
		}
	}
	// Every recipient has its status; this only covers a recipient missed
	// by mistake, which must not read as delivered.
	return smtpErr(451, gosmtp.EnhancedCode{4, 3, 0}, "Local error in processing")
}

// enqueue hands the relay recipients to the outbound queue; nil means the
// message is durable there.
func (ss *session) enqueue(msg *spool) error {
	if len(ss.relay) == 0 {
		return nil
	}
	var hdr bytes.Buffer
	host, _, _ := net.SplitHostPort(ss.remote)
	fmt.Fprintf(&hdr, "Received: from %s ([%s])\r\n\tby %s (mailfleet) with ESMTP id %s; %s\r\n",
		sanitize(ss.conn.Hostname()), host, ss.s.opts.Hostname, ss.id, time.Now().Format(time.RFC1123Z))
	if err := ss.s.opts.Enqueue(ss.from, ss.relay, io.MultiReader(&hdr, msg.reader())); err != nil {
		ss.log.Error("enqueue failed", "err", err)
		return smtpErr(451, gosmtp.EnhancedCode{4, 3, 0}, "Local error in processing, try again later")
	}
	ss.log.Info("queued for relay", "from", ss.from, "rcpts", len(ss.relay), "size", msg.size)
	return nil
}
