package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/mailfleet/mailfleet/runtime/config"
)

// The balancer and frontend roles arrive with the front-tier work; until
// then they validate their config and say plainly that they cannot serve.
func init() {
	roles["balancer"] = pending("balancer", func() interface{ Validate() error } { return &config.Balancer{} })
	roles["frontend"] = pending("frontend", func() interface{ Validate() error } { return &config.Frontend{} })
}

func pending(role string, newCfg func() interface{ Validate() error }) func([]string, io.Writer, io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet("mailfleetd "+role, flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "", "config `file` rendered by mailfleet build")
		check := fs.Bool("check", false, "validate the config and exit")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if *path == "" {
			fmt.Fprintf(stderr, "mailfleetd %s: -config is required\n", role)
			return 2
		}
		if err := config.Load(*path, newCfg()); err != nil {
			fmt.Fprintf(stderr, "mailfleetd %s: %v\n", role, err)
			return 1
		}
		if *check {
			fmt.Fprintf(stdout, "mailfleetd %s: %s is valid\n", role, *path)
			return 0
		}
		fmt.Fprintf(stderr, "mailfleetd %s: this build does not implement the %s role yet\n", role, role)
		return 1
	}
}
