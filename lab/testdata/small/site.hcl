# A small lab for lab's tests: two networks joined by a router, three nodes,
# one power switch. Addresses from the documentation and private ranges.
site "labtest" {
  secret       = file("secrets/site.key")
  cluster_name = "labtest"
}

network "front" {
  cidr    = "192.0.2.0/24"
  gateway = "192.0.2.1"
  zone    = "front.labtest"
}

network "back" {
  cidr    = "10.77.0.0/24"
  gateway = "10.77.0.1"
  zone    = "back.labtest"
}

router "gw" {
  interface {
    network = network.front
    address = "192.0.2.1"
  }
  interface {
    network = network.back
    address = "10.77.0.1"
  }
}

node "web" {
  network = network.front
  address = "192.0.2.10"
}

node "db1" {
  network = network.back
  address = "10.77.0.11"
  fence {
    device = fence.pdu
    port   = 1
  }
}

node "db2" {
  network = network.back
  address = "10.77.0.12"
  fence {
    device = fence.pdu
    port   = 2
  }
}

fence "pdu" {
  kind     = "power"
  agent    = "fence_mailfleet_lab"
  address  = "10.77.0.250"
  login    = "lab"
  password = file("secrets/fence.password")
  ports    = 2
}
