package splice

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// bufSize is each direction's copy buffer: small, since most sessions sit
// idle (IMAP IDLE) and memory per idle session is what bounds a node.
const bufSize = 4096

// Run copies between client and backend; clientBuf and backendBuf hold
// bytes already read from each side (pipelined commands, a response's
// tail), which are passed on first. It returns when the session ended and
// has closed both connections.
func Run(client net.Conn, clientBuf *bufio.Reader, backend net.Conn, backendBuf *bufio.Reader, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(backend, client, clientBuf, idle, &last)
		// The client is gone: the backend's side ends too.
		backend.Close()
	}()
	pipe(client, backend, backendBuf, idle, &last)
	client.Close()
	backend.Close()
	<-done
}

func pipe(dst, src net.Conn, buffered *bufio.Reader, idle time.Duration, last *atomic.Int64) {
	if buffered != nil {
		if n := buffered.Buffered(); n > 0 {
			p, _ := buffered.Peek(n)
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, err := dst.Write(p); err != nil {
				return
			}
		}
	}
	buf := make([]byte, bufSize)
	for {
		src.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, last.Load())) < idle {
				// The other direction was busy: not idle.
				continue
			}
			return
		}
	}
}
