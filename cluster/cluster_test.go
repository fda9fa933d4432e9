package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var labSite = Site{
	Members: []string{"axigenode1", "axigenode2", "ldapnode", "standby"},
	Services: []Service{
		{Name: "AXIGEN1", Kind: "instance", Daemon: "AXIGEN1-store", Nodes: []string{"axigenode1", "standby"}},
		{Name: "AXIGEN2", Kind: "instance", Daemon: "AXIGEN2-store", Nodes: []string{"axigenode2", "standby"}},
		{Name: "ldap", Kind: "directory", Daemon: "ldap-slapd", Nodes: []string{"ldapnode", "standby"}},
	},
}

func TestParseStatus(t *testing.T) {
	b, err := os.ReadFile("testdata/crm_mon.xml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStatus(b, labSite)
	if err != nil {
		t.Fatal(err)
	}
	if st.DC == "" || !st.Quorum {
		t.Errorf("dc %q quorum %v", st.DC, st.Quorum)
	}
	var nodes []string
	for _, n := range st.Nodes {
		nodes = append(nodes, n.Name+"="+n.State)
	}
	if got := strings.Join(nodes, " "); got != "axigenode1=online axigenode2=online ldapnode=online standby=online" {
		t.Errorf("nodes: %s", got)
	}
	for _, want := range []struct{ name, node string }{{"AXIGEN1", "axigenode1"}, {"AXIGEN2", "axigenode2"}, {"ldap", "ldapnode"}} {
		s := st.service(want.name)
		if s.State != "started" || s.Node != want.node || s.Since.IsZero() || len(s.Failover) != 2 {
			t.Errorf("%s: %+v", want.name, s)
		}
	}
	if _, err := parseStatus([]byte("<not xml"), labSite); err == nil {
		t.Error("garbage parsed")
	}
}

func TestHistory(t *testing.T) {
	b, err := os.ReadFile("testdata/failover.log")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.Local)
	eps := episodes(labSite, parseLog(strings.Split(string(b), "\n"), now))
	if len(eps) != 2 {
		t.Fatalf("%d episodes: %+v", len(eps), eps)
	}
	f := eps[0]
	if f.Service != "AXIGEN1" || f.Kind != "failover" || f.From != "axigenode1" || f.To != "standby" {
		t.Errorf("failover: %+v", f)
	}
	if f.Seconds < 2.63 || f.Seconds > 2.64 {
		t.Errorf("failover took %.3f s, want 2.632 (lost 36.988 to store started 39.620)", f.Seconds)
	}
	var whats []string
	for _, s := range f.Steps {
		whats = append(whats, s.What)
	}
	if got := strings.Join(whats, ","); got != "lost,fence asked,fenced,start asked,start asked,started,started,start asked,started" {
		t.Errorf("steps: %s", got)
	}
	r := eps[1]
	if r.Kind != "relocation" || r.From != "standby" || r.To != "axigenode1" || r.Seconds < 2.09 || r.Seconds > 2.11 {
		t.Errorf("relocation: %+v", r)
	}
	// The lost node's own log is gone with it: where AXIGEN1 ran is not
	// known, but its resources start right after axigenode1's loss.
	lines := strings.Split(string(b), "\n")[1:]
	eps = episodes(labSite, parseLog(lines, now))
	if len(eps) != 2 || eps[0].Kind != "failover" || eps[0].From != "axigenode1" || eps[0].Steps[0].What != "lost" {
		t.Errorf("without the start line: %+v", eps)
	}
	// Members learn of a fencing one after another; the event is the
	// earliest line, whatever order the members' logs were read in.
	ev := parseLog([]string{
		"Dec 07 23:32:57.612 standby pacemaker-fenced [1] (finalize_op) notice: Operation 'reboot' targeting axigenode1 by axigenode2 for c@ldapnode: OK (complete)",
		"Dec 07 23:32:57.588 ldapnode pacemaker-fenced [1] (finalize_op) notice: Operation 'reboot' targeting axigenode1 by axigenode2 for c@ldapnode: OK (complete)",
		"Dec 07 23:32:58.001 axigenode2 pacemaker-fenced [1] (finalize_op) notice: Operation 'reboot' targeting axigenode1 by axigenode2 for c@ldapnode: OK (complete)",
	}, now)
	if len(ev) != 1 || ev[0].what != "fenced" || ev[0].at.Format("15:04:05.000") != "23:32:57.588" {
		t.Errorf("one fencing, at its earliest line: %+v", ev)
	}
	// A member cut off from the rest sees them all lost, and loses quorum:
	// only the majority's view of the cut member counts.
	ev = parseLog([]string{
		"Dec 08 00:42:47.840 standby pacemaker-controld  [14275] (quorum_notification_cb) warning: Quorum lost | membership=553 members=1",
		"Dec 08 00:42:47.844 standby pacemaker-controld  [14275] (update_peer_state_iter) notice: Node ldapnode state is now lost | nodeid=3",
		"Dec 08 00:42:47.844 standby pacemaker-controld  [14275] (update_peer_state_iter) notice: Node axigenode1 state is now lost | nodeid=1",
		"Dec 08 00:42:48.120 ldapnode pacemaker-controld  [17637] (update_peer_state_iter) notice: Node standby state is now lost | nodeid=4",
	}, now)
	if len(ev) != 1 || ev[0].what != "lost" || ev[0].subject != "standby" {
		t.Errorf("a link cut: %+v, want standby lost only", ev)
	}
	// The member that ran a start may be down when the history is read:
	// the DC's confirmation stands for its result, once.
	ev = parseLog([]string{
		"Dec 08 01:04:06.940 ldapnode pacemaker-controld  [17637] (process_graph_event) info: Transition 7 action 40 (AXIGEN1-store_start_0 on standby) confirmed: ok | rc=0 call-id=76",
		"Dec 08 01:04:06.936 standby pacemaker-controld  [1] (log_executor_event) notice: Result of start operation for AXIGEN1-store on standby: ok | CIB update 61",
	}, now)
	if len(ev) != 1 || ev[0].what != "started" || ev[0].rsc != "AXIGEN1-store" || ev[0].node != "standby" || ev[0].at.Format("05.000") != "06.936" {
		t.Errorf("a start's result from two logs: %+v", ev)
	}
	// A year-less line from late December read in early January is last year's.
	e := parseLog([]string{"Dec 31 23:59:59.000 x pacemaker-controld [1] (x) notice: Node n1 state is now lost"}, time.Date(2027, 1, 1, 0, 0, 5, 0, time.Local))
	if len(e) != 1 || e[0].at.Year() != 2026 {
		t.Errorf("year: %+v", e)
	}
}

