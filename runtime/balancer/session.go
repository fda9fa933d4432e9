package balancer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// limiter counts open client connections in total and per client address.
type limiter struct {
	mu        sync.Mutex
	total     int
	perClient map[netip.Addr]int
}

// admit counts a connection from ip unless a limit (0: none) is reached;
// it returns the reason of a refusal, or "".
func (l *limiter) admit(ip netip.Addr, maxTotal, maxPerClient int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if maxTotal > 0 && l.total >= maxTotal {
		return "max_connections"
	}
	if maxPerClient > 0 && l.perClient[ip] >= maxPerClient {
		return "max_per_client"
	}
	if l.perClient == nil {
		l.perClient = map[netip.Addr]int{}
	}
	l.total++
	l.perClient[ip]++
	return ""
}

func (l *limiter) leave(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.perClient[ip] - 1; n > 0 {
		l.perClient[ip] = n
	} else {
		delete(l.perClient, ip)
	}
}

func (l *limiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// refusals are the lines a refused client reads before the balancer
// closes the connection, in its protocol's words, so that it retries later
// instead of reporting a broken server.
var refusals = map[string]map[string]string{
	"smtp": {
		"busy":       "421 4.7.0 Too many connections, try again later\r\n",
		"no_backend": "421 4.3.2 Service not available, try again later\r\n",
	},
	"imap": {
		"busy":       "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
		"no_backend": "* BYE [UNAVAILABLE] Service not available, try again later\r\n",
	},
	"pop3": {
		"busy":       "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
		"no_backend": "-ERR [SYS/TEMP] Service not available, try again later\r\n",
	},
}

// session is one client connection and, once connected, its backend.
type session struct {
	id      string
	client  *net.TCPConn
	backend atomic.Pointer[net.TCPConn]
	reason  atomic.Pointer[string] // why the balancer ended it, if it did
	idle    *time.Timer            // runs watchIdle
	ended   atomic.Bool
}

// cut ends the session from outside its goroutines (idle, shutdown).
func (ss *session) cut(why string) {
	ss.reason.CompareAndSwap(nil, &why)
	closeBoth(ss.client, ss.backend.Load())
}

// closeBoth closes a and b (b may be nil) at once. copyStream writes to one
// socket inside the read callback of the other, and a Close waits for that
// callback: closed one after the other, a write stuck on a peer that stopped
// reading would block the first Close forever; closing both lets the
// second unblock the write the first waits for.
func closeBoth(a, b *net.TCPConn) {
	if b == nil {
		a.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		b.Close()
		close(done)
	}()
	a.Close()
	<-done
}

// newSessionID is 96 random bits in hex: unique across balancers without
// coordination, and within the 128 bytes of a PROXY v2 UNIQUE_ID.
func newSessionID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// serveConn admits a client, connects it to a backend and relays bytes.
func (b *Balancer) serveConn(s *service, c *net.TCPConn) {
	defer b.wg.Done()
	start := time.Now()
	ip := addrOf(c.RemoteAddr())
	s.mu.Lock()
	svcName, protocol, proxyHdr := s.cfg.Name, s.cfg.Protocol, s.cfg.ProxyProtocol
	s.mu.Unlock()
	lim := b.limits.Load()
	if why := b.limiter.admit(ip, lim.MaxConnections, lim.MaxPerClient); why != "" {
		b.refuse(c, svcName, protocol, why, "busy")
		return
	}
	defer b.limiter.leave(ip)

	ss := &session{id: newSessionID(), client: c}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.Close()
		return
	}
	b.sessions[ss] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.sessions, ss)
		b.mu.Unlock()
	}()
	who := []any{"session", ss.id, "service", svcName, "client", c.RemoteAddr().String()}

	be, bc := b.connect(s, ss, who, proxyHdr)
	if be == nil {
		b.refuse(c, svcName, protocol, "no_backend", "no_backend")
		b.log.Warn("no backend available", who...)
		return
	}
	defer b.release(be)
	be.total.Add(1)
	ss.backend.Store(bc)
	// A Close that ran between connect and Store missed bc.
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		ss.cut("shutdown")
	}

	idle := lim.IdleTimeout.D()
	if idle <= 0 {
		idle = b.opts.DefaultIdleTimeout
	}
	ss.idle = time.AfterFunc(idle, func() { ss.watchIdle(idle) })
	toBackend, toClient, err := relay(c, bc)
	ss.ended.Store(true)
	ss.idle.Stop()
	c.Close()
	bc.Close()
	be.bytesToBackend.Add(uint64(toBackend))
	be.bytesToClient.Add(uint64(toClient))

	end := "closed"
	if r := ss.reason.Load(); r != nil {
		end = *r
	} else if err != nil {
		end = "error"
	}
	attrs := append(who, "backend", be.name, "bytes_to_backend", toBackend, "bytes_to_client", toClient,
		"duration_ms", time.Since(start).Milliseconds(), "end", end)
	if err != nil && end == "error" {
		attrs = append(attrs, "err", err.Error())
	}
	b.log.Info("session", attrs...)
}

