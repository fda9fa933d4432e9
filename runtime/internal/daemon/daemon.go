// Package daemon is the lifecycle the three roles of mailfleetd share
// (balancer, front-end, store): each is made with New(cfg, Options),
// binds with Listen, serves with Serve, and stops with Shutdown(ctx) (let
// the work in hand finish until ctx ends) or Close (now). This package
// holds the parts they had each written: binding a set of listeners in a
// stable order, serving each, telling a closed listener from a failure.
// It imports nothing of mailfleet.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
)

// Listeners are a role's bound sockets by kind (smtp, imap, admin, …).
type Listeners map[string]net.Listener

// Listen binds addrs (kind → address) in the order of their kinds; wrap,
// when not nil, may wrap each listener (limits, PROXY headers, TLS). On
// any failure everything bound so far is closed.
func Listen(role string, addrs map[string]string, wrap func(kind string, l net.Listener) (net.Listener, error)) (Listeners, error) {
	kinds := make([]string, 0, len(addrs))
	for k := range addrs {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	ls := Listeners{}
	for _, k := range kinds {
		l, err := net.Listen("tcp", addrs[k])
		if err == nil && wrap != nil {
			var w net.Listener
			if w, err = wrap(k, l); err != nil {
				l.Close()
			} else {
				l = w
			}
		}
		if err != nil {
			ls.Close()
			return nil, fmt.Errorf("%s: listen %s: %w", role, k, err)
		}
		ls[k] = l
	}
	return ls, nil
}

// Addrs is the bound address of each listener.
func (ls Listeners) Addrs() map[string]string {
	out := make(map[string]string, len(ls))
	for k, l := range ls {
		out[k] = l.Addr().String()
	}
	return out
}

// Close closes every listener.
func (ls Listeners) Close() {
	for _, l := range ls {
		l.Close()
	}
}

// Serve runs serve(kind) on each listener in a goroutine that wg counts,
// and logs the listeners. A serve that returns an error other than a
// closed listener's or server's (Closed) is logged.
func Serve(wg *sync.WaitGroup, log *slog.Logger, ls Listeners, serve func(kind string) func(net.Listener) error, closed ...error) {
	for kind, l := range ls {
		s := serve(kind)
		if s == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s(l); err != nil && !Closed(err, closed...) {
				log.Error("listener stopped", "listener", kind, "err", err)
			}
		}()
	}
	log.Info("serving", "listeners", ls.Addrs())
}

// Closed says whether err is the end of a listener or a server that was
// closed on purpose: net.ErrClosed, http.ErrServerClosed or one of more.
func Closed(err error, more ...error) bool {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return true
	}
	for _, m := range more {
		if errors.Is(err, m) {
			return true
		}
	}
	return false
}

// CloseNow is Close for a role that has Shutdown: a shutdown that gives
// the work in hand no time.
func CloseNow(shutdown func(context.Context) error) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
