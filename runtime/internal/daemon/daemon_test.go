package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
)

// TestListenFailure: a listener that cannot bind fails Listen with its
// kind, and the ones bound before it are closed again.
func TestListenFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var bound []net.Listener
	_, err = Listen("test", map[string]string{"a": "127.0.0.1:0", "b": taken.Addr().String()},
		func(kind string, l net.Listener) (net.Listener, error) { bound = append(bound, l); return l, nil })
	if err == nil || len(bound) != 1 {
		t.Fatalf("Listen with a taken port: %v after %d bound, want an error after 1", err, len(bound))
	}
	if _, aerr := bound[0].Accept(); !errors.Is(aerr, net.ErrClosed) {
		t.Errorf("the listener bound before the failure: Accept = %v, want it closed", aerr)
	}
	if want := "test: listen b:"; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("error %q does not name the listener", err)
	}
	_, err = Listen("test", map[string]string{"a": "127.0.0.1:0"}, func(string, net.Listener) (net.Listener, error) {
		return nil, errors.New("no certificate")
	})
	if err == nil {
		t.Error("a wrap error did not fail Listen")
	}
}

func TestServeAndClosed(t *testing.T) {
	ls, err := Listen("test", map[string]string{"x": "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	mine := errors.New("mine: closed")
	served := make(chan struct{})
	Serve(&wg, slog.New(slog.NewTextHandler(io.Discard, nil)), ls, func(kind string) func(net.Listener) error {
		return func(l net.Listener) error {
			close(served)
			_, err := l.Accept()
			return fmt.Errorf("serve: %w", err)
		}
	}, mine)
	<-served
	ls.Close()
	wg.Wait()
	for _, c := range []struct {
		err  error
		want bool
	}{{net.ErrClosed, true}, {fmt.Errorf("x: %w", http.ErrServerClosed), true}, {mine, true}, {errors.New("use of closed network connection"), false}, {io.EOF, false}} {
		if got := Closed(c.err, mine); got != c.want {
			t.Errorf("Closed(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
