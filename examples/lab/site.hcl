# The reference scenario of the AXIGEN white paper, sized for one Linux
# machine: `mailfleet lab up examples/lab` builds every host below in its own
# network namespace, and `mailfleet lab apply examples/lab` deploys it over
# SSH exactly as on real hosts. Private address ranges only: the front-end
# network stands in for the paper's public 140.0.0.0/24. Secrets are
# throwaway values for this lab (see secrets/README.md).

site "lab" {
  secret       = file("secrets/site.key")
  cluster_name = "maillab"
}

network "frontend" {
  cidr    = "192.168.51.0/24"
  gateway = "192.168.51.1"
  zone    = "front-end.cluster"
}

network "backend" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
  zone    = "backend.cluster"
}

# The router joins the tiers and serves both zones (section 5.2).
router "router" {
  interface {
    network = network.frontend
    address = "192.168.51.1"
  }
  interface {
    network = network.backend
    address = "10.0.0.1"
  }
  dns = true
}

# Kernel tuning of section 5.4.1. In the lab only the per-namespace keys are
# applied; fs.file-max is machine-wide and skipped there.
kernel "tuned" {
  ip_forward          = false
  file_max            = 32786
  ip_local_port_range = [1024, 65000]
  tcp_keepalive_time  = 600
  tcp_max_syn_backlog = 4096
  somaxconn           = 4096
}

provisioning {
  policy = "least_used"
}
