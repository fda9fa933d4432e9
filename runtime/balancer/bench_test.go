package balancer

// In-process benchmarks of the connection path, for profiling:
//   go test -run '^$' -bench . -cpuprofile cpu.out ./runtime/balancer
// bench/balancer/run.sh compares the real binary with HAProxy.

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// echoBackend greets as IMAP and echoes.
func echoBackend(b *testing.B, ip string) string {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("* OK bench ready\r\n"))
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func benchBalancer(b *testing.B) string {
	b1 := &testBackend{name: "b1", addr: echoBackend(b, "127.0.0.2")}
	b2 := &testBackend{name: "b2", addr: echoBackend(b, "127.0.0.3")}
	cfg := balancerConfig(svcCfg("imap", "imap", "127.0.0.10:0", "least_conn", health, b1, b2))
	cfg.Limits.MaxPerClient = 0
	bal, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := bal.Listen(); err != nil {
		b.Fatal(err)
	}
	bal.Serve()
	b.Cleanup(func() { bal.Close() })
	for deadline := time.Now().Add(time.Minute); !bal.Status().OK; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("backends never up")
		}
	}
	return bal.Addrs()["imap"]
}

// BenchmarkShortSession: connect, greeting, one line echoed, close.
func BenchmarkShortSession(b *testing.B) {
	addr := benchBalancer(b)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 64)
		for pb.Next() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
			}
			c.Write([]byte("a LOGOUT\r\n"))
			io.ReadFull(c, buf[:10])
			c.Close()
		}
	})
}

// BenchmarkBulk streams through one session; bytes/s is the rate one way.
func BenchmarkBulk(b *testing.B) {
	addr := benchBalancer(b)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	if _, err := c.Read(buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, c, int64(b.N)*int64(len(buf)))
		done <- err
	}()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
