//go:build unix

package splice

import (
	"io"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunSession100KB: one op is what an IMAP FETCH of 10 × 10 KB
// moves through a spliced session: a command up, ten 10 KB writes down
// (the test's own ends included). cpu-us/op is the process's CPU time.
func BenchmarkRunSession100KB(b *testing.B) {
	client, proxyClient := tcpPair(b)
	proxyBackend, backend := tcpPair(b)
	defer client.Close()
	defer backend.Close()
	done := make(chan struct{})
	go func() { Run(proxyClient, nil, proxyBackend, nil, time.Minute); close(done) }()
	chunk := make([]byte, 10<<10)
	cmd := make([]byte, 40)
	go func() {
		in := make([]byte, len(cmd))
		for {
			if _, err := io.ReadFull(backend, in); err != nil {
				return
			}
			for range 10 {
				if _, err := backend.Write(chunk); err != nil {
					return
				}
			}
		}
	}()
	got := make([]byte, 100<<10)
	b.SetBytes(int64(len(got)))
	b.ResetTimer()
	start := cpuTime()
	for range b.N {
		if _, err := client.Write(cmd); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, got); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-us/op")
	b.StopTimer()
	client.Close()
	<-done
}
