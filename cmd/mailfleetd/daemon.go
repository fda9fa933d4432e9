package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// daemon is the lifecycle the three roles share (runtime/internal/daemon).
type daemon interface {
	Listen() error
	Serve()
	Shutdown(ctx context.Context) error
}

// shutdownGrace is how long a stopping front-end or store lets the work in
// hand finish (SMTP transactions) before it cuts it. The balancer, an L4
// relay that cannot tell a transaction from an idle IMAP session, cuts its
// sessions at once (grace 0), as HAProxy's hard stop does: the clients
// reconnect through the other balancer.
const shutdownGrace = 30 * time.Second

// runDaemon binds d's listeners, calls serving (when not nil: the ready
// file, the dev line), serves until SIGTERM or SIGINT, then shuts d down
// within grace (0: at once). A SIGHUP calls hup when there is one (and is
// ignored otherwise). Signals are caught before the listeners open, so a
// signal sent as soon as the process accepts is handled, not fatal.
func runDaemon(role string, d daemon, grace time.Duration, stderr io.Writer, serving func() error, hup func()) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := d.Listen(); err != nil {
		fmt.Fprintf(stderr, "mailfleetd %s: %v\n", role, err)
		return 1
	}
	d.Serve()
	if serving != nil {
		if err := serving(); err != nil {
			fmt.Fprintf(stderr, "mailfleetd %s: %v\n", role, err)
			d.Shutdown(context.Background())
			return 1
		}
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if hup != nil {
				hup()
			}
			continue
		}
		fmt.Fprintf(stderr, "mailfleetd %s: %v, shutting down\n", role, sig)
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil && (grace > 0 || !errors.Is(err, context.DeadlineExceeded)) {
		fmt.Fprintf(stderr, "mailfleetd %s: shutdown: %v\n", role, err)
		return 1
	}
	return 0
}

// roleLog opens a role's log file (open returns nil, nil when the config
// names none: stderr then).
func roleLog(open func() (*os.File, error), stderr io.Writer) (io.Writer, func(), error) {
	f, err := open()
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	if f == nil {
		return stderr, func() {}, nil
	}
	return f, func() { f.Close() }, nil
}
