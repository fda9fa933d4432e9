package spectest

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Generate writes a valid topology in the HCL language with about n nodes,
// in the proportions of the reference scenario: a balancer pair, two fifths
// of the nodes in the front-end tier, the rest in the backend tier with one
// mail instance per two backend nodes (the second is its failover), a
// two-node directory and a 24-port fence device per 24 backend nodes.
// Secrets come from env(); the caller's environment lookup decides whether
// they are known. It is used by the compile benchmarks and as fuzz seed.
func Generate(n int) string {
	if n < 8 {
		n = 8
	}
	front := n * 2 / 5
	back := n - front - 2
	if back%2 == 1 {
		back--
		front++
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	// Addresses: front-end tier 10.128.0.0/16, backend 10.64.0.0/16; VIPs in
	// the upper half of each.
	faddr := func(i int) string { return fmt.Sprintf("10.128.%d.%d", (i+10)/250, (i+10)%250+2) }
	baddr := func(i int) string { return fmt.Sprintf("10.64.%d.%d", (i+10)/250, (i+10)%250+2) }
	bvip := func(i int) string { return fmt.Sprintf("10.64.%d.%d", 128+(i/250), i%250+2) }

	b.WriteString(`site "gen" {
  secret = env("GEN_SITE_SECRET")
}

network "frontend" {
  cidr    = "10.128.0.0/16"
  gateway = "10.128.0.1"
  zone    = "front.gen"
}

network "backend" {
  cidr    = "10.64.0.0/16"
  gateway = "10.64.0.1"
  zone    = "back.gen"
}

router "gw" {
  interface {
    network = network.frontend
    address = "10.128.0.1"
  }
  interface {
    network = network.backend
    address = "10.64.0.1"
  }
  dns = true
}

kernel "tuned" {
  file_max            = 1000000
  ip_local_port_range = [1024, 65000]
  tcp_keepalive_time  = 600
}

`)
	w("node \"lb1\" {\n  network = network.frontend\n  address = \"10.128.200.10\"\n  kernel  = kernel.tuned\n}\n\n")
	w("node \"lb2\" {\n  network = network.frontend\n  address = \"10.128.200.11\"\n  kernel  = kernel.tuned\n}\n\n")
	var fronts []string
	for i := 0; i < front; i++ {
		name := fmt.Sprintf("fe%d", i)
		fronts = append(fronts, "node."+name)
		w("node %q {\n  network = network.frontend\n  address = %q\n  kernel  = kernel.tuned\n}\n\n", name, faddr(i))
	}
	fences := (back + 23) / 24
	for f := 0; f < fences; f++ {
		w("fence \"pdu%d\" {\n  kind     = \"power\"\n  agent    = \"fence_apc\"\n  address  = \"10.64.250.%d\"\n  login    = \"apc\"\n  password = env(\"GEN_FENCE_PASSWORD\")\n  ports    = 24\n}\n\n", f, f+1)
	}
	for i := 0; i < back; i++ {
		w("node \"be%d\" {\n  network = network.backend\n  address = %q\n  kernel  = kernel.tuned\n  fence {\n    device = fence.pdu%d\n    port   = %d\n  }\n}\n\n", i, baddr(i), i/24, i%24+1)
	}
	instances := back / 2
	w("storage \"san\" {\n  disk \"ldap\" {\n    partition \"data\" {\n      device = \"/dev/sda1\"\n    }\n  }\n")
	for i := 0; i < instances; i++ {
		w("  disk \"d%d\" {\n", i)
		for j, what := range []string{"storage", "queue", "run"} {
			w("    partition %q {\n      device = \"/dev/disk/i%d-%d\"\n    }\n", what, i, j+1)
		}
		w("  }\n")
	}
	w("}\n\n")
	list := "[" + strings.Join(fronts, ", ") + "]"
	w("balancer \"lb\" {\n  nodes = [node.lb1, node.lb2]\n  vrrp {\n    password = env(\"GEN_VRRP_PASSWORD\")\n  }\n")
	for i, svc := range []struct {
		name string
		port int
	}{{"smtp", 25}, {"pop3", 110}, {"imap", 143}} {
		w("  service %q {\n    vip      = \"10.128.201.%d\"\n    port     = %d\n    backends = %s\n  }\n", svc.name, i+1, svc.port, list)
	}
	w("}\n\n")
	b.WriteString(`directory "ldap" {
  base             = "dc=gen,dc=example"
  admin_dn         = "cn=admin,dc=gen,dc=example"
  admin_password   = env("GEN_LDAP_ADMIN")
  service_dn       = "cn=mailfleet,dc=gen,dc=example"
  service_password = env("GEN_LDAP_SERVICE")
  vip              = "10.64.127.1"
  data             = storage.san.disk.ldap.partition.data
  nodes            = [node.be0, node.be1]
}

ldap_connector "main" {
  filter            = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
  refuse_duplicates = true
}

`)
	w("frontend \"fe\" {\n  nodes            = %s\n  sessions         = 10000\n  domains          = [\"gen.example\"]\n  trusted_networks = [network.frontend]\n  connector        = ldap_connector.main\n", list)
	w("  imap {\n    port = 143\n  }\n  pop3 {\n    port = 110\n  }\n  smtp {\n    port = 25\n  }\n}\n\n")
	for i := 0; i < instances; i++ {
		w("mail_instance \"mail%d\" {\n  vip       = %q\n  storage   = storage.san.disk.d%d.partition.storage\n  queue     = storage.san.disk.d%d.partition.queue\n  run       = storage.san.disk.d%d.partition.run\n  nodes     = [node.be%d, node.be%d]\n  listeners = { smtp = 25, pop3 = 110, imap = 143, admin = 7000 }\n  admin_secret = env(\"GEN_ADMIN_SECRET\")\n}\n\n",
			i, bvip(i), i, i, i, 2*i, 2*i+1)
	}
	return string(hclwrite.Format([]byte(b.String())))
}

// GenerateEnv answers env() for Generate's secrets.
func GenerateEnv(name string) (string, bool) {
	if strings.HasPrefix(name, "GEN_") {
		if name == "GEN_VRRP_PASSWORD" {
			return "vrrp1234", true
		}
		return "secret-for-" + strings.ToLower(name), true
	}
	return "", false
}
