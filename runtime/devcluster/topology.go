package devcluster

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"text/template"
	"unicode"
)

//go:embed topology.hcl.tmpl
var topologyTmpl string

var topologyTemplate = template.Must(template.New("topology.hcl").Option("missingkey=error").
	Funcs(template.FuncMap{"q": hclQuote}).Parse(topologyTmpl))

// TopologyFile is the name of the file written in DIR/topology.
const TopologyFile = "cluster.hcl"

type topologyView struct {
	TopologyDir, SecretsDir                     string
	SiteKeyName, LDAPAdminName, LDAPServiceName string
	CIDR, Zone, Domain                          string
	Sessions                                    int
	Balancer                                    balancerView
	Frontends                                   []nodeView
	FrontendPorts                               map[string]int // imap, pop3, smtp
	Directory                                   directoryView
	Instances                                   []instanceView
}

type nodeView struct{ Name, Address string }

type balancerView struct {
	Name, Address, VIP, Scheduler string
	Interval, Timeout             string
	Rise, Fall                    int
	Services                      []serviceView
}

type serviceView struct {
	Name string
	Port int
}

type directoryView struct {
	Node                             nodeView
	VIP                              string
	Port                             int
	Base, AdminDN, ServiceDN, Filter string
	HostAttribute, DataDir, ConfPath string
}

type instanceView struct {
	Name, Hostname, VIP, AdminSecretName string
	Node                                 nodeView
	Partitions                           []partitionView
	Listeners                            []listenerView
}

type partitionView struct{ Purpose, Path string }

type listenerView struct {
	Kind string
	Port int
}

// renderTopology is the topology of the cluster in the language of
// `mailfleet validate`.
func renderTopology(v *topologyView) ([]byte, error) {
	var buf bytes.Buffer
	if err := topologyTemplate.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return buf.Bytes(), nil
}

// hclQuote is s as an HCL quoted string: backslash escapes for quotes,
// backslashes and control characters, and template sequences ("${", "%{")
// doubled so that they stand for themselves.
func hclQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case (r == '$' || r == '%') && strings.HasPrefix(s[i+1:], "{"):
			b.WriteRune(r)
			b.WriteRune(r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
