package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
	"github.com/mailfleet/mailfleet/runtime/store/proxyhdr"
)

// Authenticator checks credentials; see auth.Directory.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (string, error)
}

// Options configure a Server. Zero values are documented per field.
type Options struct {
	// Hostname appears in the greeting.
	Hostname string
	Store    *maildir.Store
	Auth     Authenticator
	// TLSConfig enables STLS; with it set, USER/PASS and AUTH are refused on
	// a connection that is not under TLS unless AllowInsecureAuth is true.
	TLSConfig         *tls.Config
	AllowInsecureAuth bool
	// MaxLineLength bounds a command line (0: 1024 bytes).
	MaxLineLength int
	// IdleTimeout ends a silent session (0: 10 minutes, RFC 1939's minimum).
	IdleTimeout time.Duration
	// FailedLoginDelay is waited before answering a failed login (0: config.DefaultFailedLoginDelay).
	FailedLoginDelay time.Duration
	// MaxAuthFailures closes the connection after that many failures (0: 3).
	MaxAuthFailures int
	// Refuse, if set, may refuse a login for an authenticated account with
	// a temporary error (an account being moved to another instance).
	Refuse func(address string) error
	Logger *slog.Logger
}

// Server serves POP3 sessions.
type Server struct {
	opts Options

	mu        sync.Mutex
	locked    map[string]bool
	listeners map[net.Listener]bool
	conns     map[net.Conn]bool
	closed    bool
	wg        sync.WaitGroup
}

// New returns a server.
func New(opts Options) *Server {
	if opts.MaxLineLength == 0 {
		opts.MaxLineLength = 1024
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 10 * time.Minute
	}
	if opts.FailedLoginDelay == 0 {
		opts.FailedLoginDelay = config.DefaultFailedLoginDelay
	}
	if opts.MaxAuthFailures == 0 {
		opts.MaxAuthFailures = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	return &Server{opts: opts, locked: map[string]bool{}, listeners: map[net.Listener]bool{}, conns: map[net.Conn]bool{}}
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("pop3: server closed")

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = true
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops the listeners and ends the sessions. A session in the middle
// of its QUIT finishes removing messages first.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		// Wake blocked reads; the session then closes itself.
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) lock(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked[addr] {
		return false
	}
	s.locked[addr] = true
	return true
}

func (s *Server) unlock(addr string) {
	s.mu.Lock()
	delete(s.locked, addr)
	s.mu.Unlock()
}

type session struct {
	s        *Server
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	tls      bool
	user     string // from USER
	failures int
	log      *slog.Logger

	// Transaction state.
	addr    string
	mbox    *maildir.Mailbox
	msgs    []maildir.Message
	deleted []bool
	uv      uint32
}

var errLineTooLong = errors.New("line too long")

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	ss := &session{s: s, conn: c, r: bufio.NewReaderSize(c, 4096), w: bufio.NewWriter(c),
		log: s.opts.Logger.With("remote", c.RemoteAddr().String(), "proto", "pop3", "session", proxyhdr.SessionID(c))}
	_, ss.tls = c.(*tls.Conn)
	defer func() {
		if ss.addr != "" {
			s.unlock(ss.addr)
		}
	}()
	ss.reply("+OK %s POP3 ready", s.opts.Hostname)
	badCommands := 0
	for {
		if err := ss.w.Flush(); err != nil {
			return
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			ss.reply("-ERR [SYS/TEMP] server shutting down")
			ss.w.Flush()
			return
		}
		line, err := ss.readLine()
		if errors.Is(err, errLineTooLong) {
			ss.reply("-ERR line too long")
			if badCommands++; badCommands > 10 {
				ss.reply("-ERR too many bad commands")
				ss.w.Flush()
				return
			}
			continue
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.mu.Lock()
				closed := s.closed
				s.mu.Unlock()
				if closed {
					ss.reply("-ERR [SYS/TEMP] server shutting down")
				} else {
					ss.reply("-ERR autologout: idle for too long")
				}
				ss.w.Flush()
			}
			return
		}
		cmd, err := ParseCommand(line)
		if err != nil {
			ss.reply("-ERR %v", err)
			if badCommands++; badCommands > 10 {
				ss.reply("-ERR too many bad commands")
				ss.w.Flush()
				return
			}
			continue
		}
		if !ss.handle(cmd) {
			ss.w.Flush()
			return
		}
	}
}

