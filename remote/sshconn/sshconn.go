// Package sshconn dials SSH connections for remote: host keys are checked
// against a known_hosts file (strict by default, optionally pinning unknown
// keys), authentication uses ssh-agent and key files, a host may be reached
// through a jump host, and one connection per host is kept and reused.
//
// It never prompts and never accepts a host key it cannot check: there is no
// way to ignore host keys.
//
// Like all of remote it knows no mail: it never imports spec, render,
// runtime, provision or lab.
package sshconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultTimeout bounds the TCP connection and the SSH handshake of one
// dial when Config.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// Config is shared by every connection of a Pool.
type Config struct {
	// KnownHosts is the known_hosts file host keys are checked against
	// (plain, hashed and @cert-authority / @revoked lines). Required.
	KnownHosts string
	// AcceptNew appends the key of a host that known_hosts does not know
	// yet (like OpenSSH's StrictHostKeyChecking=accept-new). A key that
	// differs from a known one is refused all the same.
	AcceptNew bool
	// KeyFiles are private keys tried for every host (after the agent).
	// Passphrase-protected keys are reported as an error: load them into
	// the agent instead.
	KeyFiles []string
	// NoAgent disables ssh-agent even when SSH_AUTH_SOCK is set.
	NoAgent bool
	// Timeout bounds TCP connect plus SSH handshake; DefaultTimeout if zero.
	Timeout time.Duration
	// KeepAlive, when positive, sends a keepalive request at this interval
	// on every pooled connection; one that goes unanswered closes it, so the
	// next Client call dials again.
	KeepAlive time.Duration
}

// Target is one host to reach.
type Target struct {
	// Name is how messages name the host (a node name); Host if empty.
	Name string
	Host string // address or DNS name
	Port int    // 22 if zero
	User string // "root" if empty
	// KeyFile, if set, is tried before Config.KeyFiles for this host.
	KeyFile string
	// Jump, if set, is dialled first and this host is reached through it.
	Jump *Target
}

func (t Target) addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

func (t Target) user() string {
	if t.User == "" {
		return "root"
	}
	return t.User
}

func (t Target) name() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Host
}

// key identifies a pooled connection: the same host reached through a
// different jump, as a different user or with a different key is another
// connection.
func (t Target) key() string {
	k := t.user() + "@" + t.addr() + "#" + t.KeyFile
	if t.Jump != nil {
		k += " via " + t.Jump.key()
	}
	return k
}

// HostKeyError is a host key that was refused.
type HostKeyError struct {
	Host       string // Target name
	Addr       string // host:port as checked
	KnownHosts string // the file
	Changed    bool   // known_hosts holds other keys for the host
	Err        error  // the underlying knownhosts error
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("ssh %s (%s): HOST KEY CHANGED: the host presented a key that differs from the one recorded in %s; "+
			"refusing to connect (if the host was really reinstalled, remove its old line from that file): %v", e.Host, e.Addr, e.KnownHosts, e.Err)
	}
	return fmt.Sprintf("ssh %s (%s): host key not known in %s; refusing to connect (use accept-new to pin it): %v",
		e.Host, e.Addr, e.KnownHosts, e.Err)
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// Pool dials and keeps one connection per target.
type Pool struct {
	cfg Config

	khMu sync.Mutex // serialises known_hosts reads and appends

	agentOnce    sync.Once
	agentSigners func() ([]ssh.Signer, error)
	agentConn    net.Conn

	mu     sync.Mutex
	conns  map[string]*entry
	closed bool
}

type entry struct {
	done   chan struct{}
	client *ssh.Client
	err    error
}

// New checks cfg and returns an empty pool.
func New(cfg Config) (*Pool, error) {
	if cfg.KnownHosts == "" {
		return nil, errors.New("sshconn: a known_hosts file is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Pool{cfg: cfg, conns: map[string]*entry{}}, nil
}

// Client returns the connection to t, dialling it (and its jump host) the
// first time. Concurrent callers for the same target share one dial. A
// failed dial is not cached: the next call tries again.
func (p *Pool) Client(ctx context.Context, t Target) (*ssh.Client, error) {
	if t.Host == "" {
		return nil, errors.New("sshconn: target has no host")
	}
	k := t.key()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("sshconn: pool closed")
	}
	if e, ok := p.conns[k]; ok {
		p.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.client, nil
		}
		// The dial failed; its owner removed the entry. Try again.
		return p.Client(ctx, t)
	}
	e := &entry{done: make(chan struct{})}
	p.conns[k] = e
	p.mu.Unlock()

	e.client, e.err = p.dial(ctx, t)
	p.mu.Lock()
	if e.err != nil || p.closed {
		delete(p.conns, k)
		if e.err == nil {
			e.client.Close()
			e.client, e.err = nil, errors.New("sshconn: pool closed")
		}
	}
	p.mu.Unlock()
	close(e.done)
	if e.err == nil {
		go p.watch(k, e)
	}
	return e.client, e.err
}

