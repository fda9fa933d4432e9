// Command mailfleet is the compiler and deployer of a mailfleet site, run
// from an admin's workstation or CI. Its commands:
//
//	validate  check a topology for mistakes (nothing touches a host)
//	build     render every host's files into a directory
//	fmt       rewrite topology files in the canonical format
//	graph     draw the topology (SVG or DOT)
//	plan      show what apply would change on every host (over SSH)
//	apply     make every host match the topology (or a saved plan)
//	account   create, change, check and move mail accounts
//	cluster   status, history and operations of the site's cluster
//	lab       build the topology's hosts on this machine in namespaces
//	version   print the version
//
// Exit codes follow Terraform: 0 success, 1 error (plan -detailed-exitcode:
// 2 when there are changes). Being the admin's tool it may import every
// package of the module but the daemons' insides (runtime/store,
// runtime/frontend, runtime/balancer).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	color          bool
	getenv         func(string) (string, bool)
	// allowPaths are the directories outside the topology's own that
	// file() may read (-allow-path, every command that reads a topology).
	allowPaths multiFlag
}

type command struct {
	name, args, help string
	run              func(e *env, args []string) int
}

var commands []command

func init() {
	commands = []command{
		{"validate", "[-json] PATH", "Check a topology for mistakes; nothing touches a host.", runValidate},
		{"build", "-o DIR PATH", "Render every host's files into DIR/<node>/<path> with DIR/manifest.json.", runBuild},
		{"fmt", "[-check] [-diff] PATH...", "Rewrite topology files in the canonical HCL format.", runFmt},
		{"graph", "[-format svg|dot] [-o FILE] PATH", "Draw the topology: tiers, nodes, VIPs, services and failover paths.", runGraph},
		{"plan", "[flags] PATH", "Show what apply would change on every host (reads them over SSH).", runPlan},
		{"apply", "[flags] PATH|PLANFILE", "Make every host match the topology (or a saved plan) over SSH.", runApply},
		{"account", "COMMAND [flags] [args]", "Create, change, check and move mail accounts (mailfleet account help).", runAccount},
		{"cluster", "COMMAND [flags] PATH [args]", "Status, history and operations of the site's cluster: relocate, enable, disable, standby, fence (mailfleet cluster help).", runCluster},
		{"lab", "COMMAND [flags] PATH", "Build the topology's hosts on this machine to deploy to (mailfleet lab help).", runLab},
		{"version", "", "Print the version.", runVersion},
		{"help", "", "Show this help.", runHelp},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: mailfleet COMMAND [flags] [args]

mailfleet turns one HCL topology into a running, highly available mail
service. PATH is a topology: one .hcl file or a directory of them.

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %-34s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprint(w, `
Flags may come before or after the arguments, with one or two dashes.

Exit status: 0 success; 1 error (invalid topology, bad usage, failure);
fmt -check exits 1 when a file is not formatted.

Environment: MAILFLEET_VAR_<name> sets topology variable <name>; env() and
file() in the topology read secrets, which are never printed.
`)
}

func main() {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.LookupEnv,
		color: term.IsTerminal(int(os.Stdout.Fd())) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"}
	os.Exit(run(e, os.Args[1:]))
}

func run(e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return 1
	}
	name := strings.TrimLeft(args[0], "-")
	if name == "h" {
		name = "help"
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "mailfleet: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return 1
}

func runVersion(e *env, args []string) int {
	fmt.Fprintln(e.stdout, "mailfleet", version)
	return 0
}

func runHelp(e *env, args []string) int {
	usage(e.stdout)
	return 0
}

// parse parses flags that may stand before or after the positional
// arguments ("validate PATH -json" and "validate -json PATH" alike).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // fs.Parse reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

func newFlags(e *env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("mailfleet "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Var(&e.allowPaths, "allow-path", "let the topology's file() read below `DIR` too (repeatable; by default it reads below the topology's own directory only)")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: mailfleet %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parsePath parses the flags of a command that takes one topology PATH and
// returns it; false after it printed why it could not.
func parsePath(e *env, fs *flag.FlagSet, args []string) (string, bool) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", false
	}
	return onePath(e, fs, pos)
}

func onePath(e *env, fs *flag.FlagSet, pos []string) (string, bool) {
	if len(pos) != 1 {
		fmt.Fprintf(e.stderr, "%s: expected one topology PATH, got %d arguments\n", fs.Name(), len(pos))
		fs.Usage()
		return "", false
	}
	return pos[0], true
}

// subcommands is a group of commands (mailfleet lab, mailfleet cluster):
// the listed ones, those it runs but does not list, and its usage text.
type subcommands struct {
	group, intro string
	cmds         []command
	hidden       map[string]func(e *env, args []string) int
}

// usage prints the group's intro and its listed commands, aligned.
func (s subcommands) usage(w io.Writer) {
	fmt.Fprint(w, s.intro)
	nw, aw := 0, 0
	for _, c := range s.cmds {
		nw, aw = max(nw, len(c.name)), max(aw, len(c.args))
	}
	for _, c := range s.cmds {
		fmt.Fprintf(w, "  %-*s %-*s %s\n", nw, c.name, aw, c.args, c.help)
	}
}

// run runs the command args[0] names with the rest of args; help, no
// command or an unknown one print the usage (exit 0, 1, 1).
func (s subcommands) run(e *env, args []string) int {
	if len(args) == 0 {
		s.usage(e.stderr)
		return 1
	}
	name := strings.TrimLeft(args[0], "-")
	if name == "help" || name == "h" {
		s.usage(e.stderr)
		return 0
	}
	for _, c := range s.cmds {
		if c.name == name {
			return c.run(e, args[1:])
		}
	}
	if f, ok := s.hidden[name]; ok {
		return f(e, args[1:])
	}
	fmt.Fprintf(e.stderr, "mailfleet %s: unknown command %q\n\n", s.group, args[0])
	s.usage(e.stderr)
	return 1
}
