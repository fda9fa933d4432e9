package render

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/spec"
)

const storeLogDir = "/var/log/mailfleet"

// storeListenerKinds maps the topology's listener names to the store's. The
// reference's "web" (WebAdmin) has no counterpart: the store's one admin
// interface is its admin API, which the topology calls "admin" (the
// reference's CLI port).
var storeListenerKinds = map[string]string{
	"smtp":  "smtp",
	"lmtp":  "lmtp",
	"imap":  "imap",
	"pop3":  "pop3",
	"admin": "admin",
}

func storeConfigPath(inst *spec.Instance) string {
	return "/etc/mailfleet/store-" + inst.Name + ".json"
}

func storeAdminSecretPath(inst *spec.Instance) string {
	return daemonSecretDir + "/admin-" + inst.Name
}

// renderStore writes each instance's config, admin secret and LDAP bind
// password on every node that may run it: Pacemaker starts the instance on
// whichever node its location preferences and the failures allow, and the
// node must already have the files then.
//
// No file here has an action. Pacemaker owns the stores' lifecycle: a
// restart from apply would start an instance on a node that holds neither
// its partitions nor its VIP (or stop it under the cluster's feet). A
// changed config takes effect when the cluster next starts the instance
// (relocate or restart it with `mailfleet cluster`).
//
// Every node that may run an instance also gets the store's OCF agent
// (ocf:mailfleet:store), and the mailfleetd binary, whose change restarts
// each instance's store resource on the node where the cluster runs it.
func renderStore(b *builder) error {
	for _, inst := range b.t.Instances {
		cfg, err := storeConfig(b.t, inst)
		if err != nil {
			return fmt.Errorf("instance %s: %w", inst.Name, err)
		}
		content, err := cfgJSON(cfg)
		if err != nil {
			return fmt.Errorf("instance %s: %w", inst.Name, err)
		}
		admin := daemonSecretValue(inst.AdminSecret, b.keys.AdminSecret(inst.Name))
		for _, n := range inst.Nodes {
			if err := b.add(n.Name, &File{Path: storeConfigPath(inst), Mode: 0o644, Owner: "root", Group: "root",
				Content: content}); err != nil {
				return err
			}
			if err := b.add(n.Name, &File{Path: storeAdminSecretPath(inst), Mode: 0o640, Owner: "root", Group: daemonGroup,
				Content: []byte(admin), Sensitive: true}); err != nil {
				return err
			}
			if inst.Connector != nil {
				if err := addLDAPSecret(b, n.Name, inst.Connector, nil); err != nil {
					return fmt.Errorf("instance %s: %w", inst.Name, err)
				}
			}
			if err := addOCFAgents(b, n.Name, []*Action{restartStoreAction(inst)}, "mount", "vip", "store"); err != nil {
				return err
			}
			b.host(n.Name).addRole("backend")
		}
	}
	return nil
}

// restartStoreAction restarts instance inst's store resource, the last of
// its group (the partitions and the VIP stay), after the mailfleetd binary
// changed; like restartSlapdAction it acts only on the node where the
// cluster runs the resource, and does nothing elsewhere or while the cluster
// does not run (a first apply): the cluster starts the new binary then.
// crm_resource waits for the stop and the start (the store's stop and start
// timeouts together).
func restartStoreAction(inst *spec.Instance) *Action {
	rsc := storeResourceID(inst)
	return &Action{Name: "restart store " + inst.Name,
		Command: "if " + runsHere(rsc) + "; then " +
			`crm_resource --restart --resource ` + rsc + ` --timeout 180s; fi`,
		Order: OrderDaemon}
}

// storeResourceID names the store primitive of instance inst's group.
func storeResourceID(inst *spec.Instance) string { return inst.Name + "-store" }

