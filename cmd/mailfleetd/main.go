// Command mailfleetd is the runtime installed on every host of a mailfleet
// site. Its roles:
//
//	balancer  the L4 balancer in front of the front-end nodes
//	frontend  the IMAP/POP3 proxies and the SMTP router of a front-end node
//	store     one backend mail instance
//	ocf       the OCF resource agents Pacemaker runs (mount, vip, store)
//	dev       a whole small site on loopback, for development
//	version   print the version
//
// `mailfleetd ROLE -config FILE` reads the JSON config that `mailfleet
// build` renders (runtime/config). The daemons import nothing of spec,
// render or remote: a host needs its config file, not the topology.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// roles maps each role to its entry point; each parses its own flags and
// returns the process exit code.
var roles = map[string]func(args []string, stdout, stderr io.Writer) int{}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: mailfleetd ROLE -config FILE [flags]

Roles:
  balancer   the L4 balancer in front of the front-end nodes
  frontend   the IMAP/POP3 proxies and the SMTP router of a front-end node
  store      one backend mail instance (SMTP/LMTP delivery, IMAP, POP3, admin API)
  dev        a whole small cluster on loopback for development (-data DIR)
  ocf        the OCF resource agents Pacemaker runs (mount, vip, store): ocf AGENT ACTION
  version    print the version

Run 'mailfleetd ROLE -h' for the flags of a role.
`)
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "mailfleetd", version)
		return 0
	}
	fn, ok := roles[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mailfleetd: unknown role %q\n", args[0])
		usage(stderr)
		return 2
	}
	return fn(args[1:], stdout, stderr)
}

// loadConfig reads and validates a role's config. With check it only says
// whether the file is valid. It returns the exit code and whether the role
// is done (an invalid config, or -check).
func loadConfig(role, path string, check bool, cfg interface{ Validate() error }, stdout, stderr io.Writer) (int, bool) {
	if err := config.Load(path, cfg); err != nil {
		fmt.Fprintf(stderr, "mailfleetd %s: %v\n", role, err)
		return 1, true
	}
	if check {
		fmt.Fprintf(stdout, "mailfleetd %s: %s is valid\n", role, path)
		return 0, true
	}
	return 0, false
}
