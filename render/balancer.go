package render

import (
	"fmt"
	"net/netip"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/spec"
)

const (
	balancerConfigPath = "/etc/mailfleet/balancer.json"
)

// reloadBalancer: SIGHUP makes the balancer take the new config and drain
// the old listeners' connections instead of cutting them; reload-or-restart
// also starts it on the first apply.
var reloadBalancer = Action{Name: "reload mailfleetd-balancer",
	Command: "systemctl enable --quiet mailfleetd-balancer && systemctl reload-or-restart mailfleetd-balancer", Order: OrderDaemon}

// restartBalancer runs a new mailfleetd binary: a reload would keep the old
// program. It cuts the balancer's connections (no drain); the clients
// reconnect.
var restartBalancer = Action{Name: "restart mailfleetd-balancer",
	Command: "systemctl enable --quiet mailfleetd-balancer && systemctl restart mailfleetd-balancer", Order: OrderDaemon}

// renderBalancer writes the config of the L4 balancer on every balancer node.
// Both nodes of a pair get the same services: the backup listens on the VIPs
// too, so that it serves the moment keepalived moves them.
func renderBalancer(b *builder) error {
	for _, bl := range b.t.Balancers {
		for _, n := range bl.Nodes {
			cfg := balancerConfig(b, bl, n)
			content, err := cfgJSON(cfg)
			if err != nil {
				return fmt.Errorf("balancer %s on %s: %w", bl.Name, n.Name, err)
			}
			act := reloadBalancer
			if err := b.add(n.Name, &File{Path: balancerConfigPath, Mode: 0o644, Owner: "root", Group: "root",
				Content: content, Actions: []*Action{&act}}); err != nil {
				return err
			}
			restart := restartBalancer
			if err := b.addBinary(n.Name, daemonBinary, daemonBinaryName, 0o755, &restart); err != nil {
				return err
			}
			h := b.host(n.Name)
			h.addRole("balancer")
			if len(bl.Nodes) > 1 {
				h.addPackages("keepalived")
			}
		}
	}
	return nil
}

func balancerConfig(b *builder, bl *spec.Balancer, n *spec.Node) *config.Balancer {
	cfg := &config.Balancer{
		FormatVersion: config.FormatVersion,
		Node:          n.Name,
		Admin:         netip.AddrPortFrom(n.Address, config.BalancerAdminPort).String(),
		Services:      []config.BalancedService{},
		Limits: config.Limits{
			MaxConnections: balancerCapacity(b, bl),
			// The balancer is the one place that sees the client's
			// address when the PROXY protocol is off.
			MaxPerClient: config.DefaultMaxPerClient,
			IdleTimeout:  config.DefaultLimits().IdleTimeout,
		},
	}
	for _, s := range bl.Services {
		cs := config.BalancedService{
			Name:          s.Name,
			Protocol:      s.Protocol,
			Listen:        netip.AddrPortFrom(s.VIP, uint16(s.Port)).String(),
			Scheduler:     string(s.Scheduler),
			ProxyProtocol: bl.ProxyProtocol,
			Backends:      []config.Backend{},
			Health: config.HealthConfig{
				Interval: config.Duration(s.Health.Interval),
				Timeout:  config.Duration(s.Health.Timeout),
				Rise:     s.Health.Rise,
				Fall:     s.Health.Fall,
			},
		}
		for _, rs := range s.Backends {
			cs.Backends = append(cs.Backends, config.Backend{Name: rs.Node.Name,
				Address: netip.AddrPortFrom(rs.Node.Address, uint16(rs.Port)).String(), Weight: rs.Weight})
		}
		cfg.Services = append(cfg.Services, cs)
	}
	return cfg
}

// balancerCapacity is how many sessions the front-end nodes behind bl carry
// together; the balancer takes no more.
func balancerCapacity(b *builder, bl *spec.Balancer) int {
	seen := map[*spec.Node]bool{}
	total := 0
	for _, s := range bl.Services {
		for _, rs := range s.Backends {
			if seen[rs.Node] {
				continue
			}
			seen[rs.Node] = true
			sessions := config.DefaultSessions
			if fe := b.frontendOfNode(rs.Node); fe != nil {
				sessions = frontendSessions(fe)
			}
			total += sessions
		}
	}
	return total
}

// frontendOfNode is the first front-end that lists n, or nil.
func (b *builder) frontendOfNode(n *spec.Node) *spec.Frontend {
	if b.frontendOf == nil {
		b.frontendOf = map[*spec.Node]*spec.Frontend{}
		for _, fe := range b.t.Frontends {
			for _, m := range fe.Nodes {
				if b.frontendOf[m] == nil {
					b.frontendOf[m] = fe
				}
			}
		}
	}
	return b.frontendOf[n]
}
