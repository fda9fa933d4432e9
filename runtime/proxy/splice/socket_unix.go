//go:build unix

package splice

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// copySocket copies from a socket until EOF or an error, like the
// balancer's copyStream: it waits for the socket to be readable without
// holding a buffer, then reads with a pooled one, which goes back to the
// pool as soon as its bytes are written. The write is done outside the
// raw read, since a Close of src waits for a raw read in progress and a
// write may block. ok is false when the socket offers no raw access.
func copySocket(dst net.Conn, src *net.TCPConn, w *watch, writing *atomic.Int64) (ok bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return false, err
	}
	for {
		var bp *[]byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			bp = bigBufs.Get().(*[]byte)
			for {
				n, rerr = syscall.Read(int(fd), *bp)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				bigBufs.Put(bp)
				bp = nil
				return false // wait, holding nothing
			}
			return true
		})
		if err == nil && rerr == nil && n == 0 {
			err = io.EOF
		}
		if err == nil {
			err = rerr
		}
		if err == nil && n > 0 {
			err = w.write(dst, (*bp)[:n], writing)
		}
		if bp != nil {
			bigBufs.Put(bp)
		}
		if err != nil {
			return true, err
		}
	}
}
