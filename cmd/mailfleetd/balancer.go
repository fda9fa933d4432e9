package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mailfleet/mailfleet/runtime/balancer"
	"github.com/mailfleet/mailfleet/runtime/config"
)

func init() { roles["balancer"] = runBalancer }

type balancerArgs struct {
	config string
	check  bool
}

// runBalancer serves until SIGTERM or SIGINT; SIGHUP reopens the log file
// and reloads the config (a bad one is logged and the running config
// kept).
func runBalancer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailfleetd balancer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a balancerArgs
	fs.StringVar(&a.config, "config", "", "config `file` rendered by mailfleet build")
	fs.BoolVar(&a.check, "check", false, "validate the config and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if a.config == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mailfleetd balancer: use -config FILE")
		return 2
	}
	cfg := &config.Balancer{}
	if code, done := loadConfig("balancer", a.config, a.check, cfg, stdout, stderr); done {
		return code
	}
	// Session lines are buffered and written every 100 ms: one write(2)
	// per session would be a tenth of the balancer's system calls.
	logOut := &logWriter{w: stderr}
	if cfg.LogFile != "" {
		logOut.path = cfg.LogFile
		if err := logOut.reopen(); err != nil {
			fmt.Fprintf(stderr, "mailfleetd balancer: log file: %v\n", err)
			return 1
		}
	}
	stopFlush := logOut.flushEvery(100 * time.Millisecond)
	defer stopFlush()
	log := slog.New(slog.NewJSONHandler(logOut, nil)).With("role", "balancer")
	b, err := balancer.New(cfg, balancer.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd balancer: %v\n", err)
		return 1
	}
	// SIGHUP: reopen the log file (after logrotate moved it away) and
	// reload the config.
	hup := func() {
		if logOut.path != "" {
			if err := logOut.reopen(); err != nil {
				log.Error("reopening the log file", "err", err.Error())
			}
		}
		next := &config.Balancer{}
		if err := config.Load(a.config, next); err != nil {
			log.Error("reload failed, keeping the running config", "err", err.Error())
			return
		}
		b.Reload(next) // logs its own failure
	}
	return runDaemon("balancer", b, 0, stderr, nil, hup)
}

// logWriter buffers log lines for w, or for the file at path, which
// reopen opens again under its name.
type logWriter struct {
	path string
	mu   sync.Mutex
	w    io.Writer
	f    *os.File
	buf  *bufio.Writer
}

func (l *logWriter) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf != nil {
		l.buf.Flush()
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.w, l.buf = f, f, nil
	return nil
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf == nil {
		l.buf = bufio.NewWriterSize(l.w, 64<<10)
	}
	return l.buf.Write(b)
}

func (l *logWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf != nil {
		l.buf.Flush()
	}
}

// flushEvery flushes every d until the returned function, which flushes
// once more and closes the file.
func (l *logWriter) flushEvery(d time.Duration) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.flush()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		l.flush()
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.f != nil {
			l.f.Close()
		}
	}
}
