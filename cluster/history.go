package cluster

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Episode is one failover, relocation or restart of a service, as
// Pacemaker's logs tell it.
type Episode struct {
	Service string    `json:"service"`
	Kind    string    `json:"kind"` // failover (its node was lost), relocation (moved), restart (same node)
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Began   time.Time `json:"began"` // the node lost, or the first stop asked
	Steps   []Step    `json:"steps"`
	Serving time.Time `json:"serving,omitzero"` // the daemon started
	// Seconds is Serving - Began; 0 while the episode is not over. For a
	// failover it starts when the cluster declared the node lost, which
	// is corosync's token + consensus after the node went silent.
	Seconds float64 `json:"seconds"`
}

// Step is one event of an episode.
type Step struct {
	At    time.Time `json:"at"`
	What  string    `json:"what"` // lost, fence asked, fenced, stop asked, stopped, start asked, started
	Rsc   string    `json:"resource,omitempty"`
	Node  string    `json:"node,omitempty"`
	After float64   `json:"after"` // seconds after Began
}

// logEvent is a line of a member's pacemaker.log that History uses.
type logEvent struct {
	at              time.Time
	what, rsc, node string
	subject         string // the node an event is about (lost, fencing)
	line            string
}

var (
	reLost       = regexp.MustCompile(`pacemaker-controld.*Node (\S+) state is now lost`)
	reNoQuorum   = regexp.MustCompile(`pacemaker-controld.*Quorum lost`)
	reFenceAsked = regexp.MustCompile(`Requesting fencing \(\w+\) of node (\S+)`)
	reFenced     = regexp.MustCompile(`Operation '\w+' targeting (\S+) by .*: OK`)
	reInitiate   = regexp.MustCompile(`Initiating (start|stop) operation (\S+)_(start|stop)_0 (?:locally )?on (\S+)`)
	reResult     = regexp.MustCompile(`Result of (start|stop) operation for (\S+) on (\S+): ok`)
	// The DC's own record of a result: read too, since the member that
	// ran the action (and logged its result) may be down by now.
	reConfirmed   = regexp.MustCompile(`action \d+ \((\S+)_(start|stop)_0 on (\S+)\) confirmed: ok`)
	logPattern    = `state is now lost|Quorum lost|Requesting fencing|targeting .*: OK|Initiating (start|stop) operation|Result of (start|stop) operation|_(start|stop)_0 on \S+\) confirmed: ok`
	logTimeLayout = "Jan 02 15:04:05.000"
)

// History reads Pacemaker's logs on every member that answers and returns
// the episodes they tell, oldest first. now dates the year-less log lines.
func (o *Ops) History(ctx context.Context, now time.Time) ([]Episode, error) {
	var lines []string
	answered := 0
	for _, n := range o.Site.Members {
		out, err := o.Run.Run(ctx, n, "grep", "-hE", logPattern, "/var/log/pacemaker/pacemaker.log")
		if err != nil {
			continue // down, or nothing logged yet
		}
		answered++
		lines = append(lines, strings.Split(string(out), "\n")...)
	}
	if answered == 0 {
		return nil, ErrNotUp
	}
	return episodes(o.Site, parseLog(lines, now)), nil
}

