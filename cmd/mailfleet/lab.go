package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailfleet/mailfleet/lab"
	"github.com/mailfleet/mailfleet/lab/initd"
	"github.com/mailfleet/mailfleet/render"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/diagview"
)

// labCommands are the lab's subcommands; hidden ones run inside the lab
// (a node's init and its systemctl/sysctl shims, the power switch, the
// mount namespace set-up) and are not in the help.
var labCommands []command

func init() {
	labCommands = []command{
		{"up", "[-timeout 90s] [-boot-time 30s] PATH", "Build the topology's hosts on this machine (or converge them) and wait for their sshd. A node its power switch turns on boots after -boot-time (-1s: at once).", runLabUp},
		{"plan", "PATH [plan flags]", "mailfleet plan against the lab, from its workstation.", runLabDeploy("plan")},
		{"apply", "PATH [apply flags]", "mailfleet apply to the lab, from its workstation.", runLabDeploy("apply")},
		{"status", "[-json] PATH", "Nodes with their state and addresses, the service addresses, the SSH files.", runLabStatus},
		{"cluster", "PATH COMMAND [args]", "mailfleet cluster against the lab, from its workstation (mailfleet cluster help).", runLabCluster},
		{"exec", "PATH NODE -- CMD...", "Run a command on a node (or the workstation); its exit status is passed through.", runLabExec},
		{"shell", "PATH NODE", "An interactive shell on a node (or the workstation).", runLabShell},
		{"power", "off|on [-wait 60s] PATH NODE", "Cut or restore a node's power, as the lab's power switch does (on boots at once; the switch itself waits the lab's boot time).", runLabPower},
		{"link", "down|up PATH NODE [NETWORK]", "Cut a node's network cables at the switch (all, or one network's) while it keeps running; up plugs them back.", runLabLink},
		{"freeze", "PATH NODE", "Stop every process of a node (SIGSTOP), as a hung kernel would; the cluster must fence it.", runLabFreeze(true)},
		{"thaw", "PATH NODE", "Let a frozen node's processes run again (SIGCONT).", runLabFreeze(false)},
		{"down", "PATH", "Remove every namespace, mount, process and file of the lab.", runLabDown},
	}
}

// labHidden are run by the lab itself.
var labHidden = map[string]func(e *env, args []string) int{
	"init":      func(e *env, args []string) int { return initd.Main(args) },
	"systemctl": func(e *env, args []string) int { return initd.Systemctl(args) },
	"sysctl":    func(e *env, args []string) int { return initd.Sysctl(args) },
	"pdu":       runLabPDU,
	"mountns":   runLabMountNS,
}

func runLab(e *env, args []string) int {
	return subcommands{group: "lab", cmds: labCommands, hidden: labHidden, intro: `Usage: mailfleet lab COMMAND [flags] PATH [args]

The lab builds a topology's hosts on this Linux machine (root; network and
mount namespaces, one sshd per node) so that mailfleet plan and apply deploy
to them exactly as to real hosts. Its state is /var/lib/mailfleet/lab/<site>.

Commands:
`}.run(e, args)
}

// labTopology loads PATH; secrets are required only when asked (up needs the
// fence devices' passwords).
func labTopology(e *env, path string, secrets bool) *spec.Topology {
	t, ds, src := load(e, path, secrets)
	diagview.Text(e.stderr, errorsOnly(ds), src, e.color)
	return t
}

// openLab loads the topology at path and opens its lab.
func openLab(e *env, cmd, path string) *lab.Lab {
	t := labTopology(e, path, false)
	if t == nil {
		return nil
	}
	l, err := lab.Open(lab.DirFor(t.Site.Name))
	if err != nil {
		fmt.Fprintf(e.stderr, "mailfleet lab %s: %v\n", cmd, err)
		return nil
	}
	return l
}

