package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/mailfleet/mailfleet/provision"
	"github.com/mailfleet/mailfleet/remote/sshconn"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/diagview"
)

// accountHook, when set (by tests), is given the site before a command runs.
var accountHook func(*provision.Site)

// accountCmd is one `mailfleet account` command: its usage, the flags of
// its own (beside -topology and the SSH flags every command has) and what
// it runs.
type accountCmd struct {
	name, args, help string
	flags            func(fs *flag.FlagSet, a *accountFlags)
	run              func(e *env, a *accountFlags, pos []string) int
}

// The flags some commands share.
func passwordFlags(fs *flag.FlagSet, a *accountFlags) {
	fs.StringVar(&a.passwordFile, "password-file", "", "read the password from the first line of `FILE`")
	fs.BoolVar(&a.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
}
func instanceFlag(fs *flag.FlagSet, a *accountFlags) {
	fs.StringVar(&a.instance, "instance", "", "mail_instance `NAME`")
}
func quotaFlag(fs *flag.FlagSet, a *accountFlags) {
	fs.StringVar(&a.quota, "quota", "", "quota `SIZE` (500M, 2G)")
}
func jsonFlag(fs *flag.FlagSet, a *accountFlags) { fs.BoolVar(&a.asJSON, "json", false, "print JSON") }

// flagSets joins flag registrations.
func flagSets(fns ...func(*flag.FlagSet, *accountFlags)) func(*flag.FlagSet, *accountFlags) {
	return func(fs *flag.FlagSet, a *accountFlags) {
		for _, f := range fns {
			f(fs, a)
		}
	}
}

var accountCmds []accountCmd

func init() {
	accountCmds = []accountCmd{
		{"add", "ADDRESS [-password-file F | -password-stdin] [-instance NAME] [-quota SIZE]", "Create an account: domain, mailbox on its home instance, LDAP entry.",
			flagSets(passwordFlags, instanceFlag, quotaFlag), accountAdd},
		{"passwd", "ADDRESS [-password-file F | -password-stdin]", "Change an account's password (LDAP only).", passwordFlags, accountPasswd},
		{"set", "ADDRESS -quota SIZE", "Change an account's quota on its home instance.", quotaFlag, accountSet},
		{"rm", "ADDRESS", "Remove an account: LDAP entry first (stop routing), then the mailbox.", nil, accountRm},
		{"show", "ADDRESS [-json]", "Show an account's entry and mailbox.", jsonFlag, accountShow},
		{"ls", "[-domain D] [-instance N] [-json]", "List the accounts.", flagSets(instanceFlag, jsonFlag, func(fs *flag.FlagSet, a *accountFlags) {
			fs.StringVar(&a.domain, "domain", "", "only the accounts of `DOMAIN`")
		}), accountLs},
		{"check", "[-fix] [-json]", "Compare LDAP with every instance; exit 1 on a difference (-fix repairs).", flagSets(jsonFlag, func(fs *flag.FlagSet, a *accountFlags) {
			fs.BoolVar(&a.fix, "fix", false, "repair what can be repaired")
		}), accountCheck},
		{"import", "FILE.csv [-workers N]", "Create accounts in bulk (address,password,instance,quota); resumable.", func(fs *flag.FlagSet, a *accountFlags) {
			fs.IntVar(&a.workers, "workers", 16, "parallel creations")
		}, accountImport},
		{"move", "ADDRESS -to INSTANCE", "Move a mailbox to another instance, keeping flags and UIDs.", func(fs *flag.FlagSet, a *accountFlags) {
			fs.StringVar(&a.to, "to", "", "target mail_instance `NAME`")
			fs.DurationVar(&a.drain, "drain", provision.DefaultDrain, "how long the old copy refuses mail before it is removed (outlasts the front-ends' lookup cache)")
		}, accountMove},
	}
}

type accountFlags struct {
	sshFlags
	fs                  *flag.FlagSet
	topology            string
	passwordFile        string
	passwordStdin       bool
	instance, quota, to string
	domain              string
	asJSON, fix         bool
	workers             int
	drain               time.Duration
	closers             []func() error
}

func accountUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: mailfleet account COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range accountCmds {
		fmt.Fprintf(w, "  %-7s %s\n          %s\n", c.name, c.args, c.help)
	}
	fmt.Fprint(w, `
Every command reads the topology from -topology PATH, else $MAILFLEET_TOPOLOGY,
else the current directory. Passwords are read from -password-file, from the
first line of standard input with -password-stdin, or asked on a terminal;
never from the command line.
`)
}

