// Command failover measures, in the lab, how long each kind of failure
// interrupts the service and whether any acknowledged message is lost:
//
//	go run ./bench/failover run -lab examples/lab -n 10 -cases power,storekill
//
// (bench/failover/run.sh sets the lab up first). For every run of a case
// it starts an IMAP prober (a STARTTLS login through the balancer's VIP
// every 50 ms for an account on the instance under test) and an SMTP
// sender (numbered messages through the SMTP VIP without pause), injects
// the fault, waits for service, restores the lab, and at the end counts
// the messages in the mailbox: each acknowledged one must be there once.
// It prints a table: case, runs, median and worst outage, messages
// acknowledged/lost/duplicated, permanent refusals, fencing that should not
// have happened.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: failover run|soak|probe|sender|count [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run":
		runBench(os.Args[2:])
	case "soak":
		runSoak(os.Args[2:])
	case "probe":
		runProbe(os.Args[2:])
	case "sender":
		runSender(os.Args[2:])
	case "count":
		runCount(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "failover: unknown command", os.Args[1])
		os.Exit(2)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "failover:", err)
	os.Exit(1)
}
