# Addresses must be inside their network, usable and unique; networks must
# not overlap.
site "t" {
  secret = env("T_SECRET")
}

network "front" {
  cidr    = "192.168.1.0/24"
  gateway = "192.168.2.1" # ERROR: Address outside its network
  zone    = "front.test"
}

network "back" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
  zone    = "back.test"
}

network "storage" {
  cidr = "10.0.0.128/25" # ERROR: Overlapping networks
  zone = "storage.test"
}

router "gw" {
  interface {
    network = network.front
    address = "192.168.1.1"
  }
  interface {
    network = network.back
    address = "10.0.1.1" # ERROR: Address outside its network
  }
  dns = true
}

node "a" {
  network = network.front
  address = "10.0.0.10" # ERROR: Address outside its network
}

node "b" {
  network = network.back
  address = "10.0.0.0" # ERROR: Unusable address
}

node "c" {
  network = network.back
  address = "10.0.0.255" # ERROR: Unusable address
}

node "d" {
  network = network.back
  address = "10.0.0.20"
}

node "e" {
  network = network.back
  address = "10.0.0.20" # ERROR: Duplicate address
}

node "f" {
  network = network.front
  address = "192.168.1.1" # ERROR: Duplicate address
}

fence "pdu" {
  kind    = "power"
  agent   = "fence_apc"
  address = "10.0.0.20" # ERROR: Duplicate address
  ports   = 4
}
