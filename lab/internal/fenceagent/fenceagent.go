// Package fenceagent holds fence_mailfleet_lab, the fence agent the lab puts
// in every node's /usr/sbin: a Python 3 script with the fence-agents
// interface that asks the lab's power switch (mailfleet lab pdu).
// It imports nothing of mailfleet.
package fenceagent

import _ "embed"

// Script is the agent, installed with mode 0755.
//
//go:embed fence_mailfleet_lab.py
var Script []byte
