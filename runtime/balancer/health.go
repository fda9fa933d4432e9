package balancer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// maxGreeting bounds the greeting line a health check reads.
const maxGreeting = 1024

// CheckGreeting reports whether line, the first line a server sent, is the
// ready greeting of protocol (smtp, imap or pop3): "220" for SMTP (also
// the first line of a multi-line "220-" greeting), "* OK" for IMAP, "+OK"
// for POP3. A server that greets with a refusal ("554", "* BYE", "-ERR")
// or anything else is not ready. The line may end in CRLF or LF.
func CheckGreeting(protocol string, line []byte) error {
	line = bytes.TrimRight(line, "\r\n")
	ok := false
	switch protocol {
	case "smtp":
		ok = len(line) == 3 && string(line) == "220" ||
			len(line) > 3 && string(line[:3]) == "220" && (line[3] == ' ' || line[3] == '-')
	case "imap":
		ok = hasWord(line, "* OK")
	case "pop3":
		ok = hasWord(line, "+OK")
	default:
		return fmt.Errorf("unknown protocol %q", protocol)
	}
	if !ok {
		return fmt.Errorf("unexpected %s greeting %q", protocol, printable(line))
	}
	return nil
}

// hasWord reports whether line is word, or word followed by a space.
func hasWord(line []byte, word string) bool {
	return bytes.HasPrefix(line, []byte(word)) && (len(line) == len(word) || line[len(word)] == ' ')
}

// printable is the start of line with control bytes replaced, for logs.
func printable(line []byte) string {
	if len(line) > 64 {
		line = line[:64]
	}
	out := make([]byte, len(line))
	for i, c := range line {
		if c < 0x20 || c >= 0x7f {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// goodbye is what a check sends after a good greeting, so that the
// front-end ends the session cleanly instead of logging a dropped client.
var goodbye = map[string]string{"smtp": "QUIT\r\n", "imap": "c LOGOUT\r\n", "pop3": "QUIT\r\n"}

var errNoLine = errors.New("greeting is not a line")

// localHeader is the PROXY v2 header a check sends to a backend that
// expects one: LOCAL, the command the protocol has for a proxy's own
// health checks, so the front-end greets at once instead of waiting for a
// header until its timeout (HAProxy's check-send-proxy).
var localHeader = func() []byte {
	h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	raw, err := h.Format()
	if err != nil {
		panic(err)
	}
	return raw
}()

// checkBackend connects to addr and waits for protocol's greeting, all
// within timeout. With proxyHdr it first sends a LOCAL PROXY v2 header.
func checkBackend(ctx context.Context, protocol, addr string, timeout time.Duration, proxyHdr bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	// A close of ctx (the checker stopping) ends the read at once.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if proxyHdr {
		if _, err := c.Write(localHeader); err != nil {
			return err
		}
	}
	line, err := bufio.NewReaderSize(c, maxGreeting).ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		err = errNoLine
	}
	if err != nil {
		if len(line) > 0 {
			return fmt.Errorf("greeting %q: %w", printable(line), err)
		}
		return fmt.Errorf("no greeting: %w", err)
	}
	if err := CheckGreeting(protocol, line); err != nil {
		return err
	}
	c.Write([]byte(goodbye[protocol]))
	return nil
}

// state is a backend's health as the checks see it.
type state int32

const (
	// stateUnknown: not checked yet; it takes connections, and its first
	// check decides up or down.
	stateUnknown state = iota
	stateUp
	stateDown
)

func (s state) String() string {
	switch s {
	case stateUp:
		return "up"
	case stateDown:
		return "down"
	}
	return "unknown"
}

// pokeGap is the least time between two checks that clients asked for.
const pokeGap = 10 * time.Millisecond

// runChecker checks be until it is stopped: every interval, or every fast
// interval while its state is in doubt, or at once when a client failed to
// connect to it.
func (b *Balancer) runChecker(s *service, be *backend) {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-be.stop; cancel() }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	rises, falls := 0, 0
	for {
		select {
		case <-be.stop:
			return
		case <-timer.C:
		case <-be.poke:
			// A burst of client failures is one reason to check, not many:
			// checks that clients ask for are at least pokeGap apart.
			if since := time.Since(last); since < pokeGap {
				timer.Reset(pokeGap - since)
				continue
			}
			timer.Stop()
		}
		s.mu.Lock()
		h, protocol, svcName, proxyHdr := s.cfg.Health, s.cfg.Protocol, s.cfg.Name, s.cfg.ProxyProtocol
		s.mu.Unlock()
		interval, timeout, fast := healthTimes(h)
		last = time.Now()
		err := checkBackend(ctx, protocol, be.addr, timeout, proxyHdr)
		took := time.Since(last)
		if ctx.Err() != nil {
			return
		}
		b.metrics.checkSeconds.WithLabelValues(svcName, be.name).Observe(took.Seconds())
		if err == nil {
			be.checksOK.Add(1)
			rises, falls = rises+1, 0
		} else {
			be.checksFailed.Add(1)
			rises, falls = 0, falls+1
		}
		be.setLastCheck(last, took, err)
		old := be.state()
		next := old
		switch {
		case old == stateUnknown && err == nil, old == stateDown && rises >= h.Rise:
			next = stateUp
		case old == stateUnknown && err != nil, old == stateUp && falls >= h.Fall:
			next = stateDown
		}
		if next != old {
			be.st.Store(int32(next))
			attrs := []any{"service", svcName, "backend", be.name, "address", be.addr, "from", old.String(), "to", next.String(),
				"check_ms", took.Milliseconds()}
			if err != nil {
				b.log.Warn("backend down", append(attrs, "err", err.Error())...)
			} else {
				b.log.Info("backend up", attrs...)
			}
		}
		wait := interval
		if next == stateUp && falls > 0 || next == stateDown && rises > 0 {
			wait = fast
		}
		timer.Reset(wait)
	}
}

// healthTimes are the interval, timeout and fast interval of h with the
// documented defaults.
func healthTimes(h config.HealthConfig) (interval, timeout, fast time.Duration) {
	interval = h.Interval.D()
	if interval <= 0 {
		interval = time.Second
	}
	timeout = h.Timeout.D()
	if timeout <= 0 {
		timeout = interval
	}
	fast = h.FastInterval.D()
	if fast <= 0 {
		fast = interval / 4
	}
	return interval, timeout, fast
}
