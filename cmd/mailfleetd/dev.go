package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/mailfleet/mailfleet/runtime/devcluster"
)

func init() { roles["dev"] = runDev }

// runDev runs a whole cluster on loopback (runtime/devcluster) until
// SIGINT or SIGTERM. Its one line on stdout, once the cluster is ready, is
// the JSON description of it; everything else goes to stderr and to the
// log files under the data directory.
func runDev(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailfleetd dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var data, base string
	fs.StringVar(&data, "data", "", "`dir` for the cluster's mail, directory, secrets, topology and logs (kept across restarts)")
	fs.StringVar(&base, "addr-base", devcluster.DefaultAddrBase, fmt.Sprintf("first `address` of the %d consecutive 127.0.0.0/8 addresses the roles take", devcluster.AddrCount))
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if data == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mailfleetd dev: use -data DIR [-addr-base 127.0.0.X]")
		return 2
	}
	addr, err := netip.ParseAddr(base)
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd dev: -addr-base: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = devcluster.Run(ctx, devcluster.Options{Dir: data, AddrBase: addr, Log: stderr}, func(info devcluster.Info) error {
		b, err := json.Marshal(info)
		if err != nil {
			return err
		}
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			return err
		}
		if f, ok := stdout.(*os.File); ok {
			f.Sync() // a pipe cannot sync, and needs not: the write is done
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "mailfleetd dev: %v\n", err)
		return 1
	}
	return 0
}
