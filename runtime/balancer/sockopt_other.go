//go:build !linux

package balancer

import (
	"net"
	"syscall"
	"time"
)

// freebind is Linux only; elsewhere a listener needs its address to be up.
func freebind(network, address string, c syscall.RawConn) error { return nil }

// sinceLastData is unknown off Linux: sessions then never time out idle.
func sinceLastData(c *net.TCPConn) (time.Duration, bool) { return 0, false }

// copyStream is io.Copy elsewhere.
func copyStream(dst, src *net.TCPConn) (int64, error) { return dst.ReadFrom(src) }
