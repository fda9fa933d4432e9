# Load balancer tier: a VRRP pair, so the balancer is no single point of
# failure (section 5.3 leaves this to the integrator).
node "loadbalancer" {
  network = network.frontend
  address = "198.51.100.10"
  kernel  = kernel.tuned
}

node "loadbalancer2" {
  network = network.frontend
  address = "198.51.100.11"
  kernel  = kernel.tuned
}

# Front-end tier (section 5.4).
node "proxy1" {
  network = network.frontend
  address = "198.51.100.101"
  kernel  = kernel.tuned
}

node "proxy2" {
  network = network.frontend
  address = "198.51.100.102"
  kernel  = kernel.tuned
}

node "proxy3" {
  network = network.frontend
  address = "198.51.100.103"
  kernel  = kernel.tuned
}

# Backend tier (section 5.5.3), reached through the balancer as jump host.
node "ldapnode" {
  network = network.backend
  address = "10.0.0.100"
  kernel  = kernel.tuned
  ssh {
    jump = node.loadbalancer
  }
  fence {
    device = fence.apc1
    port   = 1
  }
}

node "axigenode1" {
  network = network.backend
  address = "10.0.0.11"
  kernel  = kernel.tuned
  ssh {
    jump = node.loadbalancer
  }
  fence {
    device = fence.apc1
    port   = 2
  }
}

node "axigenode2" {
  network = network.backend
  address = "10.0.0.12"
  kernel  = kernel.tuned
  ssh {
    jump = node.loadbalancer
  }
  fence {
    device = fence.apc1
    port   = 3
  }
}

# The hot standby of section 4.2.2, which takes over any backend service.
node "standby" {
  network = network.backend
  address = "10.0.0.13"
  kernel  = kernel.tuned
  standby = true
  ssh {
    jump = node.loadbalancer
  }
  fence {
    device = fence.apc1
    port   = 4
  }
}

# One remote power switch with a port per backend node (section 4.2.4).
fence "apc1" {
  kind     = "power"
  agent    = "fence_apc"
  address  = "10.0.0.250"
  login    = "apc"
  password = file("secrets/fence.password")
  ports    = 4
}