// watchIdle runs when the idle timer fires: it cuts the session when
// neither side sent anything for idle, or sets the timer again.
func (ss *session) watchIdle(idle time.Duration) {
	bc := ss.backend.Load()
	if bc == nil {
		return
	}
	fromClient, ok1 := sinceLastData(ss.client)
	fromBackend, ok2 := sinceLastData(bc)
	if !ok1 || !ok2 {
		// Closed already, or no TCP_INFO: nothing to measure.
		return
	}
	quiet := min(fromClient, fromBackend)
	if quiet >= idle {
		ss.cut("idle_timeout")
		return
	}
	if !ss.ended.Load() {
		ss.idle.Reset(idle - quiet)
	}
}

// connect finds a backend that accepts the connection, trying each usable
// one at most once in scheduler order, and sends the PROXY header. A
// backend that fails is asked to check its health at once.
func (b *Balancer) connect(s *service, ss *session, who []any, proxyHdr bool) (*backend, *net.TCPConn) {
	var tried []*backend
	d := net.Dialer{Timeout: b.opts.ConnectTimeout, KeepAlive: -1}
	for {
		be := s.pick(tried)
		if be == nil {
			return nil, nil
		}
		tried = append(tried, be)
		c, err := d.Dial("tcp", be.addr)
		if err == nil && proxyHdr {
			if err = writeProxyHeader(c, ss); err != nil {
				c.Close()
			}
		}
		if err != nil {
			be.connectFailed.Add(1)
			b.release(be)
			be.pokeCheck()
			b.log.Warn("backend connect failed", append(who[:len(who):len(who)], "backend", be.name, "address", be.addr, "err", err.Error())...)
			continue
		}
		return be, c.(*net.TCPConn)
	}
}

// writeProxyHeader sends the PROXY v2 header naming the client and the
// address it connected to, with the session id as PP2_TYPE_UNIQUE_ID.
func writeProxyHeader(c net.Conn, ss *session) error {
	src, dst := ss.client.RemoteAddr().(*net.TCPAddr), ss.client.LocalAddr().(*net.TCPAddr)
	h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4}
	if src.IP.To4() == nil || dst.IP.To4() == nil {
		h.TransportProtocol = proxyproto.TCPv6
		src = &net.TCPAddr{IP: src.IP.To16(), Port: src.Port}
		dst = &net.TCPAddr{IP: dst.IP.To16(), Port: dst.Port}
	} else {
		src = &net.TCPAddr{IP: src.IP.To4(), Port: src.Port}
		dst = &net.TCPAddr{IP: dst.IP.To4(), Port: dst.Port}
	}
	h.SourceAddr, h.DestinationAddr = src, dst
	if err := h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte(ss.id)}}); err != nil {
		return err
	}
	raw, err := h.Format()
	if err != nil {
		return err
	}
	_, err = c.Write(raw)
	return err
}

// relay copies both ways until both sides are done. Each direction ends
// with a half-close of the other side, so a client that shuts down its
// sending side still reads the rest of the backend's answer. An error in
// one direction ends both.
func relay(client, backend *net.TCPConn) (toBackend, toClient int64, err error) {
	type result struct {
		n   int64
		err error
	}
	// The first direction to end half-closes its destination; the close
	// that follows the second one sends its FIN.
	var ended atomic.Int32
	finish := func(dst *net.TCPConn, err error) {
		if err != nil {
			closeBoth(client, backend)
		} else if ended.Add(1) == 1 {
			dst.CloseWrite()
		}
	}
	up := make(chan result, 1)
	go func() {
		n, err := copyStream(backend, client)
		finish(backend, err)
		up <- result{n, err}
	}()
	toClient, err = copyStream(client, backend)
	finish(client, err)
	r := <-up
	return r.n, toClient, errors.Join(ignoreClosed(r.err), ignoreClosed(err))
}

// ignoreClosed drops the errors that a close from the other direction
// causes; they are not the session's failure.
func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// refuse answers a client that cannot be served with its protocol's
// temporary failure line and closes.
func (b *Balancer) refuse(c *net.TCPConn, svc, protocol, reason, line string) {
	b.metrics.refused.WithLabelValues(svc, reason).Inc()
	b.log.Info("refused", "service", svc, "client", c.RemoteAddr().String(), "reason", reason)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(refusals[protocol][line]))
	c.CloseWrite()
	// Clients of these protocols wait for the server to speak first, so
	// nothing unread makes the close a reset; a short linger lets the line
	// arrive even if one was sent.
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 4096))
	c.Close()
}