func runLabUp(e *env, args []string) int {
	fs := newFlags(e, "lab up", "[-timeout 90s] [-boot-time 30s] PATH")
	timeout := fs.Duration("timeout", 90*time.Second, "how long to wait for every node's sshd")
	bootTime := fs.Duration("boot-time", lab.DefaultBootTime, "how long a node the power switch turns on stays dark before it boots (negative: none)")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	t := labTopology(e, path, true)
	if t == nil {
		return 1
	}
	if !labPackages(e, t, path) {
		return 1
	}
	start := time.Now()
	l, err := lab.Up(t, lab.Options{Timeout: *timeout, BootTime: *bootTime, Log: e.stderr})
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab up:", err)
		if l != nil {
			fmt.Fprintf(e.stderr, "What was made is recorded in %s/lab.json: mailfleet lab down %s removes it.\n", l.Dir, path)
		}
		return 1
	}
	fmt.Fprintf(e.stdout, "Lab %s is up: %d nodes in %.1fs.\n", l.Site, len(l.Nodes()), time.Since(start).Seconds())
	fmt.Fprintf(e.stdout, "Deploy with: mailfleet lab apply %s\n", path)
	return 0
}

// labPackages makes sure this machine has every Debian package the
// topology's hosts need (the nodes share its /usr); false after saying which
// are missing and how to install them.
func labPackages(e *env, t *spec.Topology, path string) bool {
	out, err := render.Render(t, render.Options{AllowUnknownSecrets: true})
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab up:", err)
		return false
	}
	seen := map[string]bool{}
	var want []string
	for _, h := range out.Hosts {
		for _, p := range h.Packages {
			if !seen[p] && h.Node != render.WorkstationHost {
				seen[p] = true
				want = append(want, p)
			}
		}
	}
	missing, err := lab.MissingPackages(want)
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab up:", err)
		return false
	}
	if len(missing) > 0 {
		fmt.Fprintf(e.stderr, "mailfleet lab up: the hosts of %s need Debian packages this machine lacks (lab nodes share its /usr): %s\n"+
			"  install them with: apt-get install -y %s   (bash scripts/deps.sh installs everything the lab uses)\n",
			path, strings.Join(missing, " "), strings.Join(missing, " "))
		return false
	}
	return true
}

func runLabDown(e *env, args []string) int {
	fs := newFlags(e, "lab down", "PATH")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	t := labTopology(e, path, false)
	if t == nil {
		return 1
	}
	s, err := lab.Layout(t, "")
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab down:", err)
		return 1
	}
	if err := lab.Down(s, e.stderr); err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab down:", err)
		return 1
	}
	return 0
}

func runLabPower(e *env, args []string) int {
	fs := newFlags(e, "lab power", "off|on [-wait 60s] PATH NODE")
	wait := fs.Duration("wait", 60*time.Second, "on: how long to wait for the node's sshd (0: do not wait)")
	pos, err := parse(fs, args)
	if err != nil {
		return 1
	}
	if len(pos) != 3 || (pos[0] != "off" && pos[0] != "on") {
		fs.Usage()
		return 1
	}
	l := openLab(e, "power", pos[1])
	if l == nil {
		return 1
	}
	l.SetLog(e.stderr)
	if pos[0] == "off" {
		err = l.PowerOff(pos[2])
	} else if err = l.PowerOn(pos[2]); err == nil && *wait > 0 {
		err = l.WaitSSH([]string{pos[2]}, *wait)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab power:", err)
		return 1
	}
	return 0
}

// labNodeCommand parses the positional arguments of a lab command that
// acts on one node (at most nargs, at least min), opens the lab and runs f;
// f's error is the command's.
func labNodeCommand(e *env, name, usage string, min, nargs int, args []string, f func(l *lab.Lab, pos []string) error) int {
	fs := newFlags(e, "lab "+name, usage)
	pos, err := parse(fs, args)
	if err != nil {
		return 1
	}
	if len(pos) < min || len(pos) > nargs {
		fs.Usage()
		return 1
	}
	l := openLab(e, name, pos[0])
	if l == nil {
		return 1
	}
	l.SetLog(e.stderr)
	if err := f(l, pos); err != nil {
		fmt.Fprintf(e.stderr, "mailfleet lab %s: %v\n", name, err)
		return 1
	}
	return 0
}

