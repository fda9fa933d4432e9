# The reference scenario of the AXIGEN high-availability white paper,
# corrected: every inconsistency of the document as written is resolved (see
# examples/reference-as-written for the literal transcription), and the
# paper's public example range 140.0.0.0/24 is replaced by the documentation
# range 198.51.100.0/24. Secrets are read from ./secrets: throwaway values for
# this example only; a real site keeps them out of version control.

site "example" {
  secret       = file("secrets/site.key")
  cluster_name = "example"
}

network "frontend" {
  cidr    = "198.51.100.0/24"
  gateway = cidrhost("198.51.100.0/24", 1)
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
    address = "198.51.100.1"
  }
  interface {
    network = network.backend
    address = "10.0.0.1"
  }
  dns = true
}

# Kernel tuning of section 5.4.1, for front-end and backend nodes alike.
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
