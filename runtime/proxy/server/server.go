package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/proxy/session"
	"github.com/mailfleet/mailfleet/runtime/proxy/splice"
)

// Protocol is what the IMAP or POP3 package brings to a Server: its name,
// its answers, and its two dialogues, with the client before login and
// with the home instance to log in there.
type Protocol struct {
	// Name labels logs and metrics ("imap") and prefixes errors.
	Name string
	// IdleTimeout is the default of Options.IdleTimeout.
	IdleTimeout time.Duration
	// Route is the instance's listener for the protocol ("" if none).
	Route func(config.InstanceRoute) string
	// BackendBuffer is the size of the reader on the instance's side.
	BackendBuffer int
	// Busy precedes the reason a connection is refused before any command
	// ("* BYE [UNAVAILABLE] ").
	Busy string
	// Unavailable precedes the reason a login failed for something other
	// than the credentials ("NO [UNAVAILABLE] ").
	Unavailable string
	// InvalidCredentials answers a login the directory refuses.
	InvalidCredentials string
	// TooManyFailures, when set, follows the answer to the last failed
	// login a session may have.
	TooManyFailures string
	// Greeting is the first line to a new client.
	Greeting func(c *Conn) string
	// Preauth serves the client's commands until Conn.Login has logged it
	// in or the session must end.
	Preauth func(c *Conn)
	// BackendLogin logs user in on the instance's connection: the reply to
	// pass on when the instance answered, an error when it cannot be used.
	BackendLogin func(ctx context.Context, b *Backend, user, pass string) (Reply, error)
}

// Reply is an instance's answer to a login, passed on to the client.
type Reply struct {
	// OK is a successful login.
	OK bool
	// Untagged are the lines before IMAP's tagged answer, joined by CRLF.
	Untagged string
	// Text is the answer without its tag.
	Text string
}

// Server is a proxy: it accepts clients, lets its Protocol speak with each
// until it logged in at its home instance, then copies bytes both ways.
type Server struct {
	proto Protocol
	opts  Options
	gate  session.Gate

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[net.Conn]bool
	closed    bool
	wg        sync.WaitGroup
}

// ErrClosed is returned by Serve after Close, as "<protocol> proxy: closed".
var ErrClosed = errors.New("proxy: closed")

// New returns a Server speaking proto.
func New(proto Protocol, opts Options) (*Server, error) {
	if opts.Directory == nil {
		return nil, fmt.Errorf("%s proxy: a directory is required", proto.Name)
	}
	if opts.DefaultRoute != "" {
		if _, ok := opts.Instances[opts.DefaultRoute]; !ok {
			return nil, fmt.Errorf("%s proxy: default route %q is not an instance", proto.Name, opts.DefaultRoute)
		}
	}
	if opts.PreAuthTimeout <= 0 {
		opts.PreAuthTimeout = time.Minute
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = proto.IdleTimeout
	}
	if opts.BackendTimeout <= 0 {
		opts.BackendTimeout = 10 * time.Second
	}
	if opts.Penalty == nil {
		opts.Penalty = session.NewPenalty(opts.FailedLoginDelay)
	}
	if opts.MaxFailedLogins <= 0 {
		opts.MaxFailedLogins = 3
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{proto: proto, opts: opts, listeners: map[net.Listener]bool{}, conns: map[net.Conn]bool{},
		gate: session.Gate{Service: proto.Name, Node: opts.Node, TrustedBalancers: opts.TrustedBalancers,
			Total: session.Limiter{Max: opts.MaxConnections}, Clients: session.Limiter{PerClient: opts.MaxPerClient},
			Metrics: opts.Metrics, Log: log.With("service", proto.Name)}}, nil
}

func (s *Server) errClosed() error { return fmt.Errorf("%s %w", s.proto.Name, ErrClosed) }

// Serve accepts sessions on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.errClosed()
	}
	s.listeners[l] = true
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return s.errClosed()
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c, release, ok := s.gate.Admit(nc, s.proto.Busy+"Too many connections, try again later")
		if !ok {
			continue
		}
		if !s.track(c, true) {
			release()
			c.Close()
			return s.errClosed()
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer release()
			defer s.track(c, false)
			defer c.Close()
			s.serveConn(c)
		}()
	}
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.conns[c] = true
	} else {
		delete(s.conns, c)
	}
	return true
}

// Close stops the listeners and ends every session.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// serveConn runs one session on a connection from the Gate.
func (s *Server) serveConn(nc net.Conn) {
	defer s.opts.Metrics.Open(s.proto.Name)()
	c := &Conn{s: s, nc: nc}
	c.nc.SetDeadline(time.Now().Add(s.opts.PreAuthTimeout))
	if err := c.Write("%s", s.proto.Greeting(c)); err != nil {
		return
	}
	who, release, err := s.gate.Identify(c.nc)
	if errors.Is(err, session.ErrTooManyForClient) {
		c.Write("%s%s", s.proto.Busy, err.Error())
	}
	if err != nil {
		return
	}
	defer release()
	c.who = who
	c.who.Log.Info("session started")
	c.br = bufio.NewReaderSize(c.nc, 1024)
	// Until it logs in, the connection may be closed to make room.
	leave := s.opts.PreAuth.Enter(who.Client.Addr(), func() {
		who.Log.Info("closed to make room for new connections before login")
		c.nc.Close()
	})
	s.proto.Preauth(c)
	leave()
	if c.backend == nil {
		return
	}
	defer c.backend.conn.Close()
	c.who.Log.Info("session proxied")
	splice.Run(c.nc, c.br, c.backend.conn, c.backend.br, s.opts.IdleTimeout)
	c.who.Log.Info("session ended")
}
