package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store"
)

func init() { roles["store"] = runStore }

type storeArgs struct {
	config string
	check  bool
	dev    bool
	data   string
	ready  string
}

// writeReady writes this process's pid to path (temp file and rename, so
// that whoever waits for it never reads half of it).
func writeReady(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func runStore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailfleetd store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a storeArgs
	fs.StringVar(&a.config, "config", "", "config `file` rendered by mailfleet build")
	fs.BoolVar(&a.check, "check", false, "validate the config and exit")
	fs.BoolVar(&a.dev, "dev", false, "development mode: 127.0.0.1, free ports, one throwaway account")
	fs.StringVar(&a.data, "data", "", "development mode: `dir` for mail, credentials and logs")
	fs.StringVar(&a.ready, "ready-file", "", "write the pid to `file` once every listener is bound (for the OCF agent's start)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg *config.Store
	var cred store.DevCredentials
	switch {
	case a.dev && a.config != "", a.dev && a.data == "", !a.dev && a.config == "", !a.dev && a.data != "":
		fmt.Fprintln(stderr, "mailfleetd store: use either -config FILE or -dev -data DIR")
		return 2
	case a.dev:
		var err error
		if cfg, cred, err = store.DevConfig(a.data); err != nil {
			fmt.Fprintf(stderr, "mailfleetd store: %v\n", err)
			return 1
		}
	default:
		cfg = &config.Store{}
		if code, done := loadConfig("store", a.config, a.check, cfg, stdout, stderr); done {
			return code
		}
	}
	logOut, closeLog, err := roleLog(func() (*os.File, error) { return store.LogFile(cfg) }, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd store: %v\n", err)
		return 1
	}
	defer closeLog()
	in, err := store.New(cfg, store.Options{Logger: slog.New(slog.NewJSONHandler(logOut, nil))})
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd store: %v\n", err)
		return 1
	}
	// Once every listener is bound: the ready file the OCF agent waits
	// for, and in development the line that says where everything is.
	serving := func() error {
		if a.ready != "" {
			if err := writeReady(a.ready); err != nil {
				return fmt.Errorf("ready file: %w", err)
			}
		}
		if a.dev {
			line := map[string]string{"user": cred.User, "password": cred.Password, "admin_secret": cred.AdminSecret, "data": cfg.StoragePath}
			for k, v := range in.Addrs() {
				line[k] = v
			}
			b, _ := json.Marshal(line)
			fmt.Fprintf(stdout, "%s\n", b)
			if f, ok := stdout.(*os.File); ok {
				f.Sync()
			}
		}
		return nil
	}
	if a.ready != "" {
		defer os.Remove(a.ready)
	}
	return runDaemon("store", in, shutdownGrace, stderr, serving, nil)
}
