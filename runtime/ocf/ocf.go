// Package ocf holds mailfleet's OCF resource agents, run by Pacemaker (and
// rgmanager) through two-line shims in /usr/lib/ocf/resource.d/mailfleet/
// that exec `mailfleetd ocf AGENT ACTION`:
//
//   - mount: one partition of an instance or of the directory (the
//     parameters of ocf:heartbeat:Filesystem that a site uses);
//   - vip: a service's address, announced with gratuitous ARP (IPv4) or an
//     unsolicited neighbour advertisement (IPv6), as ocf:heartbeat:IPaddr2;
//   - store: one mail instance (`mailfleetd store`).
//
// They are written in Go, not shell, because their starts are most of a
// failover: resource-agents' Filesystem and IPaddr2 fork dozens of
// processes each, and four of them starting at once on a busy two-core
// node took 2–2.5 s where these take milliseconds (bench/failover).
//
// An agent follows the OCF 1.1 API: the action is its argument, its
// parameters come in OCF_RESKEY_name, its exit code is the result, and a
// line "ocf-exit-reason:TEXT" on stderr says why an action failed. It must
// not import spec, render or remote.
package ocf

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// OCF exit codes.
const (
	Success          = 0
	ErrGeneric       = 1
	ErrArgs          = 2
	ErrUnimplemented = 3
	ErrPerm          = 4
	ErrInstalled     = 5
	ErrConfigured    = 6
	NotRunning       = 7
)

// Param is one parameter of an agent.
type Param struct {
	Name, Desc string
	Required   bool
	Unique     bool
	Default    string
	Integer    bool
}

// Agent is one resource agent: its parameters, its actions and their
// advised timeouts (for its meta-data).
type Agent struct {
	Name, Short, Long string
	Params            []Param
	// Start, Stop, Monitor and Validate return an OCF exit code.
	Start, Stop, Monitor, Validate func(*Env) int
	// MonitorInterval is the advised monitor interval (meta-data).
	MonitorInterval string
}

// Agents are mailfleet's agents by name.
var Agents = map[string]*Agent{}

func register(a *Agent) *Agent {
	Agents[a.Name] = a
	return a
}

// Env is what one run of an agent sees: its parameters (defaults applied),
// the resource's name and where it reports.
type Env struct {
	agent    *Agent
	params   map[string]string
	Resource string
	// Deadline is when Pacemaker gives up on this action (its timeout,
	// OCF_RESKEY_CRM_meta_timeout), less a margin for the answer.
	Deadline time.Time
	stderr   io.Writer
	// getenv is os.Getenv, or a test's.
	getenv func(string) string
}

// Param is parameter name, or its default.
func (e *Env) Param(name string) string {
	return e.params[name]
}

// Log writes a line of the agent's log: Pacemaker's execd copies an
// agent's stderr into its own log.
func (e *Env) Log(level, format string, args ...any) {
	fmt.Fprintf(e.stderr, "%s: %s\n", strings.ToUpper(level), fmt.Sprintf(format, args...))
}

// Fail reports why an action failed, as OCF asks, and returns rc.
func (e *Env) Fail(rc int, format string, args ...any) int {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	fmt.Fprintf(e.stderr, "ocf-exit-reason:%s\n", msg)
	return rc
}

// defaultTimeout bounds an action that Pacemaker did not give a timeout
// (a run by hand, ocf-tester).
const defaultTimeout = 20 * time.Second

func newEnv(a *Agent, getenv func(string) string, stderr io.Writer) *Env {
	e := &Env{agent: a, params: map[string]string{}, Resource: getenv("OCF_RESOURCE_INSTANCE"), stderr: stderr, getenv: getenv}
	if e.Resource == "" {
		e.Resource = "default"
	}
	for _, p := range a.Params {
		v := getenv("OCF_RESKEY_" + p.Name)
		if v == "" {
			v = p.Default
		}
		e.params[p.Name] = v
	}
	timeout := defaultTimeout
	if ms, err := strconv.Atoi(getenv("OCF_RESKEY_CRM_meta_timeout")); err == nil && ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	// Keep a tenth (at most 2 s) to answer before Pacemaker's own limit.
	e.Deadline = time.Now().Add(timeout - min(timeout/10, 2*time.Second))
	return e
}