// parseLog turns log lines into events, each once (several members log
// the same loss), sorted by time.
func parseLog(lines []string, now time.Time) []logEvent {
	var evs []logEvent
	for _, l := range lines {
		if len(l) < len(logTimeLayout) {
			continue
		}
		at, err := time.ParseInLocation(logTimeLayout, l[:len(logTimeLayout)], time.Local)
		if err != nil {
			continue
		}
		at = at.AddDate(now.Year(), 0, 0)
		if at.After(now.Add(24 * time.Hour)) {
			at = at.AddDate(-1, 0, 0)
		}
		var e logEvent
		switch {
		case reNoQuorum.MatchString(l):
			e = logEvent{what: "no quorum", node: logHost(l)}
		case reLost.MatchString(l):
			e = logEvent{what: "lost", subject: reLost.FindStringSubmatch(l)[1]}
		case reFenceAsked.MatchString(l):
			e = logEvent{what: "fence asked", subject: reFenceAsked.FindStringSubmatch(l)[1]}
		case reFenced.MatchString(l):
			e = logEvent{what: "fenced", subject: reFenced.FindStringSubmatch(l)[1]}
		case reInitiate.MatchString(l):
			m := reInitiate.FindStringSubmatch(l)
			e = logEvent{what: m[1] + " asked", rsc: m[2], node: m[4]}
		case reResult.MatchString(l):
			m := reResult.FindStringSubmatch(l)
			e = logEvent{what: map[string]string{"start": "started", "stop": "stopped"}[m[1]], rsc: m[2], node: m[3]}
		case reConfirmed.MatchString(l):
			m := reConfirmed.FindStringSubmatch(l)
			e = logEvent{what: map[string]string{"start": "started", "stop": "stopped"}[m[2]], rsc: m[1], node: m[3]}
		default:
			continue
		}
		e.at, e.line = at, l
		evs = append(evs, e)
	}
	slices.SortStableFunc(evs, func(a, b logEvent) int { return a.at.Compare(b.at) })
	// A member cut off from the others (a link cut) sees every other
	// member lost, and loses quorum: what it saw then is not a loss of
	// those members. Its losses within a second of its quorum loss go.
	noQuorum := map[string][]time.Time{}
	for _, e := range evs {
		if e.what == "no quorum" {
			noQuorum[e.node] = append(noQuorum[e.node], e.at)
		}
	}
	minority := func(e logEvent) bool {
		for _, t := range noQuorum[logHost(e.line)] {
			if d := e.at.Sub(t); d > -time.Second && d < time.Second {
				return true
			}
		}
		return false
	}
	kept := evs[:0]
	for _, e := range evs {
		if e.what == "no quorum" || (e.what == "lost" && minority(e)) {
			continue
		}
		kept = append(kept, e)
	}
	evs = kept
	// The same event logged by several members (a loss, a fencing's
	// result) within a second is one, at its earliest: the members learn
	// of a fencing one after another, and the DC starts the resources as
	// soon as it does.
	last := map[string]time.Time{}
	out := evs[:0]
	for _, e := range evs {
		key := e.what + "|" + e.subject + "|" + e.rsc + "|" + e.node
		if t, ok := last[key]; ok && e.at.Sub(t) < time.Second {
			continue
		}
		last[key] = e.at
		out = append(out, e)
	}
	return out
}

// logHost is the member that logged line l (the field after the time).
func logHost(l string) string {
	if len(l) <= len(logTimeLayout)+1 {
		return ""
	}
	f := strings.Fields(l[len(logTimeLayout):])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// episodes follows each service through the events: where its daemon runs,
// and from a loss of that node or a stop of one of its resources to the
// next start of its daemon. Where it ran may be unknown (the log that said
// so is on the node that was lost): a start of its resources within
// failoverWindow of a node's loss, with no stop before, is then a failover
// from that node.
func episodes(site Site, evs []logEvent) []Episode {
	const failoverWindow = 2 * time.Minute
	var out []Episode
	for _, s := range site.Services {
		mine := func(rsc string) bool { return rsc == s.Name || strings.HasPrefix(rsc, s.Name+"-") }
		where := ""
		var cur *Episode
		var lost []logEvent // losses, and the fencing after them, not yet part of an episode
		add := func(e logEvent) {
			cur.Steps = append(cur.Steps, Step{At: e.at, What: e.what, Rsc: e.rsc, Node: e.node + e.subject, After: e.at.Sub(cur.Began).Seconds()})
		}
		for _, e := range evs {
			switch {
			case e.what == "lost":
				if cur == nil && e.subject == where {
					cur = &Episode{Service: s.Name, Kind: "failover", From: where, Began: e.at}
					add(e)
				} else if cur == nil {
					lost = append(lost, e)
				}
			case e.what == "fence asked" || e.what == "fenced":
				if cur != nil && e.subject == cur.From {
					add(e)
				} else if cur == nil {
					lost = append(lost, e)
				}
			case e.rsc != "" && mine(e.rsc):
				if cur == nil {
					switch {
					case e.what == "stop asked" || e.what == "stopped":
						if where != "" {
							cur = &Episode{Service: s.Name, Kind: "relocation", From: where, Began: e.at}
						}
					case e.what == "start asked" || e.what == "started":
						// Its node's loss, in a log that survived.
						for i := len(lost) - 1; i >= 0; i-- {
							l := lost[i]
							if l.what == "lost" && e.at.Sub(l.at) < failoverWindow && (where == "" || where == l.subject) && l.subject != e.node {
								cur = &Episode{Service: s.Name, Kind: "failover", From: l.subject, Began: l.at}
								for _, f := range lost[i:] {
									if f.subject == l.subject {
										add(f)
									}
								}
								break
							}
						}
					}
					lost = nil
				}
				if cur != nil {
					add(e)
				}
				if e.rsc == s.Daemon && (e.what == "started" || e.what == "start asked") {
					where = e.node
				}
				if e.what == "started" && e.rsc == s.Daemon && cur != nil {
					cur.To, cur.Serving = e.node, e.at
					cur.Seconds = e.at.Sub(cur.Began).Seconds()
					if cur.Kind == "relocation" && cur.From == cur.To {
						cur.Kind = "restart"
					}
					out = append(out, *cur)
					cur = nil
				}
			}
		}
		if cur != nil {
			out = append(out, *cur)
		}
	}
	slices.SortStableFunc(out, func(a, b Episode) int { return a.Began.Compare(b.Began) })
	return out
}
