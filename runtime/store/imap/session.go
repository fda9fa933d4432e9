package imap

import (
	"context"
	"errors"
	"log/slog"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailfleet/mailfleet/runtime/store/auth"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

type session struct {
	s    *Server
	conn *imapserver.Conn
	log  *slog.Logger
	acct *maildir.Account

	// Selected state.
	mbox      *maildir.Mailbox
	tr        *tracker
	st        *imapserver.SessionTracker
	readOnly  bool
	searchRes goimap.UIDSet
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)

func (ss *session) Close() error {
	if ss.st != nil {
		ss.st.Close()
		ss.st = nil
	}
	return nil
}

func (ss *session) Login(username, password string) error {
	if password == "" {
		time.Sleep(ss.s.opts.FailedLoginDelay)
		return imapserver.ErrAuthFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := ss.s.opts.Auth.Authenticate(ctx, username, password)
	if errors.Is(err, auth.ErrInvalidCredentials) {
		ss.log.Info("login failed", "user", username)
		time.Sleep(ss.s.opts.FailedLoginDelay)
		return imapserver.ErrAuthFailed
	}
	if errors.Is(err, auth.ErrElsewhere) {
		ss.log.Info("login refused: account homed on another instance", "user", username, "err", err)
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeUnavailable, Text: err.Error()}
	}
	if err != nil {
		ss.log.Warn("directory error", "user", username, "err", err)
		return imapError(err)
	}
	if ss.s.opts.Refuse != nil {
		if err := ss.s.opts.Refuse(addr); err != nil {
			return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeUnavailable, Text: err.Error()}
		}
	}
	acct, err := ss.s.opts.Store.Account(addr)
	if err != nil {
		ss.log.Error("open account", "account", addr, "err", err)
		return imapError(err)
	}
	for name := range ss.s.opts.SpecialUse {
		if _, err := acct.Mailbox(name); errors.Is(err, maildir.ErrNoMailbox) {
			if err := acct.CreateMailbox(name); err == nil {
				acct.Subscribe(name, true)
			}
		}
	}
	ss.acct = acct
	ss.log = ss.log.With("account", addr)
	ss.log.Info("login")
	return nil
}

func (ss *session) mailbox(name string) (*maildir.Mailbox, error) {
	m, err := ss.acct.Mailbox(name)
	if err != nil {
		return nil, imapError(err)
	}
	return m, nil
}

// --- authenticated state ----------------------------------------------------

func (ss *session) Namespace() (*goimap.NamespaceData, error) {
	return &goimap.NamespaceData{Personal: []goimap.NamespaceDescriptor{{Delim: maildir.Delim}}}, nil
}

func (ss *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if ss.st == nil {
		return nil
	}
	if err := ss.mbox.Sync(); err != nil && !errors.Is(err, maildir.ErrNoMailbox) {
		return imapError(err)
	}
	return ss.st.Poll(w, allowExpunge)
}

func (ss *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if ss.st == nil {
		<-stop
		return nil
	}
	return ss.st.Idle(w, stop)
}

// --- selected state -----------------------------------------------------------