// fakeRunner answers from a table: node → output, or an error.
type fakeRunner struct {
	out   map[string]string
	calls []string
}

func (f *fakeRunner) Run(ctx context.Context, node string, argv ...string) ([]byte, error) {
	f.calls = append(f.calls, node+": "+strings.Join(argv, " "))
	if o, ok := f.out[node]; ok {
		return []byte(o), nil
	}
	return nil, fmt.Errorf("ssh: connect to %s: connection refused", node)
}

func TestOpsNamesAndReachability(t *testing.T) {
	b, _ := os.ReadFile("testdata/crm_mon.xml")
	r := &fakeRunner{out: map[string]string{"standby": string(b)}}
	o := &Ops{Site: labSite, Run: r, Wait: time.Second}
	ctx := context.Background()
	st, err := o.Status(ctx)
	if err != nil || st.AskedOn != "standby" {
		t.Fatalf("status through the one member that answers: %v %+v", err, st)
	}
	var ue *UnknownError
	if err := o.Relocate(ctx, "AXIGEN9", "standby"); !errors.As(err, &ue) {
		t.Errorf("unknown instance: %v", err)
	}
	if err := o.Relocate(ctx, "AXIGEN1", "axigenode2"); err == nil || !strings.Contains(err.Error(), "may run on axigenode1, standby only") {
		t.Errorf("a node not in the list: %v", err)
	}
	if err := o.Standby(ctx, "nosuch", true); !errors.As(err, &ue) {
		t.Errorf("unknown node: %v", err)
	}
	// Fencing is asked of another member first.
	r.calls = nil
	r.out["axigenode2"] = ""
	if err := o.Fence(ctx, "axigenode2"); err != nil {
		t.Fatal(err)
	}
	if len(r.calls) == 0 || strings.HasPrefix(r.calls[0], "axigenode2:") {
		t.Errorf("fence asked first of the node itself: %v", r.calls)
	}
	down := &Ops{Site: labSite, Run: &fakeRunner{out: map[string]string{}}}
	if _, err := down.Status(ctx); !errors.Is(err, ErrNotUp) {
		t.Errorf("no member answers: %v", err)
	}
}

// Status asks the DC for its view when another member answered first: a
// member that was just fenced and is back knows little of the fencing.
func TestStatusAsksTheDC(t *testing.T) {
	b, err := os.ReadFile("testdata/crm_mon.xml")
	if err != nil {
		t.Fatal(err)
	}
	// axigenode1 answers first, without any fencing history; the DC
	// (axigenode2 in the file) has it.
	withHistory := strings.Replace(string(b), "</pacemaker-result>",
		`<fence_history><fence_event action="reboot" target="ldapnode" client="pacemaker-controld.1" origin="axigenode2" status="success" completed="2026-12-08 01:12:26Z"/></fence_history></pacemaker-result>`, 1)
	r := &fakeRunner{out: map[string]string{"axigenode1": string(b), "axigenode2": withHistory}}
	st, err := (&Ops{Site: labSite, Run: r}).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.AskedOn != "axigenode2" || len(st.Fencing) == 0 {
		t.Errorf("asked on %s, %d fencing events; want the DC's view (calls %v)", st.AskedOn, len(st.Fencing), r.calls)
	}
}
