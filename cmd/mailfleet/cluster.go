package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailfleet/mailfleet/cluster"
	"github.com/mailfleet/mailfleet/remote/sftp"
	"github.com/mailfleet/mailfleet/remote/sshconn"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/diagview"
)

var clusterCommands = []command{
	{"status", "[-json] PATH", "Each instance and the directory (node, state, since when, failover list), each node, the last fencing.", runClusterStatus},
	{"history", "[-json] PATH", "Every failover and relocation with its timeline, from Pacemaker's own records.", runClusterHistory},
	{"enable", "[-on NODE] PATH INSTANCE", "Start an instance (or the directory), on NODE if given (clusvcadm -e).", runClusterEnable},
	{"disable", "PATH INSTANCE", "Stop an instance (or the directory) (clusvcadm -d).", runClusterDisable},
	{"relocate", "-to NODE PATH INSTANCE", "Move an instance to NODE of its list (clusvcadm -r -m); it stays there.", runClusterRelocate},
	{"standby", "PATH NODE", "Put a node in standby for maintenance: its services move away.", runClusterStandby(true)},
	{"online", "PATH NODE", "Bring a node out of standby.", runClusterStandby(false)},
	{"fence", "[-yes] PATH NODE", "Reboot a node through its fence device (asks first).", runClusterFence},
}

func runCluster(e *env, args []string) int {
	return subcommands{group: "cluster", cmds: clusterCommands, intro: `Usage: mailfleet cluster COMMAND [flags] PATH [args]

Operations on the site's Pacemaker cluster in the topology's names, over SSH
to the backend nodes (jump hosts as configured; -known-hosts, -accept-new and
-identity as for plan). Exit status 0 on success, 1 on error.

Commands:
`}.run(e, args)
}

// clusterCmd is what every cluster command parses: the SSH flags, the
// topology and its cluster.
type clusterCmd struct {
	e    *env
	name string
	ssh  sshFlags
	pos  []string
	ops  *cluster.Ops
	pool *sshconn.Pool
}

func newClusterCmd(e *env, name, usage string) (*clusterCmd, *flag.FlagSet) {
	c := &clusterCmd{e: e, name: name}
	fs := newFlags(e, "cluster "+name, usage)
	c.ssh.register(fs)
	return c, fs
}

// parse parses args, wants PATH and nargs more, loads the topology and
// opens the SSH pool.
func (c *clusterCmd) parse(fs *flag.FlagSet, args []string, nargs int) bool {
	pos, err := parse(fs, args)
	if err != nil {
		return false
	}
	if len(pos) != 1+nargs {
		fs.Usage()
		return false
	}
	c.pos = pos[1:]
	t, ds, src := load(c.e, pos[0], false)
	diagview.Text(c.e.stderr, errorsOnly(ds), src, c.e.color)
	if t == nil {
		return false
	}
	if len(t.BackendNodes()) == 0 {
		fmt.Fprintf(c.e.stderr, "mailfleet cluster %s: the topology has no cluster (no backend nodes)\n", c.name)
		return false
	}
	pool, err := c.ssh.pool(c.e)
	if err != nil {
		fmt.Fprintf(c.e.stderr, "mailfleet cluster %s: %v\n", c.name, err)
		return false
	}
	c.pool = pool
	run, err := newSSHRunner(pool, t)
	if err != nil {
		fmt.Fprintf(c.e.stderr, "mailfleet cluster %s: %v\n", c.name, err)
		return false
	}
	c.ops = &cluster.Ops{Site: cluster.FromTopology(t), Run: run}
	return true
}

func (c *clusterCmd) close() {
	if c.pool != nil {
		c.pool.Close()
	}
}

// fail prints err and returns the exit status 1.
func (c *clusterCmd) fail(err error) int {
	fmt.Fprintf(c.e.stderr, "mailfleet cluster %s: %v\n", c.name, err)
	return 1
}

// sshRunner runs a command on a node over the pool's connection to it.
type sshRunner struct {
	pool    *sshconn.Pool
	targets map[string]sshconn.Target
}

func newSSHRunner(pool *sshconn.Pool, t *spec.Topology) (*sshRunner, error) {
	r := &sshRunner{pool: pool, targets: map[string]sshconn.Target{}}
	for _, n := range t.BackendNodes() {
		tg, err := nodeTarget(n, 0)
		if err != nil {
			return nil, err
		}
		r.targets[n.Name] = tg
	}
	return r, nil
}

// sshCommandTimeout bounds one command on a node: the cluster's tools
// answer in seconds; a hung node must not hang the operator.
const sshCommandTimeout = 2 * time.Minute

func (r *sshRunner) Run(ctx context.Context, node string, argv ...string) ([]byte, error) {
	tg, ok := r.targets[node]
	if !ok {
		return nil, fmt.Errorf("no such node %q", node)
	}
	ctx, cancel := context.WithTimeout(ctx, sshCommandTimeout)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	cl, err := r.pool.Client(dctx, tg)
	dcancel()
	if err != nil {
		return nil, err
	}
	s, err := cl.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = sftp.Quote(a)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(strings.Join(quoted, " ")) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("%s: %w", argv[0], ctx.Err())
	}
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.Bytes(), fmt.Errorf("%s: %v: %s", argv[0], err, msg)
	}
	return out.Bytes(), nil
}