func runAccount(e *env, args []string) int {
	if len(args) == 0 {
		accountUsage(e.stderr)
		return 1
	}
	name := strings.TrimLeft(args[0], "-")
	if name == "help" || name == "h" {
		accountUsage(e.stdout)
		return 0
	}
	for _, c := range accountCmds {
		if c.name != name {
			continue
		}
		a := &accountFlags{}
		fs := newFlags(e, "account "+c.name, c.args)
		a.fs = fs
		fs.StringVar(&a.topology, "topology", "", "topology `PATH` (default $MAILFLEET_TOPOLOGY, else .)")
		a.sshFlags.register(fs)
		if c.flags != nil {
			c.flags(fs, a)
		}
		pos, err := parse(fs, args[1:])
		if err != nil {
			return 1
		}
		defer a.close()
		return c.run(e, a, pos)
	}
	fmt.Fprintf(e.stderr, "mailfleet account: unknown command %q\n\n", args[0])
	accountUsage(e.stderr)
	return 1
}

// site loads the topology and opens the site; nil after printing why.
func (a *accountFlags) site(e *env) *provision.Site {
	path := a.topology
	if path == "" {
		if p, ok := e.getenv("MAILFLEET_TOPOLOGY"); ok && p != "" {
			path = p
		} else {
			path = "."
		}
	}
	t, ds, src := load(e, path, false)
	if t == nil {
		diagview.Text(e.stderr, ds, src, e.color)
		fmt.Fprintf(e.stderr, "%s: the topology %s is not valid\n", a.fs.Name(), path)
		return nil
	}
	o, err := a.dialOptions(e, t)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", a.fs.Name(), err)
		return nil
	}
	s, err := provision.OpenWith(t, o)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", a.fs.Name(), err)
		return nil
	}
	if accountHook != nil {
		accountHook(s)
	}
	return s
}

// dialOptions reaches the directory and each instance through the jump
// host their nodes name, if any (jumpDialers).
func (a *accountFlags) dialOptions(e *env, t *spec.Topology) (provision.Options, error) {
	groups := map[string][]*spec.Node{} // "" for the directory, else instance name
	if t.Directory != nil {
		groups[""] = t.Directory.Nodes
	}
	for _, in := range t.Instances {
		groups[in.Name] = in.Nodes
	}
	dial, err := jumpDialers(groups, func() (*sshconn.Pool, error) {
		pool, err := a.pool(e)
		if err == nil {
			a.closers = append(a.closers, pool.Close)
		}
		return pool, err
	})
	if err != nil || dial == nil {
		return provision.Options{}, err
	}
	return provision.Options{Dial: func(name string) provision.Dialer {
		if d := dial(name); d != nil {
			return d
		}
		return nil
	}}, nil
}

func (a *accountFlags) close() {
	for _, c := range a.closers {
		c()
	}
}

func (a *accountFlags) session(e *env) *provision.Session {
	s := a.site(e)
	if s == nil {
		return nil
	}
	ss, err := s.Session()
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", a.fs.Name(), err)
		return nil
	}
	return ss
}

func (a *accountFlags) fail(e *env, err error) int {
	fmt.Fprintf(e.stderr, "%s: %v\n", a.fs.Name(), err)
	return 1
}

