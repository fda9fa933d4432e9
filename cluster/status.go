package cluster

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status is the cluster as its members see it now.
type Status struct {
	AskedOn  string          `json:"asked_on"` // the member that answered
	DC       string          `json:"dc"`
	Quorum   bool            `json:"quorum"`
	Nodes    []NodeStatus    `json:"nodes"`
	Services []ServiceStatus `json:"services"`
	Fencing  []FenceEvent    `json:"fencing"` // newest first
}

// NodeStatus is one member: online, standby, offline or fenced (offline,
// and the last fencing of it succeeded).
type NodeStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	DC    bool   `json:"dc,omitempty"`
}

// ServiceStatus is an instance or the directory: where it runs and since
// when (its daemon's last start there), its node list.
type ServiceStatus struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	State    string    `json:"state"` // started, stopped, disabled, failed
	Node     string    `json:"node,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Failover []string  `json:"failover"` // the node list, preferred first
}

// FenceEvent is one fencing operation from the cluster's history.
type FenceEvent struct {
	Target    string    `json:"target"`
	Action    string    `json:"action"`
	Status    string    `json:"status"`
	Completed time.Time `json:"completed,omitzero"`
}

func (st *Status) service(name string) ServiceStatus {
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	return ServiceStatus{}
}

// crmMon is what Status reads of `crm_mon --output-as=xml`.
type crmMon struct {
	DC struct {
		Name   string `xml:"name,attr"`
		Quorum string `xml:"with_quorum,attr"`
	} `xml:"summary>current_dc"`
	Nodes []struct {
		Name    string `xml:"name,attr"`
		Online  string `xml:"online,attr"`
		Standby string `xml:"standby,attr"`
		DC      string `xml:"is_dc,attr"`
	} `xml:"nodes>node"`
	Groups []struct {
		ID        string        `xml:"id,attr"`
		Disabled  string        `xml:"disabled,attr"`
		Resources []crmResource `xml:"resource"`
	} `xml:"resources>group"`
	History []struct {
		Name      string `xml:"name,attr"`
		Resources []struct {
			ID  string `xml:"id,attr"`
			Ops []struct {
				Task   string `xml:"task,attr"`
				RC     string `xml:"rc,attr"`
				Change string `xml:"last-rc-change,attr"`
			} `xml:"operation_history"`
		} `xml:"resource_history"`
	} `xml:"node_history>node"`
	Fencing []struct {
		Target    string `xml:"target,attr"`
		Action    string `xml:"action,attr"`
		Status    string `xml:"status,attr"`
		Completed string `xml:"completed,attr"`
	} `xml:"fence_history>fence_event"`
}

type crmResource struct {
	ID     string `xml:"id,attr"`
	Role   string `xml:"role,attr"`
	Active string `xml:"active,attr"`
	Failed string `xml:"failed,attr"`
	Nodes  []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

// crmTime parses crm_mon's times: "Mon Dec  7 21:41:09 2026" (operation
// history) and "2026-12-07 21:41:09Z" or with an offset (fencing history).
func crmTime(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"Mon Jan _2 15:04:05 2006", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05Z", "2006-01-02 15:04:05 -07:00"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t
		}
	}
	return time.Time{}
}

// Status asks a member for the cluster's state.
func (o *Ops) Status(ctx context.Context) (*Status, error) {
	out, node, err := o.onAny(ctx, nil, "crm_mon", "-1", "--output-as=xml", "--include=all", "--fence-history=2")
	if err != nil {
		return nil, err
	}
	st, err := parseStatus(out, o.Site)
	if err != nil {
		return nil, fmt.Errorf("crm_mon on %s: %w", node, err)
	}
	st.AskedOn = node
	// The fencing history is each member's own: one that was itself just
	// fenced and is back knows little of it. The DC has lived through
	// it; ask it when another member answered first.
	if st.DC != "" && st.DC != node && slices.Contains(o.Site.Members, st.DC) {
		if out, err := o.Run.Run(ctx, st.DC, "crm_mon", "-1", "--output-as=xml", "--include=all", "--fence-history=2"); err == nil {
			if dc, err := parseStatus(out, o.Site); err == nil {
				dc.AskedOn = st.DC
				return dc, nil
			}
		}
	}
	return st, nil
}

func parseStatus(out []byte, site Site) (*Status, error) {
	var m crmMon
	if err := xml.Unmarshal(out, &m); err != nil {
		return nil, err
	}
	st := &Status{DC: m.DC.Name, Quorum: m.DC.Quorum == "true", Nodes: []NodeStatus{}, Services: []ServiceStatus{}, Fencing: []FenceEvent{}}
	for _, f := range m.Fencing {
		st.Fencing = append(st.Fencing, FenceEvent{Target: f.Target, Action: f.Action, Status: f.Status, Completed: crmTime(f.Completed)})
	}
	slices.SortStableFunc(st.Fencing, func(a, b FenceEvent) int { return b.Completed.Compare(a.Completed) })
	for _, name := range site.Members {
		ns := NodeStatus{Name: name, State: "offline"}
		for _, n := range m.Nodes {
			if n.Name != name {
				continue
			}
			ns.DC = n.DC == "true"
			switch {
			case n.Online == "true" && n.Standby == "true":
				ns.State = "standby"
			case n.Online == "true":
				ns.State = "online"
			}
		}
		if ns.State == "offline" {
			for _, f := range st.Fencing {
				if f.Target == name {
					if f.Status == "success" {
						ns.State = "fenced"
					}
					break
				}
			}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	for _, s := range site.Services {
		ss := ServiceStatus{Name: s.Name, Kind: s.Kind, State: "stopped", Failover: slices.Clone(s.Nodes)}
		for _, g := range m.Groups {
			if g.ID != s.Name {
				continue
			}
			for _, r := range g.Resources {
				if r.ID != s.Daemon {
					continue
				}
				switch {
				case r.Failed == "true":
					ss.State = "failed"
				case r.Active == "true" && r.Role == "Started":
					ss.State = "started"
				case g.Disabled == "true":
					ss.State = "disabled"
				}
				if len(r.Nodes) > 0 {
					ss.Node = r.Nodes[0].Name
				}
			}
		}
		if ss.Node != "" {
			ss.Since = lastStart(&m, ss.Node, s.Daemon)
		}
		st.Services = append(st.Services, ss)
	}
	return st, nil
}

// lastStart is when rsc last started on node, by the operation history.
func lastStart(m *crmMon, node, rsc string) time.Time {
	var t time.Time
	for _, n := range m.History {
		if n.Name != node {
			continue
		}
		for _, r := range n.Resources {
			if r.ID != rsc {
				continue
			}
			for _, op := range r.Ops {
				if op.Task == "start" && op.RC == "0" {
					if c := crmTime(op.Change); c.After(t) {
						t = c
					}
				}
			}
		}
	}
	return t
}
