package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/frontend"
)

func init() { roles["frontend"] = runFrontend }

type frontendArgs struct {
	config string
	check  bool
}

func runFrontend(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailfleetd frontend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a frontendArgs
	fs.StringVar(&a.config, "config", "", "config `file` rendered by mailfleet build")
	fs.BoolVar(&a.check, "check", false, "validate the config and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if a.config == "" {
		fmt.Fprintln(stderr, "mailfleetd frontend: -config is required")
		return 2
	}
	cfg := &config.Frontend{}
	if code, done := loadConfig("frontend", a.config, a.check, cfg, stdout, stderr); done {
		return code
	}
	var logOut io.Writer = stderr
	if f, err := frontend.LogFile(cfg); err != nil {
		fmt.Fprintf(stderr, "mailfleetd frontend: log file: %v\n", err)
		return 1
	} else if f != nil {
		defer f.Close()
		logOut = f
	}
	n, err := frontend.New(cfg, frontend.Options{Logger: slog.New(slog.NewJSONHandler(logOut, nil))})
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd frontend: %v\n", err)
		return 1
	}
	if err := n.Listen(); err != nil {
		fmt.Fprintf(stderr, "mailfleetd frontend: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	n.Serve()
	sig := <-sigs
	fmt.Fprintf(stderr, "mailfleetd frontend: %v, shutting down\n", sig)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		fmt.Fprintf(stderr, "mailfleetd frontend: shutdown: %v\n", err)
		return 1
	}
	return 0
}