func runClusterStatus(e *env, args []string) int {
	c, fs := newClusterCmd(e, "status", "[-json] PATH")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if !c.parse(fs, args, 0) {
		return 1
	}
	defer c.close()
	st, err := c.ops.Status(context.Background())
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		if err := writeJSON(e.stdout, st); err != nil {
			return c.fail(err)
		}
		return 0
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "SERVICE\tKIND\tSTATE\tNODE\tSINCE\tFAILOVER\n")
	for _, s := range st.Services {
		since := "-"
		if !s.Since.IsZero() {
			since = s.Since.Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.State, orDash(s.Node), since, strings.Join(s.Failover, ", "))
	}
	w.Flush()
	fmt.Fprintln(e.stdout)
	w = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "NODE\tSTATE\n")
	for _, n := range st.Nodes {
		dc := ""
		if n.DC {
			dc = " (DC)"
		}
		fmt.Fprintf(w, "%s\t%s%s\n", n.Name, n.State, dc)
	}
	w.Flush()
	if !st.Quorum {
		fmt.Fprintln(e.stdout, "\nThe partition that answered has no quorum: its resources are stopped.")
	}
	if len(st.Fencing) > 0 {
		fmt.Fprintln(e.stdout, "\nLast fencing:")
		for i, f := range st.Fencing {
			if i == 5 {
				break
			}
			fmt.Fprintf(e.stdout, "  %s  %s of %s: %s\n", f.Completed.Format("2006-01-02 15:04:05"), f.Action, f.Target, f.Status)
		}
	}
	return 0
}

func runClusterHistory(e *env, args []string) int {
	c, fs := newClusterCmd(e, "history", "[-json] PATH")
	asJSON := fs.Bool("json", false, "print the episodes as JSON")
	if !c.parse(fs, args, 0) {
		return 1
	}
	defer c.close()
	eps, err := c.ops.History(context.Background(), time.Now())
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		if eps == nil {
			eps = []cluster.Episode{}
		}
		if err := writeJSON(e.stdout, eps); err != nil {
			return c.fail(err)
		}
		return 0
	}
	if len(eps) == 0 {
		fmt.Fprintln(e.stdout, "No failover or relocation in the cluster's logs.")
		return 0
	}
	for _, ep := range eps {
		fmt.Fprintf(e.stdout, "%s %s %s, %s → %s\n", ep.Began.Format("2006-01-02 15:04:05.000"), ep.Service, ep.Kind, orDash(ep.From), orDash(ep.To))
		for _, s := range ep.Steps {
			what := s.What
			switch {
			case s.Rsc != "":
				what = s.Rsc + " " + s.What + " on " + s.Node
			case s.Node != "":
				what = s.Node + " " + s.What
			}
			fmt.Fprintf(e.stdout, "  +%6.2f s  %s\n", s.After, what)
		}
		if ep.Serving.IsZero() {
			fmt.Fprintln(e.stdout, "  not serving again yet")
		} else {
			fmt.Fprintf(e.stdout, "  serving again after %.2f s\n", ep.Seconds)
		}
	}
	return 0
}

func runClusterEnable(e *env, args []string) int {
	c, fs := newClusterCmd(e, "enable", "[-on NODE] PATH INSTANCE")
	on := fs.String("on", "", "the node to start it on (one of its list)")
	if !c.parse(fs, args, 1) {
		return 1
	}
	defer c.close()
	if err := c.ops.Enable(context.Background(), c.pos[0], *on); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(e.stdout, "%s started.\n", c.pos[0])
	return 0
}

func runClusterDisable(e *env, args []string) int {
	c, fs := newClusterCmd(e, "disable", "PATH INSTANCE")
	if !c.parse(fs, args, 1) {
		return 1
	}
	defer c.close()
	if err := c.ops.Disable(context.Background(), c.pos[0]); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(e.stdout, "%s stopped.\n", c.pos[0])
	return 0
}

func runClusterRelocate(e *env, args []string) int {
	c, fs := newClusterCmd(e, "relocate", "-to NODE PATH INSTANCE")
	to := fs.String("to", "", "the node to move it to (one of its list)")
	if !c.parse(fs, args, 1) {
		return 1
	}
	defer c.close()
	if *to == "" {
		fs.Usage()
		return 1
	}
	start := time.Now()
	if err := c.ops.Relocate(context.Background(), c.pos[0], *to); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(e.stdout, "%s runs on %s (%.1f s).\n", c.pos[0], *to, time.Since(start).Seconds())
	return 0
}

func runClusterStandby(on bool) func(e *env, args []string) int {
	name := map[bool]string{true: "standby", false: "online"}[on]
	return func(e *env, args []string) int {
		c, fs := newClusterCmd(e, name, "PATH NODE")
		if !c.parse(fs, args, 1) {
			return 1
		}
		defer c.close()
		if err := c.ops.Standby(context.Background(), c.pos[0], on); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(e.stdout, "%s is %s.\n", c.pos[0], name)
		return 0
	}
}

func runClusterFence(e *env, args []string) int {
	c, fs := newClusterCmd(e, "fence", "[-yes] PATH NODE")
	yes := fs.Bool("yes", false, "do not ask")
	if !c.parse(fs, args, 1) {
		return 1
	}
	defer c.close()
	node := c.pos[0]
	if !*yes {
		fmt.Fprintf(e.stdout, "Fence %s? Its power is cut and it reboots; what it runs moves to other nodes.\n  Only 'yes' will be accepted.\n\n  Enter a value: ", node)
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if (err != nil && !errors.Is(err, io.EOF)) || strings.TrimSpace(line) != "yes" {
			fmt.Fprintln(e.stderr, "\nmailfleet cluster fence: not confirmed; nothing done")
			return 1
		}
	}
	if err := c.ops.Fence(context.Background(), node); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(e.stdout, "%s fenced.\n", node)
	return 0
}
