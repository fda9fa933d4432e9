package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
	"github.com/mailfleet/mailfleet/runtime/store/proxyhdr"
)

// Authenticator checks credentials; see auth.Directory.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (string, error)
}

// Options configure a Server; zero values are documented per field.
type Options struct {
	Store *maildir.Store
	Auth  Authenticator
	// TLSConfig enables STARTTLS; with it set, plaintext login is refused
	// before TLS unless AllowInsecureAuth.
	TLSConfig         *tls.Config
	AllowInsecureAuth bool
	// FailedLoginDelay is waited before answering a failed login (0: config.DefaultFailedLoginDelay).
	FailedLoginDelay time.Duration
	// AppendLimit bounds APPEND (0: 50 MiB).
	AppendLimit uint32
	// SpecialUse mailboxes created at login when missing (nil: Drafts,
	// Sent, Trash, Junk, Archive).
	SpecialUse map[string]goimap.MailboxAttr
	// HeaderCacheBytes bounds the cache of message headers that FETCH of
	// envelopes and header sections reads (0: 32 MiB; negative: no cache).
	HeaderCacheBytes int
	// Refuse, if set, may refuse a login temporarily (account being moved).
	Refuse      func(address string) error
	Logger      *slog.Logger
	DebugWriter io.Writer
}

// Server serves IMAP.
type Server struct {
	opts Options
	srv  *imapserver.Server
	// closed is set by Close, so that Serve's error says so.
	closed atomic.Bool

	mu       sync.Mutex
	trackers map[*maildir.Mailbox]*tracker
	headers  *headerCache
}

var defaultSpecialUse = map[string]goimap.MailboxAttr{
	"Drafts": goimap.MailboxAttrDrafts, "Sent": goimap.MailboxAttrSent, "Trash": goimap.MailboxAttrTrash,
	"Junk": goimap.MailboxAttrJunk, "Archive": goimap.MailboxAttrArchive,
}

// New returns a server.
func New(opts Options) *Server {
	if opts.FailedLoginDelay == 0 {
		opts.FailedLoginDelay = config.DefaultFailedLoginDelay
	}
	if opts.AppendLimit == 0 {
		opts.AppendLimit = 50 << 20
	}
	if opts.SpecialUse == nil {
		opts.SpecialUse = defaultSpecialUse
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HeaderCacheBytes == 0 {
		opts.HeaderCacheBytes = 32 << 20
	}
	s := &Server{opts: opts, trackers: map[*maildir.Mailbox]*tracker{}, headers: newHeaderCache(opts.HeaderCacheBytes)}
	caps := goimap.CapSet{}
	for _, c := range []goimap.Cap{goimap.CapIMAP4rev1, goimap.CapIMAP4rev2, goimap.CapNamespace, goimap.CapUnselect,
		goimap.CapUIDPlus, goimap.CapESearch, goimap.CapSearchRes, goimap.CapIdle, goimap.CapSASLIR, goimap.CapListExtended,
		goimap.CapListStatus, goimap.CapMove, goimap.CapLiteralMinus, goimap.CapStatusSize, goimap.CapChildren,
		goimap.CapSpecialUse, goimap.CapAppendLimit, goimap.CapEnable} {
		caps[c] = struct{}{}
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{s: s, conn: c, log: opts.Logger.With("remote", c.NetConn().RemoteAddr().String(), "proto", "imap", "session", proxyhdr.SessionID(c.NetConn()))}, nil, nil
		},
		Caps:         caps,
		Logger:       slogLogger{opts.Logger},
		TLSConfig:    opts.TLSConfig,
		InsecureAuth: opts.AllowInsecureAuth || opts.TLSConfig == nil,
		DebugWriter:  opts.DebugWriter,
	})
	return s
}

type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Printf(format string, args ...interface{}) {
	l.l.Warn(fmt.Sprintf(format, args...))
}

// Serve accepts connections on l.
// After Close it returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if s.closed.Load() {
		return ErrServerClosed
	}
	return err
}

// ErrServerClosed is what Serve returns once Close was called.
var ErrServerClosed = errors.New("imap: server closed")

// Close closes the listeners and connections.
func (s *Server) Close() error {
	s.closed.Store(true)
	return s.srv.Close()
}

