package render

import (
	"encoding/xml"
	"strconv"

	"github.com/mailfleet/mailfleet/spec"
)

// The reference's RHCS cluster.conf, rendered beside Pacemaker's CIB for
// legacy sites (the whitepaper's own cluster manager).

type rhcsCluster struct {
	XMLName       xml.Name          `xml:"cluster"`
	Name          string            `xml:"name,attr"`
	ConfigVersion int               `xml:"config_version,attr"`
	CMan          *rhcsCMan         `xml:"cman,omitempty"`
	Totem         rhcsTotem         `xml:"totem"`
	Nodes         []rhcsNode        `xml:"clusternodes>clusternode"`
	FenceDevices  []rhcsFenceDevice `xml:"fencedevices>fencedevice"`
	RM            rhcsRM            `xml:"rm"`
}

type rhcsCMan struct {
	TwoNode       int `xml:"two_node,attr"`
	ExpectedVotes int `xml:"expected_votes,attr"`
}

type rhcsTotem struct {
	Token     int `xml:"token,attr"`
	Consensus int `xml:"consensus,attr"`
}

type rhcsNode struct {
	Name    string       `xml:"name,attr"`
	NodeID  int          `xml:"nodeid,attr"`
	Votes   int          `xml:"votes,attr"`
	Fence   *rhcsFence   `xml:"fence,omitempty"`
	Unfence *rhcsUnfence `xml:"unfence,omitempty"`
}

type rhcsFence struct {
	Methods []rhcsMethod `xml:"method"`
}

type rhcsUnfence struct {
	Devices []rhcsFenceRef `xml:"device"`
}

type rhcsMethod struct {
	Name    string         `xml:"name,attr"`
	Devices []rhcsFenceRef `xml:"device"`
}

type rhcsFenceRef struct {
	Name   string `xml:"name,attr"`
	Port   string `xml:"port,attr,omitempty"`
	Action string `xml:"action,attr,omitempty"`
}

type rhcsFenceDevice struct {
	Name   string `xml:"name,attr"`
	Agent  string `xml:"agent,attr"`
	IPAddr string `xml:"ipaddr,attr,omitempty"`
	Login  string `xml:"login,attr,omitempty"`
	Passwd string `xml:"passwd,attr,omitempty"`
}

type rhcsRM struct {
	Domains   []rhcsDomain  `xml:"failoverdomains>failoverdomain"`
	Resources []rhcsScript  `xml:"resources>script"`
	Services  []rhcsService `xml:"service"`
}

type rhcsDomain struct {
	Name       string           `xml:"name,attr"`
	Ordered    int              `xml:"ordered,attr"`
	Restricted int              `xml:"restricted,attr"`
	NoFailback int              `xml:"nofailback,attr"`
	Nodes      []rhcsDomainNode `xml:"failoverdomainnode"`
}

type rhcsDomainNode struct {
	Name     string `xml:"name,attr"`
	Priority int    `xml:"priority,attr"`
}

type rhcsScript struct {
	Name string `xml:"name,attr,omitempty"`
	File string `xml:"file,attr,omitempty"`
	Ref  string `xml:"ref,attr,omitempty"`
}

// rhcsService is a service of rgmanager, which starts its children by type:
// file systems, then the address, then the script, whatever their order.
type rhcsService struct {
	Name      string       `xml:"name,attr"`
	Domain    string       `xml:"domain,attr"`
	Autostart int          `xml:"autostart,attr"`
	Recovery  string       `xml:"recovery,attr"`
	FS        []rhcsFS     `xml:"fs"`
	IP        []rhcsIP     `xml:"ip"`
	Scripts   []rhcsScript `xml:"script"`
}

type rhcsFS struct {
	Name         string `xml:"name,attr"`
	Device       string `xml:"device,attr"`
	Mountpoint   string `xml:"mountpoint,attr"`
	FSType       string `xml:"fstype,attr"`
	Options      string `xml:"options,attr,omitempty"`
	ForceUnmount int    `xml:"force_unmount,attr"`
}

type rhcsIP struct {
	Address     string `xml:"address,attr"`
	MonitorLink int    `xml:"monitor_link,attr"`
}

// The shared script resources: the reference's "AXIGEN Script" is our store
// agent (rgmanager hands it the service name in OCF_RESKEY_service_name, as
// the reference relies on), and the directory runs Debian's slapd script.
const (
	rhcsStoreScript = "mailfleet-store"
	rhcsSlapdScript = "slapd"
)

