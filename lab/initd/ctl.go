package initd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// request is one systemctl invocation sent to the supervisor.
type request struct {
	Verb    string   `json:"verb"`
	Units   []string `json:"units,omitempty"`
	Quiet   bool     `json:"quiet,omitempty"`
	NoBlock bool     `json:"no_block,omitempty"`
	Now     bool     `json:"now,omitempty"`
	Force   bool     `json:"force,omitempty"`
	Value   bool     `json:"value,omitempty"`
	All     bool     `json:"all,omitempty"`
	Props   []string `json:"props,omitempty"`
	Signal  string   `json:"signal,omitempty"`
	Whom    string   `json:"whom,omitempty"`
	Lines   int      `json:"lines,omitempty"`
}

// response is the supervisor's answer: what systemctl prints and its exit code.
type response struct {
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	Code   int    `json:"code"`
}

// labSkipped are units of the machine's base system that have no place in
// a lab node: starting them is a no-op.
func labSkipped(name string) bool {
	switch name {
	case "dbus.service", "dbus-broker.service", "console-getty.service", "e2scrub_reap.service",
		"e2scrub_all.service", "getty-static.service", "rsyslog.service", "cron.service":
		return true
	}
	for _, p := range []string{"systemd-", "getty@", "serial-getty@", "container-getty@", "autovt@", "user@"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// fileVerbs work on unit files and need no supervisor.
var fileVerbs = map[string]bool{
	"enable": true, "disable": true, "reenable": true, "is-enabled": true, "mask": true,
	"unmask": true, "daemon-reload": true, "cat": true, "list-unit-files": true,
}

// fileVerb runs a unit file verb on l (offline or inside the supervisor).
func fileVerb(l *loader, req request, out, errOut *bytes.Buffer) int {
	code := 0
	switch req.Verb {
	case "daemon-reload", "daemon-reexec":
		return 0
	case "enable", "reenable", "disable":
		if len(req.Units) == 0 {
			fmt.Fprintf(errOut, "Too few arguments.\n")
			return 1
		}
		for _, n := range req.Units {
			var err error
			if req.Verb != "enable" {
				err = l.disableUnit(n, req.Quiet, errOut, map[string]bool{})
			}
			if err == nil && req.Verb != "disable" {
				err = l.enableUnit(n, req.Quiet, errOut, map[string]bool{})
			}
			if err != nil {
				fmt.Fprintln(errOut, err)
				code = 1
			}
		}
	case "mask", "unmask":
		for _, n := range req.Units {
			var err error
			if req.Verb == "mask" {
				err = l.maskUnit(n, req.Quiet, errOut)
			} else {
				err = l.unmaskUnit(n, req.Quiet, errOut)
			}
			if err != nil {
				fmt.Fprintln(errOut, err)
				code = 1
			}
		}
	case "is-enabled":
		if len(req.Units) == 0 {
			fmt.Fprintf(errOut, "Too few arguments.\n")
			return 1
		}
		code = 1
		for _, n := range req.Units {
			st, err := l.unitFileState(n)
			if err != nil {
				fmt.Fprintln(errOut, err)
				continue
			}
			if !req.Quiet {
				fmt.Fprintln(out, st)
			}
			switch st {
			case "enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient":
				code = 0
			}
		}
	case "cat":
		for _, n := range req.Units {
			u, err := l.load(n)
			if err != nil || u.Fragment == "" {
				fmt.Fprintf(errOut, "No files found for %s.\n", normalizeName(n))
				code = 1
				continue
			}
			for i, p := range append([]string{u.Fragment}, u.DropIns...) {
				if i > 0 || out.Len() > 0 {
					out.WriteString("\n")
				}
				fmt.Fprintf(out, "# %s\n", l.display(p))
				data, _ := readLimited(p)
				out.Write(data)
			}
		}
	case "list-unit-files":
		seen := map[string]string{}
		for _, d := range l.dirs() {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if unitSuffix(e.Name()) == "" || e.IsDir() {
					continue
				}
				if _, ok := seen[e.Name()]; !ok {
					st, err := l.unitFileState(e.Name())
					if err == nil {
						seen[e.Name()] = st
					}
				}
			}
		}
		names := make([]string, 0, len(seen))
		for n := range seen {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(out, "%-50s %s\n", "UNIT FILE", "STATE")
		for _, n := range names {
			fmt.Fprintf(out, "%-50s %s\n", n, seen[n])
		}
		fmt.Fprintf(out, "\n%d unit files listed.\n", len(names))
	}
	return code
}

// Limits of one control request, beyond its line's (maxRequestSize).
const (
	maxRequestVerb  = 64
	maxRequestUnits = 1024
	maxUnitName     = 255 // systemd's UNIT_NAME_MAX, its NUL aside
	maxRequestProps = 1024
	maxRequestProp  = 4096
	maxSignalName   = 32
)

// decodeRequest decodes and checks one request line.
func decodeRequest(line []byte) (request, error) {
	if len(line) > maxRequestSize {
		return request{}, fmt.Errorf("request over %d bytes", maxRequestSize)
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return request{}, err
	}
	if err := req.check(); err != nil {
		return request{}, err
	}
	return req, nil
}

// check refuses what no systemctl sends: an empty or odd verb, too many
// or malformed unit names (a path, say), oversized fields.
func (req request) check() error {
	if req.Verb == "" {
		return errors.New("no verb")
	}
	if len(req.Verb) > maxRequestVerb || !printable(req.Verb) {
		return fmt.Errorf("verb %.64q is not a command verb", req.Verb)
	}
	if len(req.Units) > maxRequestUnits {
		return fmt.Errorf("%d units, over %d", len(req.Units), maxRequestUnits)
	}
	for _, u := range req.Units {
		if err := checkUnitArg(u); err != nil {
			return err
		}
	}
	if len(req.Props) > maxRequestProps {
		return fmt.Errorf("%d properties, over %d", len(req.Props), maxRequestProps)
	}
	for _, p := range req.Props {
		if len(p) > maxRequestProp || !printable(p) {
			return fmt.Errorf("property %.64q is not a property list", p)
		}
	}
	if len(req.Signal) > maxSignalName || !printable(req.Signal) {
		return fmt.Errorf("signal %.64q is not a signal name", req.Signal)
	}
	if len(req.Whom) > maxSignalName || !printable(req.Whom) {
		return fmt.Errorf("--kill-whom=%.64q is not a process set", req.Whom)
	}
	return nil
}

// checkUnitArg: a unit name or (list-units) a pattern of one: no path,
// nothing unprintable, not over maxUnitName once given its suffix.
func checkUnitArg(u string) error {
	switch {
	case u == "" || u == "." || u == "..":
		return fmt.Errorf("invalid unit name %q", u)
	case len(normalizeName(u)) > maxUnitName:
		return fmt.Errorf("invalid unit name %.64q…: over %d bytes", u, maxUnitName)
	case strings.ContainsRune(u, '/') || !printable(u):
		return fmt.Errorf("invalid unit name %q", u)
	}
	return nil
}

// printable: valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// handle runs one request in the supervisor. A request that fails check
// is answered with an error; a panic while handling one is logged and
// answered as an internal error, and leaves the supervisor (the node's
// PID 1) running.
func (m *manager) handle(req request) (resp response) {
	if err := req.check(); err != nil {
		return response{Stderr: "bad request: " + err.Error() + "\n", Code: 1}
	}
	defer func() {
		if r := recover(); r != nil {
			m.logf("control request %q: panic: %v\n%s", req.Verb, r, debug.Stack())
			resp = response{Stderr: fmt.Sprintf("Failed to %s: internal error in the lab supervisor (logged).\n", req.Verb), Code: 1}
		}
	}()
	var out, errOut bytes.Buffer
	code := m.dispatch(req, &out, &errOut)
	return response{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

func (m *manager) dispatch(req request, out, errOut *bytes.Buffer) int {
	switch req.Verb {
	case "daemon-reload", "daemon-reexec":
		m.daemonReload()
		return 0
	case "enable", "disable", "reenable", "mask", "unmask":
		code := fileVerb(m.loader, req, out, errOut)
		m.daemonReload()
		if code != 0 || !req.Now || req.Verb == "mask" || req.Verb == "unmask" {
			return code
		}
		verb := "start"
		if req.Verb == "disable" {
			verb = "stop"
		} else if req.Verb == "reenable" {
			verb = "restart"
		}
		r := req
		r.Verb = verb
		return m.dispatch(r, out, errOut)
	case "is-enabled", "cat", "list-unit-files":
		return fileVerb(m.loader, req, out, errOut)
	case "start", "stop", "restart", "try-restart", "condrestart", "reload", "reload-or-restart",
		"try-reload-or-restart", "force-reload", "reload-or-try-restart":
		return m.jobVerb(req, out, errOut)
	case "is-active", "is-failed":
		return m.isVerb(req, out, errOut)
	case "status":
		return m.status(req, out, errOut)
	case "show":
		return m.show(req, out, errOut)
	case "list-units":
		return m.listUnits(req, out)
	case "reset-failed":
		return m.resetFailed(req, errOut)
	case "kill":
		return m.kill(req, errOut)
	case "is-system-running":
		fmt.Fprintln(out, "running")
		return 0
	}
	fmt.Fprintf(errOut, "Unknown command verb '%s'.\n", req.Verb)
	return 1
}

// resolve loads the named units; a name that has no unit gives the
// systemctl message and exit code 5.
func (m *manager) resolve(verb string, names []string, errOut *bytes.Buffer) ([]*service, int) {
	var svcs []*service
	code := 0
	for _, n := range names {
		s, err := m.lookup(n)
		if err != nil {
			nn := normalizeName(n)
			switch verb {
			case "stop", "kill", "try-restart", "condrestart", "try-reload-or-restart", "force-reload", "reload-or-try-restart":
				fmt.Fprintf(errOut, "Failed to %s %s: Unit %s not loaded.\n", verb, nn, nn)
			default:
				fmt.Fprintf(errOut, "Failed to %s %s: Unit %s not found.\n", verb, nn, nn)
			}
			code = 5
			continue
		}
		if !containsSvc(svcs, s) {
			svcs = append(svcs, s)
		}
	}
	return svcs, code
}

func (m *manager) jobVerb(req request, out, errOut *bytes.Buffer) int {
	if len(req.Units) == 0 {
		fmt.Fprintf(errOut, "Too few arguments.\n")
		return 1
	}
	var names []string
	code := 0
	for _, u := range req.Units {
		nn := normalizeName(u)
		if _, inst, _, ok := splitTemplate(nn); ok && inst == "" {
			fmt.Fprintf(errOut, "Failed to %s %s: Unit name %s is missing the instance name.\n", req.Verb, nn, nn)
			code = 1
			continue
		}
		names = append(names, u)
	}
	svcs, rcode := m.resolve(req.Verb, names, errOut)
	if rcode != 0 {
		code = rcode
	}
	var keep []*service
	for _, s := range svcs {
		if labSkipped(s.id) {
			m.logf("%s: not run in the lab, %s skipped", s.id, req.Verb)
			continue
		}
		keep = append(keep, s)
	}
	svcs = keep
	if len(svcs) == 0 {
		return code
	}
	run := func() map[*service]error {
		errs := map[*service]error{}
		isActive := func(s *service) bool {
			a, _ := s.state()
			return a == "active" || a == "reloading" || a == "activating"
		}
		var restart []*service
		switch req.Verb {
		case "start":
			return m.startTxn(svcs).run()
		case "stop":
			return m.stopTxn(svcs).run()
		case "restart":
			return m.restartTxn(svcs).run()
		case "try-restart", "condrestart":
			for _, s := range svcs {
				if isActive(s) {
					restart = append(restart, s)
				}
			}
		case "reload":
			for _, s := range svcs {
				s.op.Lock()
				if err := s.reload(); err != nil {
					errs[s] = err
				}
				s.op.Unlock()
			}
			return errs
		case "reload-or-restart", "try-reload-or-restart", "force-reload", "reload-or-try-restart":
			for _, s := range svcs {
				if !isActive(s) {
					if req.Verb == "reload-or-restart" {
						restart = append(restart, s)
					}
					continue
				}
				m.refreshIdle(s)
				m.mu.Lock()
				can := s.canReload()
				m.mu.Unlock()
				if !can {
					restart = append(restart, s)
					continue
				}
				s.op.Lock()
				if err := s.reload(); err != nil {
					errs[s] = err
				}
				s.op.Unlock()
			}
		}
		if len(restart) > 0 {
			for s, err := range m.restartTxn(restart).run() {
				errs[s] = err
			}
		}
		return errs
	}
	if req.NoBlock {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					m.logf("%s (no block): panic: %v\n%s", req.Verb, r, debug.Stack())
				}
			}()
			run()
		}()
		return code
	}
	errs := run()
	for _, s := range svcs {
		if err, ok := errs[s]; ok {
			fmt.Fprintln(errOut, describeErr(req.Verb, s, err))
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

func (m *manager) isVerb(req request, out, errOut *bytes.Buffer) int {
	if len(req.Units) == 0 {
		fmt.Fprintf(errOut, "Too few arguments.\n")
		return 1
	}
	code := 3
	if req.Verb == "is-failed" {
		code = 1
	}
	for _, n := range req.Units {
		state := "inactive"
		if s, err := m.lookup(n); err == nil {
			state, _ = s.state()
		}
		if !req.Quiet {
			fmt.Fprintln(out, state)
		}
		if req.Verb == "is-active" && state == "active" || state == "reloading" && req.Verb == "is-active" {
			code = 0
		}
		if req.Verb == "is-failed" && state == "failed" {
			code = 0
		}
	}
	return code
}

// snapshot is a consistent copy of a service's state for display.
type snapshot struct {
	u                            *unitFile
	active, sub, result, status  string
	mainPID, nRestarts           int
	since                        time.Time
	invocation, conditionMessage string
	mainStatus                   *exitStatus
}

func (s *service) snapshot() snapshot {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return snapshot{u: s.unit, active: s.active, sub: s.sub, result: s.result, status: s.statusText,
		mainPID: s.mainPID, nRestarts: s.nRestarts, since: s.since, invocation: s.invocation,
		conditionMessage: s.conditionMsg, mainStatus: s.mainStatus}
}

func procComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func procCmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func (m *manager) status(req request, out, errOut *bytes.Buffer) int {
	code := 0
	names := req.Units
	if len(names) == 0 {
		fmt.Fprintf(out, "● %s (mailfleet lab)\n    State: running\n", hostnameOr("node"))
		return 0
	}
	for i, n := range names {
		s, err := m.lookup(n)
		if err != nil {
			fmt.Fprintf(errOut, "Unit %s could not be found.\n", normalizeName(n))
			code = 4
			continue
		}
		if i > 0 {
			out.WriteString("\n")
		}
		sn := s.snapshot()
		dot := "●"
		if sn.active == "inactive" {
			dot = "○"
		} else if sn.active == "failed" {
			dot = "×"
		}
		fmt.Fprintf(out, "%s %s - %s\n", dot, sn.u.Name, sn.u.Description)
		fileState, _ := m.loader.unitFileState(sn.u.Name)
		if sn.u.Masked {
			fmt.Fprintf(out, "     Loaded: masked (Reason: Unit %s is masked.)\n", sn.u.Name)
		} else if sn.u.Fragment != "" {
			fmt.Fprintf(out, "     Loaded: loaded (%s; %s)\n", sn.u.Fragment, fileState)
		} else {
			fmt.Fprintf(out, "     Loaded: loaded\n")
		}
		if sn.u.Quirk != "" {
			fmt.Fprintf(out, "        Lab: %s\n", sn.u.Quirk)
		}
		if len(sn.u.DropIns) > 0 {
			fmt.Fprintf(out, "    Drop-In: %s\n", strings.Join(sn.u.DropIns, "\n             "))
		}
		active := fmt.Sprintf("%s (%s)", sn.active, sn.sub)
		if sn.active == "failed" {
			active += fmt.Sprintf(" (Result: %s)", sn.result)
		}
		if !sn.since.IsZero() {
			active += fmt.Sprintf(" since %s; %s ago", sn.since.UTC().Format("Mon 2006-01-02 15:04:05 UTC"),
				time.Since(sn.since).Truncate(time.Second))
		}
		fmt.Fprintf(out, "     Active: %s\n", active)
		if sn.conditionMessage != "" {
			fmt.Fprintf(out, "  Condition: start condition failed (%s)\n", sn.conditionMessage)
		}
		if sn.mainPID > 0 && sn.mainStatus == nil {
			fmt.Fprintf(out, "   Main PID: %d (%s)\n", sn.mainPID, procComm(sn.mainPID))
		} else if sn.mainStatus != nil {
			fmt.Fprintf(out, "   Main PID: %d (%s)\n", sn.mainPID, sn.mainStatus)
		}
		if sn.status != "" {
			fmt.Fprintf(out, "     Status: \"%s\"\n", sn.status)
		}
		if sn.active != "inactive" && !s.isNoop() {
			pids := m.unitProcesses(s)
			if len(pids) > 0 {
				fmt.Fprintf(out, "      Tasks: %d\n", len(pids))
				for j, p := range pids {
					lead := "├─"
					if j == len(pids)-1 {
						lead = "└─"
					}
					fmt.Fprintf(out, "             %s%d %s\n", lead, p, procCmdline(p))
				}
			}
		}
		lines := req.Lines
		if lines == 0 {
			lines = 10
		}
		if lines > 0 {
			if tail := tailFile(filepath.Join(labLogDir, sn.u.Name+".log"), lines); len(tail) > 0 {
				out.WriteString("\n")
				for _, l := range tail {
					out.WriteString(l + "\n")
				}
			}
		}
		if sn.active != "active" && sn.active != "reloading" && code == 0 {
			code = 3
		}
	}
	return code
}

func hostnameOr(def string) string {
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return def
}

// tailFile returns the last n lines of a file (reading at most 64 KiB).
func tailFile(p string, n int) []string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	off := fi.Size() - 64<<10
	if off < 0 {
		off = 0
	}
	f.Seek(off, 0)
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// properties of a unit for systemctl show.
func (m *manager) properties(s *service) [][2]string {
	sn := s.snapshot()
	u := sn.u
	fileState, _ := m.loader.unitFileState(u.Name)
	load := "loaded"
	if u.Masked {
		load = "masked"
	}
	mainPID := sn.mainPID
	if sn.mainStatus != nil {
		mainPID = 0
	}
	execStatus := 0
	if sn.mainStatus != nil {
		execStatus = sn.mainStatus.Code
		if sn.mainStatus.Signaled {
			execStatus = int(sn.mainStatus.Signal)
		}
	}
	since := ""
	if !sn.since.IsZero() {
		since = sn.since.UTC().Format("Mon 2006-01-02 15:04:05 UTC")
	}
	res := sn.result
	if res == "" {
		res = resSuccess
	}
	names := append([]string{u.Name}, u.Aliases...)
	return [][2]string{
		{"Type", u.Service.Type},
		{"Restart", u.Service.Restart},
		{"PIDFile", u.Service.PIDFile},
		{"RemainAfterExit", yesNo(u.Service.RemainAfterExit)},
		{"MainPID", strconv.Itoa(mainPID)},
		{"ExecMainPID", strconv.Itoa(sn.mainPID)},
		{"ExecMainStatus", strconv.Itoa(execStatus)},
		{"NRestarts", strconv.Itoa(sn.nRestarts)},
		{"Result", res},
		{"User", u.Service.User},
		{"Group", u.Service.Group},
		{"LimitNOFILE", u.Service.LimitNOFILE},
		{"KillMode", u.Service.KillMode},
		{"Id", u.Name},
		{"Names", strings.Join(names, " ")},
		{"Requires", strings.Join(u.Requires, " ")},
		{"Wants", strings.Join(u.Wants, " ")},
		{"After", strings.Join(u.After, " ")},
		{"Before", strings.Join(u.Before, " ")},
		{"Description", u.Description},
		{"LoadState", load},
		{"ActiveState", sn.active},
		{"SubState", sn.sub},
		{"FragmentPath", u.Fragment},
		{"DropInPaths", strings.Join(u.DropIns, " ")},
		{"UnitFileState", fileState},
		{"StateChangeTimestamp", since},
		{"InvocationID", sn.invocation},
		{"StatusText", sn.status},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (m *manager) show(req request, out, errOut *bytes.Buffer) int {
	want := map[string]bool{}
	for _, p := range req.Props {
		for _, x := range strings.Split(p, ",") {
			if x = strings.TrimSpace(x); x != "" {
				want[x] = true
			}
		}
	}
	for i, n := range req.Units {
		if i > 0 && len(want) != 1 {
			out.WriteString("\n")
		}
		s, err := m.lookup(n)
		var props [][2]string
		if err != nil {
			nn := normalizeName(n)
			props = [][2]string{{"Id", nn}, {"Names", nn}, {"LoadState", "not-found"}, {"ActiveState", "inactive"},
				{"SubState", "dead"}, {"MainPID", "0"}, {"UnitFileState", ""}, {"Result", resSuccess}}
		} else {
			props = m.properties(s)
		}
		for _, kv := range props {
			if len(want) > 0 && !want[kv[0]] {
				continue
			}
			if req.Value {
				fmt.Fprintln(out, kv[1])
			} else {
				fmt.Fprintf(out, "%s=%s\n", kv[0], kv[1])
			}
		}
	}
	return 0
}

func (m *manager) listUnits(req request, out *bytes.Buffer) int {
	m.mu.Lock()
	list := make([]*service, 0, len(m.services))
	for _, s := range m.services {
		list = append(list, s)
	}
	m.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	fmt.Fprintf(out, "  %-40s %-9s %-9s %-9s %s\n", "UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION")
	n := 0
	for _, s := range list {
		sn := s.snapshot()
		if !req.All && sn.active == "inactive" {
			continue
		}
		if len(req.Units) > 0 {
			ok := false
			for _, p := range req.Units {
				if match, _ := filepath.Match(p, sn.u.Name); match || p == sn.u.Name {
					ok = true
				}
			}
			if !ok {
				continue
			}
		}
		dot := " "
		if sn.active == "failed" {
			dot = "●"
		}
		load := "loaded"
		if sn.u.Masked {
			load = "masked"
		}
		fmt.Fprintf(out, "%s %-40s %-9s %-9s %-9s %s\n", dot, sn.u.Name, load, sn.active, sn.sub, sn.u.Description)
		n++
	}
	fmt.Fprintf(out, "\n%d loaded units listed.\n", n)
	return 0
}

func (m *manager) resetFailed(req request, errOut *bytes.Buffer) int {
	var svcs []*service
	if len(req.Units) == 0 {
		m.mu.Lock()
		for _, s := range m.services {
			svcs = append(svcs, s)
		}
		m.mu.Unlock()
	} else {
		var code int
		svcs, code = m.resolve("reset-failed", req.Units, errOut)
		if code != 0 {
			return 1
		}
	}
	for _, s := range svcs {
		m.mu.Lock()
		s.starts = nil
		if s.active == "failed" {
			s.setState("inactive", "dead")
			s.result = resSuccess
		}
		m.mu.Unlock()
	}
	return 0
}

func (m *manager) kill(req request, errOut *bytes.Buffer) int {
	sig := unix.SIGTERM
	if req.Signal != "" {
		var ok bool
		if sig, ok = parseSignal(req.Signal); !ok {
			fmt.Fprintf(errOut, "Failed to parse signal string %s.\n", req.Signal)
			return 1
		}
	}
	svcs, code := m.resolve("kill", req.Units, errOut)
	for _, s := range svcs {
		var pids []int
		sn := s.snapshot()
		if req.Whom == "main" {
			if sn.mainPID > 0 && sn.mainStatus == nil {
				pids = []int{sn.mainPID}
			}
		} else {
			pids = m.unitProcesses(s)
		}
		if len(pids) == 0 && req.Whom == "main" {
			fmt.Fprintf(errOut, "Failed to kill unit %s: No main process to kill\n", sn.u.Name)
			code = 1
		}
		for _, p := range pids {
			unix.Kill(p, sig)
		}
	}
	return code
}

var errNotBooted = errors.New("System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down")