// tracker follows one mailbox for all sessions that selected it.
type tracker struct {
	mbox *maildir.Mailbox
	mt   *imapserver.MailboxTracker

	syncMu  sync.Mutex
	syncing bool
	again   bool
}

func (t *tracker) Appended(total uint32) { t.mt.QueueNumMessages(total) }
func (t *tracker) Expunged(seq uint32)   { t.mt.QueueExpunge(seq) }
func (t *tracker) FlagsChanged(seq uint32, m maildir.Message) {
	t.mt.QueueMessageFlags(seq, goimap.UID(m.UID), imapFlags(m), nil)
}

// NewMail syncs the mailbox in the background so idling sessions hear of
// the delivery; bursts of deliveries coalesce into few syncs.
func (t *tracker) NewMail() {
	t.syncMu.Lock()
	if t.syncing {
		t.again = true
		t.syncMu.Unlock()
		return
	}
	t.syncing = true
	t.syncMu.Unlock()
	go func() {
		for {
			t.mbox.Sync()
			t.syncMu.Lock()
			if !t.again {
				t.syncing = false
				t.syncMu.Unlock()
				return
			}
			t.again = false
			t.syncMu.Unlock()
		}
	}()
}

func (s *Server) tracker(mbox *maildir.Mailbox) (*tracker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.trackers[mbox]; ok {
		return t, nil
	}
	var t *tracker
	err := mbox.Attach(func(count uint32) maildir.Observer {
		t = &tracker{mbox: mbox, mt: imapserver.NewMailboxTracker(count)}
		return t
	})
	if err != nil {
		return nil, err
	}
	s.trackers[mbox] = t
	return t, nil
}

// imapError maps storage errors to IMAP responses.
func imapError(err error) error {
	if err == nil {
		return nil
	}
	var ie *goimap.Error
	if errors.As(err, &ie) {
		return err
	}
	no := func(code goimap.ResponseCode, text string) error {
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, maildir.ErrBadMailboxName):
		return no(goimap.ResponseCodeCannot, err.Error())
	case errors.Is(err, maildir.ErrNoMailbox):
		return no(goimap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, maildir.ErrMailboxExists):
		return no(goimap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, maildir.ErrHasChildren):
		return no(goimap.ResponseCodeHasChildren, "Mailbox has children")
	case errors.Is(err, maildir.ErrInboxSpecial):
		return no(goimap.ResponseCodeCannot, "INBOX cannot be deleted")
	case errors.Is(err, maildir.ErrQuota):
		return no(goimap.ResponseCodeOverQuota, "Quota exceeded")
	case errors.Is(err, maildir.ErrTooBig):
		return no(goimap.ResponseCodeTooBig, "Message too big")
	case errors.Is(err, auth.ErrUnavailable):
		return no(goimap.ResponseCodeUnavailable, "Authentication temporarily unavailable")
	}
	return no(goimap.ResponseCodeServerBug, "Internal error")
}

// flag mapping between IMAP and maildir letters.
var flagLetters = map[goimap.Flag]byte{
	goimap.FlagDraft: maildir.FlagDraft, goimap.FlagFlagged: maildir.FlagFlagged, goimap.FlagAnswered: maildir.FlagReplied,
	goimap.FlagSeen: maildir.FlagSeen, goimap.FlagDeleted: maildir.FlagTrashed, goimap.FlagForwarded: maildir.FlagPassed,
}

func imapFlags(m maildir.Message) []goimap.Flag {
	flags := []goimap.Flag{}
	for f, l := range flagLetters {
		if m.HasFlag(l) {
			flags = append(flags, f)
		}
	}
	for _, k := range m.Keywords {
		flags = append(flags, goimap.Flag(k))
	}
	sortFlags(flags)
	return flags
}

// splitFlags turns IMAP flags into maildir letters and keywords.
func splitFlags(flags []goimap.Flag) (letters string, keywords []string) {
	for _, f := range flags {
		matched := false
		for imf, l := range flagLetters {
			if equalFold(string(imf), string(f)) {
				letters += string(l)
				matched = true
			}
		}
		if !matched && len(f) > 0 && f[0] != '\\' {
			keywords = append(keywords, string(f))
		}
	}
	return letters, keywords
}
