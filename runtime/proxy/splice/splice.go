package splice

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// smallSize is the buffer a direction reads into when its connection is
// not a bare socket (TLS, or a wrapper splice cannot see through): small,
// since most sessions sit idle (IMAP IDLE) and memory per idle session is
// what bounds a node. bigSize is the pooled buffer a direction copies with
// while bytes flow; an idle direction holds none.
const (
	smallSize = 4096
	bigSize   = 32 << 10
)

var bigBufs = sync.Pool{New: func() any { b := make([]byte, bigSize); return &b }}

// Socket is implemented by a connection wrapping a socket that it can hand
// over for splice to read directly (session's PROXY header reader): it
// returns the socket and the bytes the wrapper read from it but did not
// pass on yet. After it, the wrapper's Read must not be used.
type Socket interface {
	TakeSocket() (net.Conn, []byte)
}

// Run copies between client and backend; clientBuf and backendBuf hold
// bytes already read from each side (pipelined commands, a response's
// tail), which are passed on first. It returns when the session ended and
// has closed both connections: either side closed or failed, or nothing
// moved either way for idle (nor could a write make progress for idle).
//
// A bare TCP socket (or one under a Socket) is read without a buffer until
// it is readable, then drained with a pooled 32 KiB buffer; other
// connections are read into a 4 KiB buffer, switching to a pooled one while
// reads fill it. The idle timeout is a timer that looks at when bytes last
// moved, not a deadline updated on every read and write.
func Run(client net.Conn, clientBuf *bufio.Reader, backend net.Conn, backendBuf *bufio.Reader, idle time.Duration) {
	// Deadlines of the dialogue before login do not apply any more.
	client.SetDeadline(time.Time{})
	backend.SetDeadline(time.Time{})
	w := &watch{idle: idle, start: time.Now(), client: client, backend: backend}
	w.mu.Lock()
	w.timer = time.AfterFunc(idle, w.check)
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(backend, client, clientBuf, w, &w.writing[0])
		// The client is gone: the backend's side ends too.
		backend.Close()
	}()
	pipe(client, backend, backendBuf, w, &w.writing[1])
	client.Close()
	backend.Close()
	<-done
	w.ended.Store(true)
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

// watch enforces the idle timeout of a session.
type watch struct {
	idle            time.Duration
	start           time.Time // monotonic base of last and writing
	client, backend net.Conn
	mu              sync.Mutex
	timer           *time.Timer
	ended           atomic.Bool
	// last is when bytes were last read from either side; writing, per
	// direction, when the write in progress began (0: none).
	last    atomic.Int64
	writing [2]atomic.Int64
}

// now is the time since start, never 0.
func (w *watch) now() int64 { return int64(time.Since(w.start)) + 1 }

// check runs when the timer fires: it ends the session if it was idle or a
// write has been stuck for idle, else sets the timer again.
func (w *watch) check() {
	if w.ended.Load() {
		return
	}
	now := w.now()
	due := w.last.Load() + int64(w.idle) // nothing moved yet: since start
	for i := range w.writing {
		if s := w.writing[i].Load(); s != 0 {
			due = min(due, s+int64(w.idle))
		}
	}
	if now >= due {
		w.client.Close()
		w.backend.Close()
		return
	}
	w.mu.Lock()
	if !w.ended.Load() {
		w.timer.Reset(time.Duration(due - now))
	}
	w.mu.Unlock()
}

// write passes p on to dst, marking the write in progress for the watch.
func (w *watch) write(dst net.Conn, p []byte, writing *atomic.Int64) error {
	now := w.now()
	w.last.Store(now)
	writing.Store(now)
	_, err := dst.Write(p)
	writing.Store(0)
	return err
}

func pipe(dst, src net.Conn, buffered *bufio.Reader, w *watch, writing *atomic.Int64) {
	if buffered != nil {
		if n := buffered.Buffered(); n > 0 {
			p, _ := buffered.Peek(n)
			if err := w.write(dst, p, writing); err != nil {
				return
			}
		}
	}
	if s, ok := src.(Socket); ok {
		var held []byte
		src, held = s.TakeSocket()
		if len(held) > 0 {
			if err := w.write(dst, held, writing); err != nil {
				return
			}
		}
	}
	if tc, ok := src.(*net.TCPConn); ok {
		if ok, _ := copySocket(dst, tc, w, writing); ok {
			return
		}
	}
	copyConn(dst, src, w, writing)
}

// copyConn copies from a connection whose readiness cannot be seen: a read
// into the small buffer, then, while reads fill their buffer, reads into a
// pooled big one, which goes back to the pool once a read comes short.
func copyConn(dst, src net.Conn, w *watch, writing *atomic.Int64) {
	small := make([]byte, smallSize)
	for {
		n, err := src.Read(small)
		if n > 0 {
			if n < len(small) || err != nil {
				if werr := w.write(dst, small[:n], writing); werr != nil {
					return
				}
			} else if !copyBig(dst, src, small[:n], w, writing) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// copyBig goes on from a read that filled the small buffer (first) with a
// pooled buffer until a read does not fill it; false when the session must
// end.
func copyBig(dst, src net.Conn, first []byte, w *watch, writing *atomic.Int64) bool {
	bp := bigBufs.Get().(*[]byte)
	defer bigBufs.Put(bp)
	buf := *bp
	off := copy(buf, first)
	for {
		n, err := src.Read(buf[off:])
		if n+off > 0 {
			if werr := w.write(dst, buf[:off+n], writing); werr != nil {
				return false
			}
		}
		if err != nil {
			return false
		}
		if off+n < len(buf) {
			return true
		}
		off = 0
	}
}