// readLine reads one CRLF- (or LF-) terminated line, refusing lines longer
// than the limit after discarding them whole.
func (ss *session) readLine() (string, error) {
	ss.conn.SetReadDeadline(time.Now().Add(ss.s.opts.IdleTimeout))
	var buf []byte
	tooLong := false
	for {
		chunk, err := ss.r.ReadSlice('\n')
		if !tooLong {
			buf = append(buf, chunk...)
			if len(buf) > ss.s.opts.MaxLineLength+2 {
				tooLong, buf = true, nil
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if tooLong {
		return "", errLineTooLong
	}
	return strings.TrimRight(string(buf), "\r\n"), nil
}

func (ss *session) reply(format string, args ...any) {
	fmt.Fprintf(ss.w, format+"\r\n", args...)
}

// handle runs one command; false ends the session.
func (ss *session) handle(cmd Command) bool {
	if ss.mbox == nil {
		return ss.handleAuthorization(cmd)
	}
	return ss.handleTransaction(cmd)
}

func (ss *session) plaintextAllowed() bool {
	return ss.tls || ss.s.opts.TLSConfig == nil || ss.s.opts.AllowInsecureAuth
}

func (ss *session) capa() {
	ss.reply("+OK capability list follows")
	ss.reply("TOP")
	ss.reply("UIDL")
	ss.reply("RESP-CODES")
	ss.reply("AUTH-RESP-CODE")
	ss.reply("PIPELINING")
	if ss.mbox == nil && ss.plaintextAllowed() {
		ss.reply("USER")
		ss.reply("SASL PLAIN")
	}
	if ss.mbox == nil && ss.s.opts.TLSConfig != nil && !ss.tls {
		ss.reply("STLS")
	}
	ss.reply("IMPLEMENTATION mailfleet")
	ss.reply(".")
}

const msgPlaintext = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connection, use STLS first"

func (ss *session) handleAuthorization(cmd Command) bool {
	switch cmd.Name {
	case "CAPA":
		ss.capa()
	case "QUIT":
		ss.reply("+OK bye")
		return false
	case "NOOP":
		ss.reply("+OK")
	case "STLS":
		if ss.s.opts.TLSConfig == nil {
			ss.reply("-ERR STLS not available")
			return true
		}
		if ss.tls {
			ss.reply("-ERR already under TLS")
			return true
		}
		if ss.r.Buffered() > 0 {
			// Commands pipelined before the handshake would be injected
			// into the protected session (CVE-2011-0411 style).
			ss.reply("-ERR pipelined data after STLS")
			return false
		}
		ss.reply("+OK begin TLS negotiation")
		ss.w.Flush()
		tc := tls.Server(ss.conn, ss.s.opts.TLSConfig)
		tc.SetDeadline(time.Now().Add(time.Minute))
		if err := tc.Handshake(); err != nil {
			ss.log.Info("tls handshake failed", "err", err)
			return false
		}
		tc.SetDeadline(time.Time{})
		ss.s.mu.Lock()
		delete(ss.s.conns, ss.conn)
		ss.s.conns[tc] = true
		ss.s.mu.Unlock()
		ss.conn, ss.tls, ss.user = tc, true, ""
		ss.r = bufio.NewReaderSize(tc, 4096)
		ss.w = bufio.NewWriter(tc)
	case "USER":
		if !ss.plaintextAllowed() {
			ss.reply(msgPlaintext)
			return true
		}
		if len(cmd.Args) != 1 {
			ss.reply("-ERR usage: USER name")
			return true
		}
		ss.user = cmd.Args[0]
		ss.reply("+OK send PASS")
	case "PASS":
		if !ss.plaintextAllowed() {
			ss.reply(msgPlaintext)
			return true
		}
		if ss.user == "" {
			ss.reply("-ERR USER first")
			return true
		}
		user := ss.user
		ss.user = ""
		return ss.login(user, cmd.Rest)
	case "AUTH":
		return ss.auth(cmd)
	case "STAT", "LIST", "UIDL", "TOP", "RETR", "DELE", "RSET":
		ss.reply("-ERR not authenticated")
	default:
		ss.reply("-ERR unknown command")
	}
	return true
}

func (ss *session) auth(cmd Command) bool {
	if len(cmd.Args) == 0 {
		ss.reply("+OK mechanisms follow")
		if ss.plaintextAllowed() {
			ss.reply("PLAIN")
		}
		ss.reply(".")
		return true
	}
	if !strings.EqualFold(cmd.Args[0], "PLAIN") {
		ss.reply("-ERR unsupported mechanism")
		return true
	}
	if !ss.plaintextAllowed() {
		ss.reply(msgPlaintext)
		return true
	}
	if len(cmd.Args) > 2 {
		ss.reply("-ERR usage: AUTH PLAIN [initial-response]")
		return true
	}
	resp := ""
	if len(cmd.Args) == 2 {
		resp = cmd.Args[1]
	} else {
		ss.reply("+ ")
		ss.w.Flush()
		line, err := ss.readLine()
		if errors.Is(err, errLineTooLong) {
			ss.reply("-ERR line too long")
			return true
		}
		if err != nil {
			return false
		}
		resp = line
	}
	if resp == "*" {
		ss.reply("-ERR authentication cancelled")
		return true
	}
	if resp == "=" {
		resp = ""
	}
	raw, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		ss.reply("-ERR invalid base64")
		return true
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
		return ss.fail("-ERR [AUTH] invalid PLAIN response")
	}
	return ss.login(parts[1], parts[2])
}

// fail answers a failed login after the delay and says whether the session
// may go on.
func (ss *session) fail(msg string) bool {
	ss.failures++
	ss.w.Flush()
	time.Sleep(ss.s.opts.FailedLoginDelay)
	ss.reply("%s", msg)
	if ss.failures >= ss.s.opts.MaxAuthFailures {
		ss.reply("-ERR too many authentication failures")
		return false
	}
	return true
}

func (ss *session) login(user, pass string) bool {
	if pass == "" {
		return ss.fail("-ERR [AUTH] invalid credentials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := ss.s.opts.Auth.Authenticate(ctx, user, pass)
	if errors.Is(err, auth.ErrInvalidCredentials) {
		ss.log.Info("login failed", "user", user)
		return ss.fail("-ERR [AUTH] invalid credentials")
	}
	if errors.Is(err, auth.ErrElsewhere) {
		ss.log.Info("login refused: account homed on another instance", "user", user, "err", err)
		ss.reply("-ERR [SYS/TEMP] %v", err)
		return true
	}
	if err != nil {
		ss.log.Warn("directory error", "user", user, "err", err)
		ss.reply("-ERR [SYS/TEMP] authentication temporarily unavailable")
		return true
	}
	if ss.s.opts.Refuse != nil {
		if err := ss.s.opts.Refuse(addr); err != nil {
			ss.reply("-ERR [SYS/TEMP] %v", err)
			return true
		}
	}
	if !ss.s.lock(addr) {
		ss.reply("-ERR [IN-USE] maildrop already locked by another session")
		return true
	}
	acct, err := ss.s.opts.Store.Account(addr)
	var msgs []maildir.Message
	var uv uint32
	if err == nil {
		mbox := acct.Inbox()
		if msgs, err = mbox.Messages(); err == nil {
			var st maildir.Status
			st, err = mbox.Status()
			uv = st.UIDValidity
			ss.mbox = mbox
		}
	}
	if err != nil {
		ss.s.unlock(addr)
		ss.log.Error("open maildrop", "account", addr, "err", err)
		ss.reply("-ERR [SYS/TEMP] cannot open maildrop")
		return true
	}
	ss.addr, ss.msgs, ss.uv = addr, msgs, uv
	ss.deleted = make([]bool, len(msgs))
	ss.log = ss.log.With("account", addr)
	ss.log.Info("login")
	ss.reply("+OK maildrop has %d messages", len(msgs))
	return true
}

// msgArg resolves a message-number argument.
func (ss *session) msgArg(arg string) (int, bool) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > len(ss.msgs) {
		ss.reply("-ERR no such message")
		return 0, false
	}
	if ss.deleted[n-1] {
		ss.reply("-ERR message %d already deleted", n)
		return 0, false
	}
	return n - 1, true
}

func (ss *session) handleTransaction(cmd Command) bool {
	switch cmd.Name {
	case "CAPA":
		ss.capa()
	case "NOOP":
		ss.reply("+OK")
	case "STAT":
		n, size := 0, int64(0)
		for i, m := range ss.msgs {
			if !ss.deleted[i] {
				n++
				size += m.Size
			}
		}
		ss.reply("+OK %d %d", n, size)
	case "LIST", "UIDL":
		line := func(i int) string {
			if cmd.Name == "LIST" {
				return fmt.Sprintf("%d %d", i+1, ss.msgs[i].Size)
			}
			return fmt.Sprintf("%d %d.%d", i+1, ss.uv, ss.msgs[i].UID)
		}
		switch len(cmd.Args) {
		case 0:
			ss.reply("+OK")
			for i := range ss.msgs {
				if !ss.deleted[i] {
					ss.reply("%s", line(i))
				}
			}
			ss.reply(".")
		case 1:
			if i, ok := ss.msgArg(cmd.Args[0]); ok {
				ss.reply("+OK %s", line(i))
			}
		default:
			ss.reply("-ERR too many arguments")
		}
	case "RETR", "TOP":
		want := 1
		if cmd.Name == "TOP" {
			want = 2
		}
		if len(cmd.Args) != want {
			ss.reply("-ERR wrong number of arguments")
			return true
		}
		i, ok := ss.msgArg(cmd.Args[0])
		if !ok {
			return true
		}
		lines := -1
		if cmd.Name == "TOP" {
			n, err := strconv.Atoi(cmd.Args[1])
			if err != nil || n < 0 {
				ss.reply("-ERR invalid line count")
				return true
			}
			lines = n
		}
		return ss.send(i, lines)
	case "DELE":
		if len(cmd.Args) != 1 {
			ss.reply("-ERR usage: DELE msg")
			return true
		}
		if i, ok := ss.msgArg(cmd.Args[0]); ok {
			ss.deleted[i] = true
			ss.reply("+OK message %d deleted", i+1)
		}
	case "RSET":
		for i := range ss.deleted {
			ss.deleted[i] = false
		}
		ss.reply("+OK")
	case "QUIT":
		var uids []uint32
		for i, d := range ss.deleted {
			if d {
				uids = append(uids, ss.msgs[i].UID)
			}
		}
		if len(uids) > 0 {
			if _, err := ss.mbox.Expunge(uids); err != nil {
				ss.log.Error("expunge at QUIT", "err", err)
				ss.reply("-ERR [SYS/TEMP] some deleted messages not removed")
				return false
			}
		}
		ss.log.Info("logout", "deleted", len(uids))
		ss.s.unlock(ss.addr) // before the reply, so the client may log in again at once
		ss.addr = ""
		ss.reply("+OK bye, %d messages deleted", len(uids))
		return false
	case "USER", "PASS", "AUTH", "STLS":
		ss.reply("-ERR already authenticated")
	default:
		ss.reply("-ERR unknown command")
	}
	return true
}

// send writes message i dot-stuffed; lines >= 0 limits the body lines (TOP).
func (ss *session) send(i, lines int) bool {
	f, _, err := ss.mbox.Open(ss.msgs[i].UID)
	if err != nil {
		ss.reply("-ERR [SYS/TEMP] message unavailable")
		return true
	}
	defer f.Close()
	ss.reply("+OK %d octets", ss.msgs[i].Size)
	br := bufio.NewReaderSize(f, 32*1024)
	inBody, bodyLines, atStart, lastNL := false, 0, true, true
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if atStart {
				if inBody && lines >= 0 && bodyLines >= lines {
					break
				}
				if len(chunk) > 0 && chunk[0] == '.' {
					ss.w.WriteByte('.')
				}
			}
			ss.w.Write(chunk)
			complete := chunk[len(chunk)-1] == '\n'
			empty := atStart && (string(chunk) == "\r\n" || string(chunk) == "\n")
			switch {
			case !complete:
			case !inBody && empty:
				inBody = true // the blank line ending the header
			case inBody:
				bodyLines++
			}
			atStart, lastNL = complete, complete
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	if !lastNL {
		ss.w.WriteString("\r\n")
	}
	ss.reply(".")
	if lines < 0 && !ss.msgs[i].HasFlag(maildir.FlagSeen) {
		if out, err := ss.mbox.SetFlags([]uint32{ss.msgs[i].UID}, maildir.FlagsAdd, "S", nil); err == nil && len(out) == 1 {
			ss.msgs[i].Flags = out[0].Flags
		}
	}
	return true
}
