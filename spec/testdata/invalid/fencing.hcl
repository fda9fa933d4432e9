# Fence devices: a fence_* agent, and one port of its own per node, within
# the device's ports.
site "t" {
  secret = env("T_SECRET")
}

network "front" {
  cidr    = "192.168.1.0/24"
  gateway = "192.168.1.1"
  zone    = "front.test"
}

network "back" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
  zone    = "back.test"
}

router "gw" {
  interface {
    network = network.front
    address = "192.168.1.1"
  }
  interface {
    network = network.back
    address = "10.0.0.1"
  }
  dns = true
}

fence "pdu" { # ERROR: Missing fence agent
  kind     = "power"
  address  = "10.0.0.250"
  password = env("T_FENCE")
  ports    = 2 # ERROR: Too many nodes on a fence device
}

fence "bmc" {
  kind     = "power"
  agent    = "ipmitool" # ERROR: Invalid fence agent
  address  = "10.0.0.251"
  password = env("T_FENCE")
  ports    = 1
}

node "a" {
  network = network.back
  address = "10.0.0.11"
  fence {
    device = fence.pdu
    port   = 1
  }
}

node "b" {
  network = network.back
  address = "10.0.0.12"
  fence {
    device = fence.pdu
    port   = 1 # ERROR: Fence port shared
  }
}

node "c" {
  network = network.back
  address = "10.0.0.13"
  fence {
    device = fence.pdu
    port   = 3 # ERROR: Fence port out of range
  }
}

node "d" {
  network = network.back
  address = "10.0.0.14"
  fence {
    device = fence.bmc
    port   = 1
  }
}