func (c *rhcsCluster) stamped(version int) ([]byte, error) {
	d := *c
	d.ConfigVersion = version
	return clusterXMLDoc(&d)
}

// buildRHCS writes the topology as the reference's own cluster.conf, for
// sites that still run the Red Hat Cluster Suite. Node names are FQDNs, since
// cman finds the local node by resolving them. As in the CIB, services do
// not fail back on their own (nofailback).
func buildRHCS(t *spec.Topology, members []*spec.Node) *rhcsCluster {
	c := &rhcsCluster{Name: t.Site.Cluster, Totem: rhcsTotem{Token: totemToken, Consensus: totemConsensus}}
	if len(members) == 2 {
		c.CMan = &rhcsCMan{TwoNode: 1, ExpectedVotes: 1}
	}
	used := map[*spec.FenceDevice]bool{}
	for i, n := range members {
		node := rhcsNode{Name: n.FQDN(), NodeID: i + 1, Votes: 1}
		if f := n.Fence; f != nil && f.Device != nil {
			ref := rhcsFenceRef{Name: f.Device.Name, Port: strconv.Itoa(f.Port)}
			node.Fence = &rhcsFence{Methods: []rhcsMethod{{Name: "1", Devices: []rhcsFenceRef{ref}}}}
			if f.Device.Kind == spec.FenceIOBarrier {
				ref.Action = "on"
				node.Unfence = &rhcsUnfence{Devices: []rhcsFenceRef{ref}}
			}
			used[f.Device] = true
		}
		c.Nodes = append(c.Nodes, node)
	}
	for _, fd := range t.Fences {
		if !used[fd] {
			continue
		}
		dev := rhcsFenceDevice{Name: fd.Name, Agent: fd.Agent, Login: fd.Login}
		if fd.Address.IsValid() {
			dev.IPAddr = fd.Address.String()
		}
		if fenceHasPassword(fd) {
			dev.Passwd = clusterSecretValue(fd.Password)
		}
		c.FenceDevices = append(c.FenceDevices, dev)
	}

	domain := func(name string, nodes []*spec.Node) {
		d := rhcsDomain{Name: name, Ordered: 1, Restricted: 1, NoFailback: 1}
		for pos, n := range nodes {
			d.Nodes = append(d.Nodes, rhcsDomainNode{Name: n.FQDN(), Priority: pos + 1})
		}
		c.RM.Domains = append(c.RM.Domains, d)
	}
	fs := func(name string, p *spec.Partition, mountpoint string) rhcsFS {
		return rhcsFS{Name: name, Device: p.Device, Mountpoint: mountpoint, FSType: partitionFSType(p), Options: p.Options, ForceUnmount: 1}
	}
	if len(t.Instances) > 0 {
		c.RM.Resources = append(c.RM.Resources, rhcsScript{Name: rhcsStoreScript, File: storeAgentPath})
	}
	if t.Directory != nil {
		c.RM.Resources = append(c.RM.Resources, rhcsScript{Name: rhcsSlapdScript, File: "/etc/init.d/slapd"})
	}
	for _, i := range t.Instances {
		domain(i.Name, i.Nodes)
		svc := rhcsService{Name: i.Name, Domain: i.Name, Autostart: 1, Recovery: "relocate",
			IP:      []rhcsIP{{Address: i.VIP.String(), MonitorLink: 1}},
			Scripts: []rhcsScript{{Ref: rhcsStoreScript}}}
		for _, p := range instancePartitions(i) {
			svc.FS = append(svc.FS, fs(i.Name+"-"+p.role, p.p, p.p.Mountpoint))
		}
		c.RM.Services = append(c.RM.Services, svc)
	}
	if d := t.Directory; d != nil {
		domain(d.Name, d.Nodes)
		svc := rhcsService{Name: d.Name, Domain: d.Name, Autostart: 1, Recovery: "relocate",
			IP:      []rhcsIP{{Address: d.VIP.String(), MonitorLink: 1}},
			Scripts: []rhcsScript{{Ref: rhcsSlapdScript}}}
		if d.Data != nil {
			svc.FS = append(svc.FS, fs(d.Name+"-data", d.Data, ldapDataDir(d)))
		}
		c.RM.Services = append(c.RM.Services, svc)
	}
	return c
}
