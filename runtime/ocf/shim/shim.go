// Package shim is what a host needs to run mailfleet's OCF resource agents
// (package ocf, in mailfleetd): where they are installed and the small
// script Pacemaker runs for each. render writes these files, so this
// package is a leaf: it runs nothing and imports nothing of mailfleet.
package shim

import "strconv"

// Binary is where mailfleet installs mailfleetd.
const Binary = "/usr/local/bin/mailfleetd"

// Dir is the OCF provider directory of mailfleet's agents.
const Dir = "/usr/lib/ocf/resource.d/mailfleet"

// Script is the file Pacemaker runs as agent name: it execs binary's
// implementation, or says the binary is missing (OCF_ERR_INSTALLED). The
// store's uses the binary its resource names, so that the store and its
// agent come from one build. Pacemaker runs agents at niceness 0, beside
// the mail load, yet their starts and stops are the failover itself: the
// shim runs them at -10 (from their first instruction: a Go program's start
// is much of a short agent's time on a busy node).
func Script(name, binary string) []byte {
	bin := binary
	if name == "store" {
		bin = "${OCF_RESKEY_binary:-" + binary + "}"
	}
	run := `"$bin" ocf ` + name + ` "$@"`
	return []byte("#!/bin/sh\n# OCF resource agent ocf:mailfleet:" + name + ", installed by mailfleet:\n" +
		"# `mailfleetd ocf " + name + " meta-data` describes it.\n" +
		"bin=\"" + bin + "\"\n" +
		"[ -x \"$bin\" ] || { echo \"ocf-exit-reason:$bin is not executable\" >&2; exit 5; }\n" +
		"case \"$1\" in\nmeta-data|usage|help) exec " + run + " ;;\nesac\n" +
		"# Ahead of the mail load: a start or a stop is the failover.\n" +
		"exec nice -n " + strconv.Itoa(agentNice) + " " + run + "\n")
}

// agentNice is the niceness the shims run the agents at.
const agentNice = -10
