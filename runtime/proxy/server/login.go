package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/runtime/directory"
)

// Directory finds accounts and checks passwords (runtime/directory).
type Directory interface {
	Lookup(ctx context.Context, address string) (directory.Account, error)
	Authenticate(ctx context.Context, login, password string) (directory.Account, error)
}

// Login routes user to the account's home instance and logs in there
// (Protocol.BackendLogin). Every answer to the client starts with tag
// (IMAP: the command's tag and a space). It tells whether the dialogue
// before login is over: logged in, or the session must end.
func (c *Conn) Login(tag, user, pass string) bool {
	p, o := &c.s.proto, &c.s.opts
	log := c.who.Log.With("user", user)
	// One check at a time per client address; a failure is answered after
	// the node's penalty (session.Penalty).
	attempt := o.Penalty.Attempt(c.who.Client.Addr(), user)
	defer attempt.Release()
	ctx, cancel := context.WithTimeout(context.Background(), o.BackendTimeout)
	defer cancel()
	a, err := c.s.account(ctx, user, pass)
	route, routed := o.Instances[a.Instance]
	switch {
	case errors.Is(err, directory.ErrInvalidCredentials), errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrDuplicate):
		log.Info("login failed", "reason", err.Error())
		attempt.Failed()
		return c.loginFailed(tag + p.InvalidCredentials)
	case err != nil:
		o.Metrics.Login(p.Name, "unavailable")
		log.Error("directory unavailable", "err", err)
		c.Write("%s%sService temporarily unavailable, try again later", tag, p.Unavailable)
		return false
	case !routed || p.Route(route) == "":
		o.Metrics.Login(p.Name, "unavailable")
		log.Error("no "+strings.ToUpper(p.Name)+" route to the account's home", "host", a.Host, "instance", a.Instance)
		c.Write("%s%sMailbox server unavailable, try again later", tag, p.Unavailable)
		return false
	}
	reply, be, err := c.dialBackend(ctx, p.Route(route), user, pass)
	if err != nil {
		o.Metrics.Login(p.Name, "unavailable")
		o.Metrics.Backend(a.Instance, p.Name, false)
		log.Error("home instance unavailable", "instance", a.Instance, "err", err)
		c.Write("%s%sMailbox server unavailable, try again later", tag, p.Unavailable)
		return false
	}
	o.Metrics.Backend(a.Instance, p.Name, true)
	if be == nil {
		// The instance refused the login: its answer is the answer.
		log.Info("login refused by instance", "instance", a.Instance, "response", reply.Text)
		attempt.Failed()
		return c.loginFailed(tag + reply.Text)
	}
	attempt.Succeeded()
	o.Metrics.Login(p.Name, "ok")
	log.Info("logged in", "instance", a.Instance)
	if reply.Untagged != "" {
		c.Write("%s", reply.Untagged)
	}
	if err := c.Write("%s%s", tag, reply.Text); err != nil {
		be.conn.Close()
		return true
	}
	c.nc.SetDeadline(time.Time{})
	c.backend = be
	return true
}

// account finds user's home: with a bind as user when the proxy
// authenticates, else with a lookup, the default route taking names the
// directory does not know.
func (s *Server) account(ctx context.Context, user, pass string) (directory.Account, error) {
	switch {
	case pass == "":
		return directory.Account{}, directory.ErrInvalidCredentials
	case s.opts.AuthenticateOnProxy:
		return s.opts.Directory.Authenticate(ctx, user, pass)
	}
	a, err := s.opts.Directory.Lookup(ctx, user)
	if errors.Is(err, directory.ErrNotFound) && s.opts.DefaultRoute != "" {
		// The default route's instance decides about this name.
		return directory.Account{Address: user, Instance: s.opts.DefaultRoute}, nil
	}
	return a, err
}

// loginFailed sends answer (after the penalty, which Login has waited),
// and tells whether that was the session's last failure.
func (c *Conn) loginFailed(answer string) bool {
	p, o := &c.s.proto, &c.s.opts
	o.Metrics.Login(p.Name, "invalid")
	c.failed++
	last := c.failed >= o.MaxFailedLogins
	if last {
		o.Metrics.Refused(p.Name, "too_many_failed_logins")
	}
	c.Write("%s", answer)
	if last && p.TooManyFailures != "" {
		c.Write("%s", p.TooManyFailures)
	}
	return last
}
