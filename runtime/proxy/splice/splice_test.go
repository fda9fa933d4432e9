package splice

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return a, <-ch
}

func TestRunCopiesBothWaysWithBufferedBytes(t *testing.T) {
	client, proxyClient := tcpPair(t)
	proxyBackend, backend := tcpPair(t)
	defer client.Close()
	defer backend.Close()
	cbuf := bufio.NewReader(strings.NewReader("pipelined\n"))
	cbuf.Peek(1)
	bbuf := bufio.NewReader(strings.NewReader("tail\n"))
	bbuf.Peek(1)
	done := make(chan struct{})
	go func() { Run(proxyClient, cbuf, proxyBackend, bbuf, 5*time.Second); close(done) }()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	backend.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(backend)
	if l, _ := br.ReadString('\n'); l != "pipelined\n" {
		t.Fatalf("backend got %q", l)
	}
	cr := bufio.NewReader(client)
	if l, _ := cr.ReadString('\n'); l != "tail\n" {
		t.Fatalf("client got %q", l)
	}
	client.Write([]byte("a SELECT INBOX\r\n"))
	if l, _ := br.ReadString('\n'); l != "a SELECT INBOX\r\n" {
		t.Fatalf("backend got %q", l)
	}
	backend.Write([]byte("a OK\r\n"))
	if l, _ := cr.ReadString('\n'); l != "a OK\r\n" {
		t.Fatalf("client got %q", l)
	}
	// The backend hangs up: the client's side is closed too.
	backend.Close()
	if _, err := cr.ReadString('\n'); err != io.EOF {
		t.Fatalf("client after backend close: %v", err)
	}
	<-done
}

func TestRunIdleTimeout(t *testing.T) {
	client, proxyClient := tcpPair(t)
	proxyBackend, backend := tcpPair(t)
	defer client.Close()
	defer backend.Close()
	done := make(chan struct{})
	go func() { Run(proxyClient, nil, proxyBackend, nil, 200*time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("idle session not cut")
	}
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("client connection still open")
	}
}

// wrapped hides the socket: the copy reads it through Read, as it does a
// TLS connection.
type wrapped struct{ net.Conn }

// socketConn hands its socket over with bytes it held, as session's
// PROXY header reader does.
type socketConn struct {
	net.Conn
	held []byte
}

func (c *socketConn) TakeSocket() (net.Conn, []byte) { return c.Conn, c.held }

func TestRunCopiesLargeStreamsBothWays(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
		held string
	}{
		{"socket", func(c net.Conn) net.Conn { return c }, ""},
		{"wrapped", func(c net.Conn) net.Conn { return wrapped{c} }, ""},
		{"held", func(c net.Conn) net.Conn { return &socketConn{Conn: c, held: []byte("held")} }, "held"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, proxyClient := tcpPair(t)
			proxyBackend, backend := tcpPair(t)
			defer client.Close()
			defer backend.Close()
			done := make(chan struct{})
			go func() { Run(tc.wrap(proxyClient), nil, tc.wrap(proxyBackend), nil, 5*time.Second); close(done) }()
			client.SetDeadline(time.Now().Add(20 * time.Second))
			backend.SetDeadline(time.Now().Add(20 * time.Second))
			up := make([]byte, 1<<20+17)
			down := make([]byte, 3<<20+5)
			for i := range up {
				up[i] = byte(i * 7)
			}
			for i := range down {
				down[i] = byte(i * 13)
			}
			errs := make(chan error, 2)
			go func() { _, err := client.Write(up); errs <- err }()
			go func() { _, err := backend.Write(down); errs <- err }()
			gotUp := make([]byte, len(tc.held)+len(up))
			if _, err := io.ReadFull(backend, gotUp); err != nil {
				t.Fatal(err)
			}
			gotDown := make([]byte, len(tc.held)+len(down))
			if _, err := io.ReadFull(client, gotDown); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if string(gotUp) != tc.held+string(up) || string(gotDown) != tc.held+string(down) {
				t.Fatal("bytes differ")
			}
			// The client hangs up: the backend's side is closed too.
			client.Close()
			if _, err := backend.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("backend after client close: %v", err)
			}
			<-done
		})
	}
}

func TestRunIdleTimeoutWrappedAndBusy(t *testing.T) {
	client, proxyClient := tcpPair(t)
	proxyBackend, backend := tcpPair(t)
	defer client.Close()
	defer backend.Close()
	done := make(chan struct{})
	start := time.Now()
	go func() { Run(wrapped{proxyClient}, nil, proxyBackend, nil, 300*time.Millisecond); close(done) }()
	// Bytes one way only keep the session: it is idle only when nothing
	// moves either way.
	go io.Copy(io.Discard, backend)
	for range 8 {
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		select {
		case <-done:
			t.Fatal("busy session cut")
		default:
		}
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("idle session not cut")
	}
	if d := time.Since(start); d < 950*time.Millisecond {
		t.Fatalf("cut after %v", d)
	}
}

func TestRunStuckWriteIsCut(t *testing.T) {
	client, proxyClient := tcpPair(t)
	proxyBackend, backend := tcpPair(t)
	defer client.Close()
	defer backend.Close()
	done := make(chan struct{})
	go func() { Run(proxyClient, nil, proxyBackend, nil, 300*time.Millisecond); close(done) }()
	// The backend never reads: the copy's write blocks once the socket
	// buffers are full, and the session ends after the idle time.
	go func() {
		b := make([]byte, 64<<10)
		for {
			if _, err := client.Write(b); err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("stuck session not cut")
	}
}
