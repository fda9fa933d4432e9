# Values of the wrong type or out of range. The faulty attributes are left
# out of the topology; nothing else is reported.
site "t" {
  secret       = env("T_SECRET")
  cluster_name = ["t"] # ERROR: Incorrect attribute value type
}

network "back" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
  zone    = "back.test"
  public  = "maybe" # ERROR: Incorrect attribute value type
  resolver {
    retries = 11 # ERROR: Number out of range
    nameserver {
      address  = "10.0.0.1"
      priority = "high" # ERROR: Incorrect attribute value type
    }
  }
}

router "gw" {
  interface {
    network = network.back
    address = "10.0.0.1"
  }
  dns = true
}

kernel "k1" {
  file_max            = "lots"               # ERROR: Incorrect attribute value type
  somaxconn           = 1.5                  # ERROR: Invalid number
  tcp_keepalive_time  = -1                   # ERROR: Number out of range
  ip_local_port_range = [1024]               # ERROR: Invalid port range
  sysctl              = ["vm.swappiness=10"] # ERROR: Incorrect attribute value type
}

kernel "k2" {
  ip_forward          = "sometimes"  # ERROR: Incorrect attribute value type
  ip_local_port_range = [2000, 1000] # ERROR: Invalid port range
}

kernel "k3" {
  ip_local_port_range = [0, 70000] # ERROR: Invalid port range
  tcp_max_syn_backlog = 1e30       # ERROR: Number out of range
}

node "a" {
  network  = network.back
  address  = "10.0.0.10"
  hostname = ["a"] # ERROR: Incorrect attribute value type
  kernel   = kernel.k1
  standby  = "maybe" # ERROR: Incorrect attribute value type
  ssh {
    port = 70000 # ERROR: Number out of range
  }
}

node "b" {
  network = network.back
  address = "10.0.0.11"
  kernel  = kernel.k2
  ssh {
    port = 0 # ERROR: Number out of range
  }
}

fence "pdu" {
  kind    = "ipmi" # ERROR: Invalid fence kind
  agent   = "fence_ipmilan"
  address = "10.0.0.250"
  ports   = 0 # ERROR: Number out of range
}

provisioning {
  policy        = "least_used"
  default_quota = "lots" # ERROR: Invalid size
  account_limit = -1     # ERROR: Number out of range
}

vagrant {
  memory = 1 # ERROR: Number out of range
}
