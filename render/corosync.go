package render

import (
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/templates"
)

// corosync.conf: the ring of the backend cluster (the members, the totem
// timings chosen from measurement, quorum).

type corosyncView struct {
	Cluster                            string
	Token, TokenCoefficient, Consensus int
	KeyFile, LogFile                   string
	Nodes                              []corosyncNodeView
	TwoNode                            bool
}

type corosyncNodeView struct {
	Name, Address string
	ID            int
}

func corosyncConf(t *spec.Topology, members []*spec.Node) ([]byte, error) {
	v := corosyncView{Cluster: t.Site.Cluster, Token: totemToken, TokenCoefficient: totemTokenCoefficient,
		Consensus: totemConsensus, KeyFile: corosyncKeyPath, LogFile: corosyncLogPath, TwoNode: len(members) == 2}
	for i, n := range members {
		v.Nodes = append(v.Nodes, corosyncNodeView{Name: n.Name, Address: n.Address.String(), ID: i + 1})
	}
	return templates.Execute("corosync.conf.tmpl", v)
}

// --- the Pacemaker CIB ---
