package main

import "github.com/mailfleet/mailfleet/runtime/ocf"

// `mailfleetd ocf AGENT ACTION`: the OCF resource agents that Pacemaker runs
// through the shims in /usr/lib/ocf/resource.d/mailfleet/.
func init() { roles["ocf"] = ocf.Main }
