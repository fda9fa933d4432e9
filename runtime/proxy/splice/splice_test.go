package splice

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
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