func runLabLink(e *env, args []string) int {
	// down|up PATH NODE [NETWORK]: the verb first, so PATH is pos[1].
	if len(args) == 0 || (args[0] != "down" && args[0] != "up") {
		fmt.Fprintln(e.stderr, "Usage: mailfleet lab link down|up PATH NODE [NETWORK]")
		return 1
	}
	verb := args[0]
	return labNodeCommand(e, "link", "down|up PATH NODE [NETWORK]", 2, 3, args[1:], func(l *lab.Lab, pos []string) error {
		network := ""
		if len(pos) == 3 {
			network = pos[2]
		}
		if verb == "down" {
			return l.LinkDown(pos[1], network)
		}
		return l.LinkUp(pos[1], network)
	})
}

func runLabFreeze(freeze bool) func(e *env, args []string) int {
	name := map[bool]string{true: "freeze", false: "thaw"}[freeze]
	return func(e *env, args []string) int {
		return labNodeCommand(e, name, "PATH NODE", 2, 2, args, func(l *lab.Lab, pos []string) error {
			if freeze {
				return l.Freeze(pos[1])
			}
			return l.Thaw(pos[1])
		})
	}
}

func runLabStatus(e *env, args []string) int {
	fs := newFlags(e, "lab status", "[-json] PATH")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	path, ok := parsePath(e, fs, args)
	if !ok {
		return 1
	}
	l := openLab(e, "status", path)
	if l == nil {
		return 1
	}
	st := l.Status()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(e.stdout, "Lab %s (%s)\n\n", st.Site, st.Dir)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKIND\tSTATE\tNAMESPACE\tADDRESSES")
	rows := append(append(append([]lab.NodeStatus{}, st.Nodes...), st.PDUs...), st.Workstation)
	for _, n := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Kind, n.State, n.Namespace, strings.Join(n.Addresses, " "))
	}
	tw.Flush()
	if len(st.Services) > 0 {
		var names []string
		for n := range st.Services {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintln(e.stdout, "\nServices (from the workstation):")
		for _, n := range names {
			fmt.Fprintf(e.stdout, "  %-6s %s\n", n, st.Services[n])
		}
	}
	fmt.Fprintf(e.stdout, "\nknown_hosts: %s\nidentity:    %s\n", st.KnownHosts, st.Identity)
	return 0
}

// runCmd runs cmd with the terminal and passes its exit status through.
func runCmd(e *env, name string, cmd *exec.Cmd) int {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if code := ee.ExitCode(); code >= 0 {
				return code
			}
			return 1
		}
		fmt.Fprintf(e.stderr, "mailfleet lab %s: %v\n", name, err)
		return 1
	}
	return 0
}

func runLabExec(e *env, args []string) int {
	var pre, argv []string
	for i, a := range args {
		if a == "--" {
			argv = args[i+1:]
			break
		}
		pre = append(pre, a)
	}
	if argv == nil && len(pre) > 2 {
		pre, argv = pre[:2], pre[2:]
	}
	if len(pre) != 2 || len(argv) == 0 {
		fmt.Fprintln(e.stderr, "Usage: mailfleet lab exec PATH NODE -- CMD...")
		return 1
	}
	l := openLab(e, "exec", pre[0])
	if l == nil {
		return 1
	}
	cmd, err := l.Command(pre[1], argv)
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab exec:", err)
		return 1
	}
	return runCmd(e, "exec", cmd)
}

func runLabShell(e *env, args []string) int {
	fs := newFlags(e, "lab shell", "PATH NODE")
	pos, err := parse(fs, args)
	if err != nil {
		return 1
	}
	if len(pos) != 2 {
		fs.Usage()
		return 1
	}
	l := openLab(e, "shell", pos[0])
	if l == nil {
		return 1
	}
	sh := "/bin/bash"
	if s, ok := e.getenv("SHELL"); ok && s != "" {
		if _, err := os.Stat(s); err == nil {
			sh = s
		}
	}
	cmd, err := l.Command(pos[1], []string{sh})
	if err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab shell:", err)
		return 1
	}
	return runCmd(e, "shell", cmd)
}