// watch forgets a connection once it ends, and sends keepalives.
func (p *Pool) watch(k string, e *entry) {
	stop := make(chan struct{})
	if p.cfg.KeepAlive > 0 {
		go func() {
			tick := time.NewTicker(p.cfg.KeepAlive)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					res := make(chan error, 1)
					go func() {
						_, _, err := e.client.SendRequest("keepalive@openssh.com", true, nil)
						res <- err
					}()
					select {
					case err := <-res:
						if err != nil {
							e.client.Close()
							return
						}
					case <-time.After(p.cfg.Timeout):
						e.client.Close()
						return
					case <-stop:
						return
					}
				}
			}
		}()
	}
	e.client.Wait()
	close(stop)
	p.mu.Lock()
	if p.conns[k] == e {
		delete(p.conns, k)
	}
	p.mu.Unlock()
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	var clients []*ssh.Client
	for _, e := range p.conns {
		select {
		case <-e.done:
			if e.client != nil {
				clients = append(clients, e.client)
			}
		default: // the dialler sees closed and closes it
		}
	}
	p.mu.Unlock()
	var errs []error
	// Targets before their jump hosts would be nicer; closing a jump
	// connection first just ends the ones through it.
	for _, c := range clients {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if p.agentConn != nil {
		p.agentConn.Close()
	}
	return errors.Join(errs...)
}

func (p *Pool) dial(ctx context.Context, t Target) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	addr := t.addr()
	var conn net.Conn
	var err error
	if t.Jump != nil {
		jc, jerr := p.Client(ctx, *t.Jump)
		if jerr != nil {
			return nil, fmt.Errorf("ssh %s: jump host %s: %w", t.name(), t.Jump.name(), jerr)
		}
		conn, err = jc.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh %s (%s): %w", t.name(), addr, err)
	}
	cfg, err := p.clientConfig(t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	type result struct {
		c     ssh.Conn
		chans <-chan ssh.NewChannel
		reqs  <-chan *ssh.Request
		err   error
	}
	res := make(chan result, 1)
	go func() {
		c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
		res <- result{c, chans, reqs, err}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			conn.Close()
			var hk *HostKeyError
			if errors.As(r.err, &hk) {
				return nil, hk
			}
			return nil, fmt.Errorf("ssh %s (%s): %w", t.name(), addr, r.err)
		}
		return ssh.NewClient(r.c, r.chans, r.reqs), nil
	case <-ctx.Done():
		conn.Close()
		<-res
		return nil, fmt.Errorf("ssh %s (%s): handshake: %w", t.name(), addr, ctx.Err())
	}
}

func (p *Pool) clientConfig(t Target) (*ssh.ClientConfig, error) {
	var fileSigners []ssh.Signer
	files := p.cfg.KeyFiles
	if t.KeyFile != "" {
		files = append([]string{t.KeyFile}, files...)
	}
	for _, f := range files {
		s, err := loadKey(f)
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %w", t.name(), err)
		}
		fileSigners = append(fileSigners, s)
	}
	agentSigners := p.agent()
	signers := func() ([]ssh.Signer, error) {
		var all []ssh.Signer
		if agentSigners != nil {
			if s, err := agentSigners(); err == nil {
				all = append(all, s...)
			}
		}
		return append(all, fileSigners...), nil
	}
	if agentSigners == nil && len(fileSigners) == 0 {
		return nil, fmt.Errorf("ssh %s: no credentials: no ssh-agent (SSH_AUTH_SOCK) and no key file", t.name())
	}
	algos, err := p.hostKeyAlgorithms(t.addr())
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:              t.user(),
		Auth:              []ssh.AuthMethod{ssh.PublicKeysCallback(signers)},
		HostKeyCallback:   p.hostKeyCallback(t.name()),
		HostKeyAlgorithms: algos,
		Timeout:           p.cfg.Timeout,
	}, nil
}

func loadKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("key file %s is protected by a passphrase: add it to ssh-agent instead", path)
		}
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

// agent connects to SSH_AUTH_SOCK once; nil when there is none.
func (p *Pool) agent() func() ([]ssh.Signer, error) {
	p.agentOnce.Do(func() {
		if p.cfg.NoAgent {
			return
		}
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return
		}
		p.agentConn = c
		p.agentSigners = agent.NewClient(c).Signers
	})
	return p.agentSigners
}

// readKnownHosts parses the file afresh (another dial may have appended to
// it) and returns its callback plus the line numbers of @cert-authority
// lines. A missing file is an empty one.
func (p *Pool) readKnownHosts() (ssh.HostKeyCallback, map[int]bool, error) {
	path := p.cfg.KnownHosts
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, err = nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w", err)
	}
	ca := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "@cert-authority") {
			ca[n] = true
		}
	}
	if len(b) == 0 {
		// knownhosts.New needs a file; an empty temporary one will do.
		f, err := os.CreateTemp("", "known_hosts-empty-*")
		if err != nil {
			return nil, nil, err
		}
		f.Close()
		defer os.Remove(f.Name())
		path = f.Name()
	}
	cb, err := knownhosts.New(path)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts %s: %w", p.cfg.KnownHosts, err)
	}
	return cb, ca, nil
}

var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})

// known returns the plain keys known_hosts has for addr and whether a
// @cert-authority line matches it. knownhosts reports both kinds of line
// in KeyError.Want; the line numbers tell them apart.
func known(cb ssh.HostKeyCallback, ca map[int]bool, addr string) (plain []ssh.PublicKey, hasCA bool) {
	err := cb(addr, fakeAddr{addr}, probeKey())
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil, false
	}
	for _, w := range ke.Want {
		if ca[w.Line] {
			hasCA = true
		} else {
			plain = append(plain, w.Key)
		}
	}
	return plain, hasCA
}

type fakeAddr struct{ s string }

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return a.s }

// hostKeyAlgorithms asks the server for the kinds of key known_hosts holds
// for it, as OpenSSH does, so that a host with several keys is not refused
// because it offered another kind first. With no plain key known (or a CA
// line for the host) the defaults apply.
func (p *Pool) hostKeyAlgorithms(addr string) ([]string, error) {
	p.khMu.Lock()
	defer p.khMu.Unlock()
	cb, ca, err := p.readKnownHosts()
	if err != nil {
		return nil, err
	}
	plain, hasCA := known(cb, ca, addr)
	if len(plain) == 0 || hasCA {
		return nil, nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algos = append(algos, x)
			}
		}
	}
	for _, k := range plain {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(k.Type())
		}
	}
	return algos, nil
}

func (p *Pool) hostKeyCallback(name string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		p.khMu.Lock()
		defer p.khMu.Unlock()
		cb, ca, err := p.readKnownHosts()
		if err != nil {
			return err
		}
		err = cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		hkErr := &HostKeyError{Host: name, Addr: hostname, KnownHosts: p.cfg.KnownHosts, Err: err}
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			// Revoked key, a certificate no known authority signed, …
			hkErr.Changed = isRevoked(err)
			return hkErr
		}
		plain, _ := known(cb, ca, hostname)
		if len(plain) > 0 {
			hkErr.Changed = true
			return hkErr
		}
		if !p.cfg.AcceptNew {
			return hkErr
		}
		if _, isCert := key.(*ssh.Certificate); isCert {
			return hkErr // pin keys, never certificates
		}
		return p.appendKnownHost(hostname, key)
	}
}

func isRevoked(err error) bool {
	var re *knownhosts.RevokedError
	return errors.As(err, &re)
}

// appendKnownHost adds one line for hostname; it is called with khMu held.
func (p *Pool) appendKnownHost(hostname string, key ssh.PublicKey) error {
	f, err := os.OpenFile(p.cfg.KnownHosts, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	// A file not ending in a newline would glue our line to its last one.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if last, err := readLastByte(p.cfg.KnownHosts); err == nil && last != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("known_hosts: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("known_hosts: %w", err)
	}
	return f.Close()
}

func readLastByte(path string) (byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, st.Size()-1); err != nil {
		return 0, err
	}
	return b[0], nil
}
