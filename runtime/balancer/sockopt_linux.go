package balancer

import (
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// freebind lets a listener bind an address the host does not hold (yet):
// the backup balancer of a VRRP pair listens on the VIPs before keepalived
// moves them to it.
func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		if network == "tcp6" {
			// Older kernels know only IP_FREEBIND, which covers IPv6 too.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// sinceLastData is how long ago the kernel last received data on c. It
// lets the idle timeout watch spliced connections, whose bytes never pass
// through this process.
func sinceLastData(c *net.TCPConn) (time.Duration, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil {
		return 0, false
	}
	return time.Duration(info.Last_data_recv) * time.Millisecond, true
}

// copyBufs are the buffers of copyStream, held only while bytes are in
// flight: an idle session holds none.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyStream copies src to dst until EOF, like io.Copy, but waits for
// data without holding a buffer: splice(2) would hold two pipes, four
// descriptors, per idle session. A read that did not fill the buffer is
// still followed by another until EAGAIN: a FIN that came with the last
// data raises no new readiness event, so only a read can see it.
func copyStream(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	var rerr, werr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			bp := copyBufs.Get().(*[]byte)
			var n int
			for {
				n, rerr = unix.Read(int(fd), *bp)
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				rerr = nil
				copyBufs.Put(bp)
				return false // wait, holding nothing
			}
			if rerr != nil || n <= 0 {
				copyBufs.Put(bp)
				return true // error, or EOF
			}
			_, werr = dst.Write((*bp)[:n])
			copyBufs.Put(bp)
			total += int64(n)
			if werr != nil {
				return true
			}
		}
	})
	if werr != nil {
		return total, werr
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Source: src.LocalAddr(), Addr: src.RemoteAddr(), Err: err}
	}
	return total, err
}