func storeConfig(t *spec.Topology, inst *spec.Instance) (*config.Store, error) {
	if inst.Storage == nil || inst.Queue == nil || inst.Run == nil {
		return nil, fmt.Errorf("needs storage, queue and run partitions")
	}
	defaults := config.DefaultLimits()
	cfg := &config.Store{
		FormatVersion:   config.FormatVersion,
		Instance:        inst.Name,
		Hostname:        inst.FQDN(),
		Listeners:       map[string]string{},
		StoragePath:     inst.Storage.Mountpoint,
		QueuePath:       inst.Queue.Mountpoint,
		RunPath:         inst.Run.Mountpoint,
		LogDir:          storeLogDir,
		LogName:         inst.LogName,
		AdminSecretFile: storeAdminSecretPath(inst),
		Domains:         storeDomains(t, inst),
		TrustedNetworks: storeTrustedNetworks(t),
		Resolver:        cfgResolver(inst.Resolver),
		TLS:             cfgTLS(inst.TLS),
		Limits: config.Limits{
			// Every front-end session may be an account of this
			// instance. The clients are the front-ends, each carrying
			// many users, so there is no per-client cap.
			// The failed-login delay is the store's own default,
			// config.DefaultFailedLoginDelay, as everywhere.
			MaxConnections:  storeCapacity(t),
			PreAuthTimeout:  defaults.PreAuthTimeout,
			IdleTimeout:     defaults.IdleTimeout,
			MaxMessageBytes: config.DefaultMaxMessageBytes,
			MaxRecipients:   defaults.MaxRecipients,
		},
	}
	if cfg.LogName == "" {
		cfg.LogName = inst.Name
	}
	for name, port := range inst.Listeners {
		if kind, ok := storeListenerKinds[name]; ok {
			cfg.Listeners[kind] = netip.AddrPortFrom(inst.VIP, uint16(port)).String()
		}
	}
	if inst.Connector != nil {
		ldap, err := cfgLDAP(t, inst.Connector)
		if err != nil {
			return nil, err
		}
		cfg.LDAP = ldap
	} else {
		// Without a directory the accounts live with the instance, on
		// its run partition, and move with it.
		cfg.PasswdFile = inst.Run.Mountpoint + "/passwd"
	}
	return cfg, nil
}

// storeDomains are the domains inst serves: with the domain policy, the
// domains whose home it is; otherwise accounts of every domain are spread
// over the instances, and each serves them all.
func storeDomains(t *spec.Topology, inst *spec.Instance) []string {
	set := map[string]bool{}
	if p := t.Provisioning; p != nil && p.Policy == spec.PolicyDomain {
		for d, home := range p.Domains {
			if home == inst {
				set[d] = true
			}
		}
	} else {
		for _, fe := range t.Frontends {
			for _, d := range fe.Domains {
				set[d] = true
			}
		}
	}
	return storeSortedSet(set)
}

// storeTrustedNetworks are the front-end nodes' addresses: the stores
// take relayed mail and forwarded sessions from there.
func storeTrustedNetworks(t *spec.Topology) []string {
	// The exact addresses of the front-end nodes (inside the networks the
	// topology trusts for them), not whole networks: anything else on a
	// front-end's network may not hand mail to the stores as a front-end.
	set := map[string]bool{}
	for _, fe := range t.Frontends {
		for _, n := range fe.Nodes {
			for _, p := range fe.TrustedNetworks {
				if p.Contains(n.Address) {
					set[netip.PrefixFrom(n.Address, n.Address.BitLen()).String()] = true
					break
				}
			}
		}
	}
	out := storeSortedSet(set)
	if out == nil {
		out = []string{}
	}
	return out
}

// storeCapacity is the sessions of all front-end nodes together.
func storeCapacity(t *spec.Topology) int {
	total := 0
	for _, fe := range t.Frontends {
		total += frontendSessions(fe) * len(fe.Nodes)
	}
	if total == 0 {
		total = config.DefaultSessions
	}
	return total
}

func storeSortedSet(set map[string]bool) []string {
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
