package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

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
	logOut, closeLog, err := roleLog(func() (*os.File, error) { return frontend.LogFile(cfg) }, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd frontend: %v\n", err)
		return 1
	}
	defer closeLog()
	n, err := frontend.New(cfg, frontend.Options{Logger: slog.New(slog.NewJSONHandler(logOut, nil))})
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd frontend: %v\n", err)
		return 1
	}
	return runDaemon("frontend", n, shutdownGrace, stderr, nil, nil)
}
