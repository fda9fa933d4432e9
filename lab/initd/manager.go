package initd

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// manager is the supervisor's state: every unit it has loaded.
type manager struct {
	mu           sync.Mutex
	loader       *loader
	services     map[string]*service // by canonical name
	names        map[string]string   // alias -> canonical name
	reaper       *reaper
	log          *log.Logger
	shuttingDown bool
	self         int
}

func (m *manager) logf(format string, a ...any) { m.log.Printf(format, a...) }

// maxUnits bounds the units the supervisor keeps (a node has tens).
const maxUnits = 4096

// lookup returns the service for a name, loading the unit if needed.
func (m *manager) lookup(name string) (*service, error) {
	name = normalizeName(name)
	m.mu.Lock()
	if c, ok := m.names[name]; ok {
		name = c
	}
	if s, ok := m.services[name]; ok {
		m.mu.Unlock()
		return s, nil
	}
	m.mu.Unlock()
	u, err := m.loader.load(name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.services[u.Name]; ok {
		m.names[name] = u.Name
		return s, nil
	}
	if len(m.services) >= maxUnits {
		// Every name asked about stays known (a target's state, say): a
		// client naming endless new ones must not grow the supervisor.
		return nil, fmt.Errorf("Unit %s cannot be loaded: %d units are loaded already.", u.Name, maxUnits)
	}
	s := &service{m: m, id: u.Name, unit: u, active: "inactive", sub: "dead"}
	m.services[u.Name] = s
	if name != u.Name {
		m.names[name] = u.Name
	}
	for _, a := range u.Aliases {
		m.names[a] = u.Name
	}
	return s, nil
}

// refresh re-reads a unit's files when they changed since it was loaded.
// The caller holds s.op (a job uses one version of the unit throughout).
func (m *manager) refresh(s *service) {
	u, err := m.loader.load(s.id)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u.stamp != s.unit.stamp || u.Masked != s.unit.Masked {
		s.unit = u
		for _, a := range u.Aliases {
			m.names[a] = u.Name
		}
	}
}

// refreshIdle refreshes a unit no job is running on; a busy one is
// refreshed by its next start.
func (m *manager) refreshIdle(s *service) {
	if s.op.TryLock() {
		m.refresh(s)
		s.op.Unlock()
	}
}

// daemonReload re-reads every loaded unit.
func (m *manager) daemonReload() {
	m.loader.forgetAliases()
	m.mu.Lock()
	list := make([]*service, 0, len(m.services))
	for _, s := range m.services {
		list = append(list, s)
	}
	m.mu.Unlock()
	for _, s := range list {
		m.refreshIdle(s)
	}
	m.logf("Reloaded unit files.")
}

// unitProcesses lists the live processes of a service: those carrying one
// of its invocation IDs in their environment, its main and control
// processes, and their descendants.
func (m *manager) unitProcesses(s *service) []int { return m.unitProcessesOf(s, false) }

// unitProcessesOf with current set looks at the current invocation only
// (what a failed start leaves), sparing what earlier runs left behind
// (KillMode=process leaves sshd's sessions running).
func (m *manager) unitProcessesOf(s *service, current bool) []int {
	m.mu.Lock()
	ids := append([]string(nil), s.invocations...)
	if current {
		ids = []string{s.invocation}
	}
	roots := map[int]bool{}
	if s.mainPID > 0 {
		roots[s.mainPID] = true
	}
	if s.controlPID > 0 {
		roots[s.controlPID] = true
	}
	m.mu.Unlock()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	member := map[int]bool{}
	var markers [][]byte
	for _, id := range ids {
		markers = append(markers, []byte("INVOCATION_ID="+id+"\x00"))
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == m.self || pid <= 1 {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
		if roots[pid] {
			member[pid] = true
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		env = append(env, 0)
		for _, mk := range markers {
			if bytes.Contains(env, mk) {
				member[pid] = true
				break
			}
		}
	}
	// descendants of members
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if !member[pid] && member[pp] {
				member[pid] = true
				changed = true
			}
		}
	}
	out := make([]int, 0, len(member))
	for pid := range member {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out
}

// Jobs and transactions.

// txn is one request's set of jobs: stops first (dependents before what
// they depend on), then starts (dependencies first), in parallel where no
// ordering says otherwise.
type txn struct {
	m      *manager
	stops  []*service
	starts []*service
	// the units named in the request: their errors are reported
	anchors map[*service]bool
}

// deps of a unit, by kind.
func (m *manager) depNames(s *service, kinds ...string) []string {
	m.mu.Lock()
	u := s.unit
	m.mu.Unlock()
	var out []string
	for _, k := range kinds {
		switch k {
		case "Requires":
			out = append(out, u.Requires...)
		case "Wants":
			out = append(out, u.Wants...)
		case "BindsTo":
			out = append(out, u.BindsTo...)
		case "Requisite":
			out = append(out, u.Requisite...)
		case "After":
			out = append(out, u.After...)
		case "Before":
			out = append(out, u.Before...)
		case "PartOf":
			out = append(out, u.PartOf...)
		}
	}
	return out
}

// pullStarts adds s and what it Requires/Wants/BindsTo to set.
func (m *manager) pullStarts(s *service, set map[*service]bool, required map[*service]map[*service]bool) {
	if set[s] {
		return
	}
	set[s] = true
	m.refreshIdle(s)
	for _, kind := range []string{"Requires", "BindsTo", "Wants"} {
		for _, n := range m.depNames(s, kind) {
			d, err := m.lookup(n)
			if err != nil {
				if kind != "Wants" {
					if required[s] == nil {
						required[s] = map[*service]bool{}
					}
					required[s][nil] = true
				}
				continue
			}
			if kind != "Wants" {
				if required[s] == nil {
					required[s] = map[*service]bool{}
				}
				required[s][d] = true
			}
			m.pullStarts(d, set, required)
		}
	}
}

// dependents returns the loaded, running units that Require/BindsTo/PartOf s,
// recursively.
func (m *manager) dependents(s *service, set map[*service]bool) {
	m.mu.Lock()
	all := make([]*service, 0, len(m.services))
	for _, x := range m.services {
		all = append(all, x)
	}
	m.mu.Unlock()
	for _, x := range all {
		if set[x] || x == s {
			continue
		}
		act, _ := x.state()
		if act == "inactive" || act == "failed" {
			continue
		}
		for _, n := range m.depNames(x, "Requires", "BindsTo", "PartOf") {
			if d, err := m.lookup(n); err == nil && d == s {
				set[x] = true
				m.dependents(x, set)
				break
			}
		}
	}
}

// orderedAfter reports whether a must start after b (a After b or b Before a).
func (m *manager) orderedAfter(a, b *service) bool {
	for _, n := range m.depNames(a, "After") {
		if d, err := m.lookup(n); err == nil && d == b {
			return true
		}
	}
	for _, n := range m.depNames(b, "Before") {
		if d, err := m.lookup(n); err == nil && d == a {
			return true
		}
	}
	return false
}

// run executes a transaction and returns the error of each anchor.
func (t *txn) run() map[*service]error {
	m := t.m
	errs := map[*service]error{}
	var mu sync.Mutex
	// stops: a unit stops after every unit ordered after it has stopped
	done := map[*service]chan struct{}{}
	for _, s := range t.stops {
		done[s] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, s := range t.stops {
		var waitFor []chan struct{}
		for _, o := range t.stops {
			if o != s && m.orderedAfter(o, s) {
				waitFor = append(waitFor, done[o])
			}
		}
		wg.Add(1)
		go func(s *service, waitFor []chan struct{}) {
			defer wg.Done()
			defer close(done[s])
			for _, c := range waitFor {
				<-c
			}
			s.interruptStart()
			s.op.Lock()
			err := s.stop()
			s.op.Unlock()
			if err != nil {
				mu.Lock()
				errs[s] = err
				mu.Unlock()
			}
		}(s, waitFor)
	}
	wg.Wait()
	// starts: after what they are ordered after; a Required dependency
	// ordered before that failed fails the unit
	sdone := map[*service]chan struct{}{}
	failed := map[*service]bool{}
	for _, s := range t.starts {
		sdone[s] = make(chan struct{})
	}
	required := map[*service]map[*service]bool{}
	set := map[*service]bool{}
	for _, s := range t.starts {
		m.pullStarts(s, set, required)
	}
	for _, s := range t.starts {
		var waitFor []*service
		for _, o := range t.starts {
			if o != s && m.orderedAfter(s, o) {
				waitFor = append(waitFor, o)
			}
		}
		wg.Add(1)
		go func(s *service, waitFor []*service) {
			defer wg.Done()
			defer close(sdone[s])
			depFailed := false
			for _, o := range waitFor {
				<-sdone[o]
				mu.Lock()
				if failed[o] && required[s][o] {
					depFailed = true
				}
				mu.Unlock()
			}
			if required[s][nil] {
				depFailed = true
			}
			var err error
			if depFailed {
				err = &jobError{unit: s.id, result: resDependency,
					msg: "A dependency job for " + s.id + " failed. See 'journalctl -xe' for details."}
				m.logf("Dependency failed for %s.", s.id)
			} else {
				s.op.Lock()
				err = s.start()
				s.op.Unlock()
			}
			if err == errSkipped {
				err = nil
			}
			mu.Lock()
			if err != nil {
				failed[s] = true
				errs[s] = err
			}
			mu.Unlock()
		}(s, waitFor)
	}
	wg.Wait()
	return errs
}

// startTxn makes the transaction that starts names (and what they pull in).
func (m *manager) startTxn(svcs []*service) *txn {
	set := map[*service]bool{}
	required := map[*service]map[*service]bool{}
	for _, s := range svcs {
		m.pullStarts(s, set, required)
	}
	t := &txn{m: m, anchors: map[*service]bool{}}
	for _, s := range svcs {
		t.anchors[s] = true
	}
	t.starts = sortedServices(set)
	return t
}

// stopTxn stops svcs and the running units that need them.
func (m *manager) stopTxn(svcs []*service) *txn {
	set := map[*service]bool{}
	for _, s := range svcs {
		set[s] = true
		m.dependents(s, set)
	}
	t := &txn{m: m, anchors: map[*service]bool{}}
	for _, s := range svcs {
		t.anchors[s] = true
	}
	t.stops = sortedServices(set)
	return t
}

// restartTxn restarts svcs; running units that Require/BindsTo/PartOf them
// are stopped first and started again afterwards (systemd propagates a
// restart to them as try-restart).
func (m *manager) restartTxn(svcs []*service) *txn {
	stop := map[*service]bool{}
	for _, s := range svcs {
		stop[s] = true
		m.dependents(s, stop)
	}
	start := append([]*service(nil), svcs...)
	for s := range stop {
		if !containsSvc(start, s) {
			start = append(start, s)
		}
	}
	t := m.startTxn(start)
	t.stops = sortedServices(stop)
	for _, s := range svcs {
		t.anchors[s] = true
	}
	return t
}

func containsSvc(list []*service, s *service) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedServices(set map[*service]bool) []*service {
	out := make([]*service, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// bootUnits lists what is enabled: /etc/systemd/system/*.target.wants/* and
// *.target.requires/*.
func (m *manager) bootUnits() []string {
	var names []string
	seen := map[string]bool{}
	base := filepath.Join(m.loader.root, "/etc/systemd/system")
	for _, pat := range []string{"*.target.wants", "*.target.requires"} {
		dirs, _ := filepath.Glob(filepath.Join(base, pat))
		sort.Strings(dirs)
		for _, d := range dirs {
			ents, err := os.ReadDir(d)
			if err != nil {
				continue
			}
			for _, e := range ents {
				n := e.Name()
				if unitSuffix(n) != ".service" || seen[n] {
					continue
				}
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}

// boot starts every enabled unit.
func (m *manager) boot() {
	var svcs []*service
	for _, n := range m.bootUnits() {
		s, err := m.lookup(n)
		if err != nil {
			m.logf("boot: %s: %v", n, err)
			continue
		}
		if !containsSvc(svcs, s) {
			svcs = append(svcs, s)
		}
	}
	if len(svcs) == 0 {
		m.logf("boot: nothing enabled")
		return
	}
	errs := m.startTxn(svcs).run()
	for s, err := range errs {
		m.logf("boot: %s: %v", s.id, err)
	}
	m.logf("boot: started %d unit(s), %d failed", len(svcs), len(errs))
}

// shutdown stops every unit, dependents first. Starts in flight are
// interrupted and no new one begins.
func (m *manager) shutdown() {
	m.mu.Lock()
	m.shuttingDown = true
	var all []*service
	for _, s := range m.services {
		if !s.isNoop() {
			all = append(all, s)
		}
	}
	m.mu.Unlock()
	for _, s := range all {
		s.interruptStart()
	}
	t := &txn{m: m, stops: all, anchors: map[*service]bool{}}
	t.run()
	// as a halting system does: whatever is left (KillMode=process
	// leftovers, SendSIGKILL=no, orphans reparented to us) goes too
	var left []int
	for _, s := range all {
		left = append(left, m.unitProcesses(s)...)
	}
	left = append(left, m.orphans()...)
	if left = livePIDs(left); len(left) == 0 {
		return
	}
	m.logf("sending SIGTERM to remaining processes %v", left)
	for _, p := range left {
		unix.Kill(p, unix.SIGTERM)
		unix.Kill(p, unix.SIGCONT)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(livePIDs(left)) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 50; i++ {
		rest := livePIDs(append(left, m.orphans()...))
		if len(rest) == 0 {
			return
		}
		if i == 0 {
			m.logf("sending SIGKILL to remaining processes %v", rest)
		}
		for _, p := range rest {
			unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// orphans lists our child processes that no unit started: daemons' orphans
// reparented to the supervisor.
func (m *manager) orphans() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == m.self {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 2 && f[0] != "Z" && f[1] == strconv.Itoa(m.self) {
			out = append(out, pid)
		}
	}
	return out
}

// describeErr turns a job error into systemctl's message.
func describeErr(verb string, s *service, err error) string {
	name := s.id
	var je *jobError
	if errors.As(err, &je) {
		switch je.result {
		case resDependency, "masked", "inactive":
			return je.msg
		}
		why := "the control process exited with error code"
		switch je.result {
		case resTimeout:
			why = "a timeout was exceeded"
		case resSignal, resCoreDump:
			why = "a fatal signal was delivered to the control process"
		case resStartLimit:
			why = "start of the service was attempted too often"
		case resResources:
			why = "of unavailable resources or another system error"
		case resProtocol:
			why = "the service did not take the steps required by its unit configuration"
		}
		return fmt.Sprintf("Job for %s failed because %s.\nSee \"systemctl status %s\" and \"journalctl -xeu %s\" for details.", name, why, name, name)
	}
	if err == errReloadUnsupported {
		return fmt.Sprintf("Failed to reload %s: Job type reload is not applicable for unit %s.", name, name)
	}
	return fmt.Sprintf("Failed to %s %s: %v", verb, name, err)
}
