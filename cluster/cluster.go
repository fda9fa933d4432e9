// Package cluster operates a site's Pacemaker cluster in the topology's
// names, as the reference's clusvcadm and clustat do for RHCS: status,
// enable, disable, relocate, standby/online, fence, and the history of
// failovers and relocations read from Pacemaker's own records (crm_mon,
// the fencing history, the cluster's logs). It runs Pacemaker's command
// line tools on the cluster's nodes through a Runner (SSH in mailfleet,
// anything in tests) and never keeps state of its own.
//
// It imports spec (names and node lists) and nothing of render, remote or
// runtime.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/spec"
)

// Runner runs argv on a cluster node and returns its standard output; a
// failure (unreachable node, non-zero exit) is an error that says why.
type Runner interface {
	Run(ctx context.Context, node string, argv ...string) ([]byte, error)
}

// Service is what the cluster moves as one: a mail instance or the
// directory, by its topology name (its resource group in the CIB).
type Service struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`   // "instance" or "directory"
	Daemon string   `json:"daemon"` // the group's daemon resource (the store, slapd)
	Nodes  []string `json:"nodes"`  // preferred first, then failover
}

// Site is the cluster as the topology states it.
type Site struct {
	Members  []string
	Services []Service
}

// FromTopology is the cluster of t. The resource names are render's: a
// group named after the service holding "<name>-store" or "<name>-slapd".
func FromTopology(t *spec.Topology) Site {
	var s Site
	for _, n := range t.BackendNodes() {
		s.Members = append(s.Members, n.Name)
	}
	names := func(ns []*spec.Node) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Name)
		}
		return out
	}
	for _, i := range t.Instances {
		s.Services = append(s.Services, Service{Name: i.Name, Kind: "instance", Daemon: i.Name + "-store", Nodes: names(i.Nodes)})
	}
	if d := t.Directory; d != nil {
		s.Services = append(s.Services, Service{Name: d.Name, Kind: "directory", Daemon: d.Name + "-slapd", Nodes: names(d.Nodes)})
	}
	return s
}

// Ops runs the operations on Site through Run.
type Ops struct {
	Site Site
	Run  Runner
	// Wait bounds how long enable, disable and relocate wait for the
	// cluster to finish; zero is two minutes.
	Wait time.Duration
}

// ErrNotUp: no member answered (the cluster is not running, or no node can
// be reached).
var ErrNotUp = errors.New("the cluster is not up: no member answered")

// UnknownError is a name that is not in the topology.
type UnknownError struct{ Kind, Name string }

func (e *UnknownError) Error() string {
	return fmt.Sprintf("%s %q is not in the topology", e.Kind, e.Name)
}

// Service returns the service called name.
func (o *Ops) Service(name string) (Service, error) {
	for _, s := range o.Site.Services {
		if s.Name == name {
			return s, nil
		}
	}
	return Service{}, &UnknownError{"instance or directory", name}
}

func (o *Ops) member(name string) error {
	if slices.Contains(o.Site.Members, name) {
		return nil
	}
	return &UnknownError{"cluster node", name}
}

// onAny runs argv on the first member that runs it, in the topology's
// order, preferring those not in avoid. It returns the output and the node.
func (o *Ops) onAny(ctx context.Context, avoid []string, argv ...string) ([]byte, string, error) {
	order := slices.Clone(o.Site.Members)
	slices.SortStableFunc(order, func(a, b string) int {
		ai, bi := slices.Contains(avoid, a), slices.Contains(avoid, b)
		switch {
		case ai == bi:
			return 0
		case ai:
			return 1
		}
		return -1
	})
	var errs []error
	for _, n := range order {
		out, err := o.Run.Run(ctx, n, argv...)
		if err == nil {
			return out, n, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", n, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", fmt.Errorf("%w (%v)", ErrNotUp, errors.Join(errs...))
}

func (o *Ops) wait() time.Duration {
	if o.Wait > 0 {
		return o.Wait
	}
	return 2 * time.Minute
}

// Enable starts svc (clusvcadm -e), on node when it is not empty (clusvcadm
// -e -m), and waits until its daemon runs.
func (o *Ops) Enable(ctx context.Context, svc, node string) error {
	s, err := o.Service(svc)
	if err != nil {
		return err
	}
	if node != "" {
		if err := o.onList(s, node); err != nil {
			return err
		}
	}
	if _, _, err := o.onAny(ctx, nil, "crm_resource", "--resource", s.Name, "--meta", "--set-parameter", "target-role", "--parameter-value", "Started"); err != nil {
		return err
	}
	if node != "" {
		return o.Relocate(ctx, svc, node)
	}
	return o.waitFor(ctx, s, func(st *Status) bool { return st.service(s.Name).State == "started" })
}

// Disable stops svc (clusvcadm -d) and waits until its daemon has stopped
// everywhere; its partitions and VIP stop with it.
func (o *Ops) Disable(ctx context.Context, svc string) error {
	s, err := o.Service(svc)
	if err != nil {
		return err
	}
	if _, _, err := o.onAny(ctx, nil, "crm_resource", "--resource", s.Name, "--meta", "--set-parameter", "target-role", "--parameter-value", "Stopped"); err != nil {
		return err
	}
	return o.waitFor(ctx, s, func(st *Status) bool { return st.service(s.Name).State == "stopped" })
}

func (o *Ops) onList(s Service, node string) error {
	if err := o.member(node); err != nil {
		return err
	}
	if !slices.Contains(s.Nodes, node) {
		return fmt.Errorf("%s may run on %s only, not on %s (its node list in the topology)", s.Name, strings.Join(s.Nodes, ", "), node)
	}
	return nil
}

// Relocate moves svc to node (clusvcadm -r -m): the store stops (it
// finishes what is in flight, see its SIGTERM handling), its partitions
// and VIP move, it starts there. The temporary constraint that asks for the
// move is removed once svc runs on node, so that it stays there by
// stickiness and fails over as usual afterwards.
func (o *Ops) Relocate(ctx context.Context, svc, node string) error {
	s, err := o.Service(svc)
	if err != nil {
		return err
	}
	if err := o.onList(s, node); err != nil {
		return err
	}
	if _, _, err := o.onAny(ctx, nil, "crm_resource", "--resource", s.Name, "--move", "--node", node); err != nil {
		return err
	}
	werr := o.waitFor(ctx, s, func(st *Status) bool {
		ss := st.service(s.Name)
		return ss.State == "started" && ss.Node == node
	})
	if _, _, err := o.onAny(ctx, nil, "crm_resource", "--resource", s.Name, "--clear"); err != nil && werr == nil {
		werr = err
	}
	return werr
}

// Standby puts node in standby (on) or back online (off): a node in
// standby runs nothing, its services move to the next node of their lists.
func (o *Ops) Standby(ctx context.Context, node string, on bool) error {
	if err := o.member(node); err != nil {
		return err
	}
	v := "off"
	if on {
		v = "on"
	}
	_, _, err := o.onAny(ctx, nil, "crm_attribute", "--type", "nodes", "--node", node, "--name", "standby", "--update", v)
	return err
}

// Fence reboots node through its fence device, as the cluster does when it
// loses a node; asked of another member, since a node does not fence itself.
func (o *Ops) Fence(ctx context.Context, node string) error {
	if err := o.member(node); err != nil {
		return err
	}
	_, _, err := o.onAny(ctx, []string{node}, "stonith_admin", "--reboot", node, "--timeout", "120")
	return err
}

// waitFor polls the status until ok or the wait ends.
func (o *Ops) waitFor(ctx context.Context, s Service, ok func(*Status) bool) error {
	ctx, cancel := context.WithTimeout(ctx, o.wait())
	defer cancel()
	var last *Status
	for {
		st, err := o.Status(ctx)
		if err == nil {
			last = st
			if ok(st) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				ss := last.service(s.Name)
				return fmt.Errorf("%s: still %s on %q after %v", s.Name, ss.State, ss.Node, o.wait())
			}
			return fmt.Errorf("%s: %w", s.Name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