func (a *accountFlags) oneAddress(e *env, pos []string) (string, bool) {
	if len(pos) != 1 {
		fmt.Fprintf(e.stderr, "%s: expected one ADDRESS, got %d arguments\n", a.fs.Name(), len(pos))
		a.fs.Usage()
		return "", false
	}
	addr, err := provision.NormalizeAddress(pos[0])
	if err != nil {
		a.fail(e, err)
		return "", false
	}
	return addr, true
}

// password reads the password without it ever being an argument.
func (a *accountFlags) password(e *env) (string, error) {
	firstLine := func(r io.Reader) (string, error) {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	var pw string
	switch {
	case a.passwordFile != "" && a.passwordStdin:
		return "", errors.New("give -password-file or -password-stdin, not both")
	case a.passwordFile != "":
		f, err := os.Open(a.passwordFile)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		defer f.Close()
		if pw, err = firstLine(f); err != nil {
			return "", fmt.Errorf("password file %s: %w", a.passwordFile, err)
		}
	case a.passwordStdin:
		var err error
		if pw, err = firstLine(e.stdin); err != nil {
			return "", fmt.Errorf("standard input: %w", err)
		}
	default:
		f, ok := e.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", errors.New("no password: use -password-file FILE or -password-stdin")
		}
		fmt.Fprint(e.stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(e.stderr, "Again: ")
		b2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(b) != string(b2) {
			return "", errors.New("the two passwords differ")
		}
		pw = string(b)
	}
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	return pw, nil
}

func ctxFor(e *env) (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	return ctx, cancel
}

func accountAdd(e *env, a *accountFlags, pos []string) int {
	addr, ok := a.oneAddress(e, pos)
	if !ok {
		return 1
	}
	req := provision.AddRequest{Address: addr, Instance: a.instance}
	if a.quota != "" {
		q, err := spec.ParseSize(a.quota)
		if err != nil {
			return a.fail(e, err)
		}
		req.Quota = &q
	}
	pw, err := a.password(e)
	if err != nil {
		return a.fail(e, err)
	}
	req.Password = pw
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	ctx, cancel := ctxFor(e)
	defer cancel()
	res, err := ss.Add(ctx, req)
	if err != nil {
		return a.fail(e, err)
	}
	how := ""
	if res.Adopted {
		how = " (its existing mailbox without entry was reused)"
	}
	fmt.Fprintf(e.stdout, "created %s on %s (mailHost %s)%s\n", res.Address, res.Instance, res.MailHost, how)
	return 0
}

func accountPasswd(e *env, a *accountFlags, pos []string) int {
	addr, ok := a.oneAddress(e, pos)
	if !ok {
		return 1
	}
	pw, err := a.password(e)
	if err != nil {
		return a.fail(e, err)
	}
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	ctx, cancel := ctxFor(e)
	defer cancel()
	if err := ss.Passwd(ctx, addr, pw); err != nil {
		return a.fail(e, err)
	}
	fmt.Fprintf(e.stdout, "password of %s changed\n", addr)
	return 0
}

func accountSet(e *env, a *accountFlags, pos []string) int {
	addr, ok := a.oneAddress(e, pos)
	if !ok {
		return 1
	}
	if a.quota == "" {
		return a.fail(e, errors.New("nothing to set: give -quota SIZE"))
	}
	q, err := spec.ParseSize(a.quota)
	if err != nil {
		return a.fail(e, err)
	}
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	ctx, cancel := ctxFor(e)
	defer cancel()
	mb, err := ss.SetQuota(ctx, addr, q)
	if err != nil {
		return a.fail(e, err)
	}
	fmt.Fprintf(e.stdout, "quota of %s: %s\n", addr, sizeText(mb.Quota.MaxBytes))
	return 0
}

func accountRm(e *env, a *accountFlags, pos []string) int {
	addr, ok := a.oneAddress(e, pos)
	if !ok {
		return 1
	}
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	ctx, cancel := ctxFor(e)
	defer cancel()
	done, err := ss.Remove(ctx, addr)
	for _, d := range done {
		fmt.Fprintf(e.stdout, "removed %s\n", d)
	}
	if err != nil {
		return a.fail(e, err)
	}
	return 0
}

func sizeText(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	for _, u := range []struct {
		s string
		n int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n%u.n == 0 {
			return fmt.Sprintf("%d%s", n/u.n, u.s)
		}
	}
	return fmt.Sprintf("%d", n)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func accountShow(e *env, a *accountFlags, pos []string) int {
	addr, ok := a.oneAddress(e, pos)
	if !ok {
		return 1
	}
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	ctx, cancel := ctxFor(e)
	defer cancel()
	acc, err := ss.Show(ctx, addr)
	if err != nil {
		return a.fail(e, err)
	}
	if a.asJSON {
		_ = writeJSON(e.stdout, acc)
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "address\t%s\n", acc.Address)
	fmt.Fprintf(tw, "dn\t%s\n", orDash(acc.DN))
	fmt.Fprintf(tw, "mailHost\t%s\n", orDash(acc.MailHost))
	fmt.Fprintf(tw, "instance\t%s\n", orDash(acc.Instance))
	if acc.Mailbox != nil {
		fmt.Fprintf(tw, "messages\t%d\n", acc.Mailbox.Usage.Messages)
		fmt.Fprintf(tw, "usage\t%d bytes\n", acc.Mailbox.Usage.Bytes)
		fmt.Fprintf(tw, "quota\t%s\n", sizeText(acc.Mailbox.Quota.MaxBytes))
		if acc.Mailbox.Moving {
			fmt.Fprintf(tw, "moving\tyes\n")
		}
	}
	if acc.Problem != "" {
		fmt.Fprintf(tw, "problem\t%s (see `mailfleet account check`)\n", acc.Problem)
	}
	tw.Flush()
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func accountLs(e *env, a *accountFlags, pos []string) int {
	if len(pos) != 0 {
		fmt.Fprintf(e.stderr, "%s: no arguments expected\n", a.fs.Name())
		return 1
	}
	domain := ""
	if a.domain != "" {
		d, err := provision.NormalizeDomain(a.domain)
		if err != nil {
			return a.fail(e, err)
		}
		domain = d
	}
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	if a.instance != "" {
		if _, err := ss.Instance(a.instance); err != nil {
			return a.fail(e, err)
		}
	}
	ctx, cancel := ctxFor(e)
	defer cancel()
	all, err := ss.List(ctx)
	if err != nil {
		return a.fail(e, err)
	}
	out := []provision.Account{}
	for _, acc := range all {
		if domain != "" && !strings.HasSuffix(acc.Address, "@"+domain) {
			continue
		}
		if a.instance != "" && acc.Instance != a.instance {
			continue
		}
		out = append(out, acc)
	}
	if a.asJSON {
		_ = writeJSON(e.stdout, out)
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tINSTANCE\tMESSAGES\tBYTES\tQUOTA\tPROBLEM")
	for _, acc := range out {
		msgs, bytes, quota := "-", "-", "-"
		if acc.Mailbox != nil {
			msgs, bytes = fmt.Sprint(acc.Mailbox.Usage.Messages), fmt.Sprint(acc.Mailbox.Usage.Bytes)
			quota = sizeText(acc.Mailbox.Quota.MaxBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", acc.Address, orDash(acc.Instance), msgs, bytes, quota, acc.Problem)
	}
	tw.Flush()
	return 0
}

func accountCheck(e *env, a *accountFlags, pos []string) int {
	if len(pos) != 0 {
		fmt.Fprintf(e.stderr, "%s: no arguments expected\n", a.fs.Name())
		return 1
	}
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	ctx, cancel := ctxFor(e)
	defer cancel()
	probs, err := ss.Check(ctx, a.fix)
	if err != nil {
		return a.fail(e, err)
	}
	unfixed := 0
	for _, p := range probs {
		if p.Fixed == "" {
			unfixed++
		}
	}
	if a.asJSON {
		if probs == nil {
			probs = []provision.Problem{}
		}
		_ = writeJSON(e.stdout, map[string]any{"consistent": len(probs) == 0, "problems": probs})
	} else {
		for _, p := range probs {
			where := ""
			if p.Instance != "" {
				where = " on " + p.Instance
			}
			fmt.Fprintf(e.stdout, "%s: %s%s: %s\n", p.Kind, p.Address, where, p.Detail)
			if p.Fixed != "" {
				fmt.Fprintf(e.stdout, "  fixed: %s\n", p.Fixed)
			}
			if p.FixError != "" {
				fmt.Fprintf(e.stdout, "  not fixed: %s\n", p.FixError)
			}
		}
		switch {
		case len(probs) == 0:
			fmt.Fprintln(e.stdout, "consistent: the directory and the instances agree")
		case a.fix:
			fmt.Fprintf(e.stdout, "%d problem(s), %d fixed, %d left\n", len(probs), len(probs)-unfixed, unfixed)
		default:
			fmt.Fprintf(e.stdout, "%d problem(s); `mailfleet account check -fix` repairs what it can\n", len(probs))
		}
	}
	if len(probs) == 0 || a.fix && unfixed == 0 {
		return 0
	}
	return 1
}

func accountImport(e *env, a *accountFlags, pos []string) int {
	if len(pos) != 1 {
		fmt.Fprintf(e.stderr, "%s: expected one FILE.csv\n", a.fs.Name())
		return 1
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return a.fail(e, err)
	}
	rows, err := provision.ReadCSV(f)
	f.Close()
	if err != nil {
		return a.fail(e, fmt.Errorf("%s: %w", pos[0], err))
	}
	s := a.site(e)
	if s == nil {
		return 1
	}
	ctx, cancel := ctxFor(e)
	defer cancel()
	opts := provision.ImportOptions{Workers: a.workers}
	var bar *progressBar
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = &progressBar{w: f, start: time.Now()}
		opts.Progress = bar.update
	}
	start := time.Now()
	sum, err := s.Import(ctx, rows, opts)
	if bar != nil {
		bar.finish()
	}
	el := time.Since(start)
	for _, err := range sum.Errors {
		fmt.Fprintf(e.stderr, "%s: %v\n", a.fs.Name(), err)
	}
	var per []string
	names := make([]string, 0, len(sum.ByInstance))
	for n := range sum.ByInstance {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		per = append(per, fmt.Sprintf("%s %d", n, sum.ByInstance[n]))
	}
	rate := 0.0
	if el > 0 {
		rate = float64(sum.Created) / el.Seconds()
	}
	fmt.Fprintf(e.stdout, "%d rows: %d created, %d skipped (already present), %d failed in %s (%.0f accounts/s)",
		sum.Total, sum.Created, sum.Skipped, sum.Failed, el.Round(time.Millisecond), rate)
	if len(per) > 0 {
		fmt.Fprintf(e.stdout, "; %s", strings.Join(per, ", "))
	}
	fmt.Fprintln(e.stdout)
	if err != nil {
		return a.fail(e, err)
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}

type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
	mu    sync.Mutex
}

func (p *progressBar) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if done != total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	n := width
	if total > 0 {
		n = done * width / total
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total)
}

func (p *progressBar) finish() { fmt.Fprintln(p.w) }

func accountMove(e *env, a *accountFlags, pos []string) int {
	addr, ok := a.oneAddress(e, pos)
	if !ok {
		return 1
	}
	if a.to == "" {
		return a.fail(e, errors.New("give the target with -to INSTANCE"))
	}
	ss := a.session(e)
	if ss == nil {
		return 1
	}
	defer ss.Close()
	ctx, cancel := ctxFor(e)
	defer cancel()
	res, err := ss.Move(ctx, addr, a.to, a.drain)
	if err != nil {
		return a.fail(e, err)
	}
	fmt.Fprintf(e.stdout, "moved %s from %s to %s (%d messages)\n", addr, res.From, res.To, res.Messages)
	return 0
}