// runLabDeploy runs mailfleet plan|apply inside the workstation's network
// namespace with the lab's known_hosts and key: PATH first, then the
// command's own flags.
// labDeployPath finds the topology PATH among lab plan|apply's arguments,
// which may come before or after the plan and apply flags: the one
// argument that is neither a flag nor the value of a flag that takes one.
func labDeployPath(args []string) (path string, rest []string, ok bool) {
	valued := map[string]bool{"target": true, "parallelism": true, "known-hosts": true, "identity": true,
		"timeout": true, "mailfleetd": true, "out": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			rest = append(rest, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && valued[name] && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		if path != "" {
			return "", nil, false
		}
		path = a
	}
	return path, rest, path != ""
}

func runLabDeploy(name string) func(e *env, args []string) int {
	return func(e *env, args []string) int {
		path, rest, ok := labDeployPath(args)
		if !ok {
			fmt.Fprintf(e.stderr, "Usage: mailfleet lab %s PATH [%s flags]\n", name, name)
			return 1
		}
		l := openLab(e, name, path)
		if l == nil {
			return 1
		}
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(e.stderr, "mailfleet lab %s: %v\n", name, err)
			return 1
		}
		argv := []string{self, name, "-known-hosts", l.KnownHosts(), "-identity", l.Identity()}
		hasD := false
		for _, a := range rest {
			if strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-") == "mailfleetd" {
				hasD = true
			}
		}
		if d := filepath.Join(filepath.Dir(self), "mailfleetd"); !hasD {
			if _, err := os.Stat(d); err == nil {
				argv = append(argv, "-mailfleetd", d)
			}
		}
		argv = append(append(argv, rest...), path)
		cmd, err := l.Command(lab.KindWorkstation, argv)
		if err != nil {
			fmt.Fprintf(e.stderr, "mailfleet lab %s: %v\n", name, err)
			return 1
		}
		return runCmd(e, name, cmd)
	}
}

// runLabCluster runs `mailfleet cluster COMMAND` in the workstation with
// the lab's known_hosts and key: lab cluster PATH COMMAND [flags] [args].
func runLabCluster(e *env, args []string) int {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(e.stderr, "Usage: mailfleet lab cluster PATH COMMAND [flags] [args]")
		return 1
	}
	path, sub, rest := args[0], args[1], args[2:]
	l := openLab(e, "cluster", path)
	if l == nil {
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(e.stderr, "mailfleet lab cluster: %v\n", err)
		return 1
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "mailfleet lab cluster: %v\n", err)
		return 1
	}
	argv := append([]string{self, "cluster", sub, "-known-hosts", l.KnownHosts(), "-identity", l.Identity(), abs}, rest...)
	cmd, err := l.Command(lab.KindWorkstation, argv)
	if err != nil {
		fmt.Fprintf(e.stderr, "mailfleet lab cluster: %v\n", err)
		return 1
	}
	return runCmd(e, "cluster", cmd)
}

func runLabPDU(e *env, args []string) int {
	fs := newFlags(e, "lab pdu", "-dir LABDIR -fence NAME (password on stdin)")
	dir := fs.String("dir", "", "the lab's state directory")
	fence := fs.String("fence", "", "the fence device")
	if _, err := parse(fs, args); err != nil {
		return 1
	}
	pw, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && pw == "" {
		fmt.Fprintln(e.stderr, "mailfleet lab pdu: no password on standard input")
		return 1
	}
	if err := lab.ServePDU(*dir, *fence, strings.TrimRight(pw, "\r\n")); err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab pdu:", err)
		return 1
	}
	return 0
}

func runLabMountNS(e *env, args []string) int {
	fs := newFlags(e, "lab mountns", "-dir LABDIR -node NAME")
	dir := fs.String("dir", "", "the lab's state directory")
	node := fs.String("node", "", "the node")
	if _, err := parse(fs, args); err != nil {
		return 1
	}
	if err := lab.HoldNodeNS(*dir, *node, e.stdout, e.stdin); err != nil {
		fmt.Fprintln(e.stderr, "mailfleet lab mountns:", err)
		return 1
	}
	return 0
}