// validateParams checks the required parameters and the integer ones.
func (e *Env) validateParams() int {
	for _, p := range e.agent.Params {
		v := e.params[p.Name]
		if p.Required && v == "" {
			return e.Fail(ErrConfigured, "parameter %s is required", p.Name)
		}
		if p.Integer && v != "" {
			if _, err := strconv.Atoi(v); err != nil {
				return e.Fail(ErrConfigured, "parameter %s=%q is not an integer", p.Name, v)
			}
		}
	}
	return Success
}

// Main runs `mailfleetd ocf AGENT ACTION` and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return run(args, os.Getenv, stdout, stderr)
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: mailfleetd ocf AGENT ACTION (agents: "+strings.Join(agentNames(), ", ")+")")
		return ErrArgs
	}
	a, ok := Agents[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mailfleetd ocf: unknown agent %q (agents: %s)\n", args[0], strings.Join(agentNames(), ", "))
		return ErrArgs
	}
	if len(args) != 2 {
		fmt.Fprintf(stderr, "usage: %s {start|stop|monitor|status|validate-all|meta-data}\n", a.Name)
		return ErrArgs
	}
	action := args[1]
	switch action {
	case "meta-data":
		stdout.Write(a.metaData())
		return Success
	case "usage", "help":
		fmt.Fprintf(stdout, "usage: %s {start|stop|monitor|status|validate-all|meta-data}\n", a.Name)
		return Success
	}
	e := newEnv(a, getenv, stderr)
	if action == "stop" {
		// A stop must work whatever the parameters say: Pacemaker
		// fences a node whose stop fails.
		return a.Stop(e)
	}
	if rc := e.validateParams(); rc != Success {
		return rc
	}
	switch action {
	case "start":
		return a.Start(e)
	case "monitor", "status":
		// status: rgmanager's name for it.
		return a.Monitor(e)
	case "validate-all":
		return a.Validate(e)
	}
	fmt.Fprintf(stderr, "usage: %s {start|stop|monitor|status|validate-all|meta-data}\n", a.Name)
	return ErrUnimplemented
}

// niceness is the calling thread's niceness.
func niceness() int {
	// The raw syscall answers 20 - nice.
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p
}

func agentNames() []string {
	var names []string
	for n := range Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type metaXML struct {
	XMLName xml.Name     `xml:"resource-agent"`
	Name    string       `xml:"name,attr"`
	Version string       `xml:"version,attr"`
	Ver     string       `xml:"version"`
	Long    metaDesc     `xml:"longdesc"`
	Short   metaDesc     `xml:"shortdesc"`
	Params  []metaParam  `xml:"parameters>parameter"`
	Actions []metaAction `xml:"actions>action"`
}

type metaDesc struct {
	Lang string `xml:"lang,attr"`
	Text string `xml:",chardata"`
}

type metaParam struct {
	Name     string   `xml:"name,attr"`
	Unique   int      `xml:"unique,attr"`
	Required int      `xml:"required,attr"`
	Long     metaDesc `xml:"longdesc"`
	Short    metaDesc `xml:"shortdesc"`
	Content  struct {
		Type    string `xml:"type,attr"`
		Default string `xml:"default,attr"`
	} `xml:"content"`
}

type metaAction struct {
	Name     string `xml:"name,attr"`
	Timeout  string `xml:"timeout,attr"`
	Interval string `xml:"interval,attr,omitempty"`
	Depth    string `xml:"depth,attr,omitempty"`
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// metaData is the agent's OCF meta-data.
func (a *Agent) metaData() []byte {
	m := metaXML{Name: a.Name, Version: "1.1", Ver: "1.0",
		Long: metaDesc{"en", a.Long}, Short: metaDesc{"en", a.Short}}
	for _, p := range a.Params {
		mp := metaParam{Name: p.Name, Unique: b2i(p.Unique), Required: b2i(p.Required),
			Long: metaDesc{"en", p.Desc}, Short: metaDesc{"en", p.Name}}
		mp.Content.Type = "string"
		if p.Integer {
			mp.Content.Type = "integer"
		}
		mp.Content.Default = p.Default
		m.Params = append(m.Params, mp)
	}
	m.Actions = []metaAction{{Name: "start", Timeout: "60s"}, {Name: "stop", Timeout: "60s"},
		{Name: "monitor", Timeout: "20s", Interval: a.MonitorInterval, Depth: "0"},
		{Name: "status", Timeout: "20s"}, {Name: "validate-all", Timeout: "20s"}, {Name: "meta-data", Timeout: "5s"}}
	b, err := xml.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // a fixed struct: cannot fail
	}
	return append([]byte(xml.Header+`<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">`+"\n"), append(b, '\n')...)
}
