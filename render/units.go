package render

import (
	"fmt"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/templates"
)

const (
	daemonUnitDir = "/etc/systemd/system"
	daemonBinary  = "/usr/local/bin/mailfleetd"
	// daemonBinaryName is the program of Binary entries at daemonBinary.
	daemonBinaryName = "mailfleetd"
	// daemonFDHeadroom covers what a daemon opens besides its sessions: listeners,
	// log files, the LDAP pool, the admin interface.
	daemonFDHeadroom = 1024
	// Descriptors per session: the balancer holds the client's and the
	// front-end's sockets; a front-end the client's, the store's and an LDAP
	// query's (reference 5.4.1); a store the socket, the message file and
	// the mailbox index.
	balancerFDsConn    = 2
	frontendFDsSession = 3
	storeFDsSession    = 3
	daemonNetBindCap   = "CAP_NET_BIND_SERVICE"
)

var reloadSystemdUnits = Action{Name: "daemon-reload", Command: "systemctl daemon-reload", Order: OrderDaemon - 1}

// unitView is one systemd service unit. Empty fields are left out.
type unitView struct {
	Comments     []string
	Description  string
	Wants        string
	After        string
	Type         string
	User         string
	Group        string
	ExecStart    string
	ExecReload   string
	Restart      string
	RestartSec   string
	LimitNOFILE  int
	Capabilities string
	LogsDir      string
	WantedBy     string // empty: no [Install] section, the unit cannot be enabled
}

// renderUnits writes the systemd units of the mailfleetd roles on the nodes
// that have them. The daemons run as mailfleet; binding the mail ports
// (below 1024) is the one privilege they keep.
func renderUnits(b *builder) error {
	balancerConns := map[*spec.Node]int{}
	for _, bl := range b.t.Balancers {
		for _, n := range bl.Nodes {
			balancerConns[n] += balancerCapacity(b, bl)
		}
	}
	frontendSess := map[*spec.Node]int{}
	for _, fe := range b.t.Frontends {
		for _, n := range fe.Nodes {
			frontendSess[n] += frontendSessions(fe)
		}
	}
	// Most nodes of a role have the same unit: each distinct one is rendered
	// once and its bytes shared between the nodes.
	units := map[string][]byte{}
	addUnit := func(n *spec.Node, name string, u *unitView) error { return addUnit(b, units, n, name, u) }
	// t.Nodes is sorted by name, which keeps the order of the work stable.
	for _, n := range b.t.Nodes {
		if conns, ok := balancerConns[n]; ok {
			u := daemonUnit("balancer", "mailfleet L4 balancer")
			u.Comments = []string{"Started and reloaded by mailfleet apply; SIGHUP drains the old listeners."}
			u.LimitNOFILE = conns*balancerFDsConn + daemonFDHeadroom
			if err := addUnit(n, "mailfleetd-balancer.service", u); err != nil {
				return err
			}
		}
		if sessions, ok := frontendSess[n]; ok {
			u := daemonUnit("frontend", "mailfleet front-end (IMAP and POP3 proxies, SMTP router)")
			u.LimitNOFILE = sessions*frontendFDsSession + daemonFDHeadroom
			if err := addUnit(n, "mailfleetd-frontend.service", u); err != nil {
				return err
			}
		}
	}
	return nil
}

func daemonUnit(role, description string) *unitView {
	return &unitView{
		Description:  description,
		Wants:        "network-online.target",
		After:        "network-online.target",
		Type:         "exec",
		User:         daemonUser,
		Group:        daemonGroup,
		ExecStart:    daemonBinary + " " + role + " -config /etc/mailfleet/" + role + ".json",
		ExecReload:   "/bin/kill -HUP $MAINPID",
		Restart:      "on-failure",
		RestartSec:   "1s",
		Capabilities: daemonNetBindCap,
		WantedBy:     "multi-user.target",
	}
}

// addUnit puts unit name, made from u, on n. rendered holds the units
// rendered so far, by their view in Go syntax (which tells any two views
// apart: the unit is a function of its view alone).
func addUnit(b *builder, rendered map[string][]byte, n *spec.Node, name string, u *unitView) error {
	key := fmt.Sprintf("%#v", *u)
	content, ok := rendered[key]
	if !ok {
		var err error
		if content, err = templates.Execute("mailfleetd.service.tmpl", u); err != nil {
			return err
		}
		rendered[key] = content
	}
	act := reloadSystemdUnits
	return b.add(n.Name, &File{Path: daemonUnitDir + "/" + name, Mode: 0o644, Owner: "root", Group: "root",
		Content: content, Actions: []*Action{&act}})
}
