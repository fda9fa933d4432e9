# Every name of a zone is unique; static records do not contradict the
# names mailfleet manages.
site "t" {
  secret = env("T_SECRET")
}

network "front" {
  cidr    = "192.168.1.0/24"
  gateway = "192.168.1.1"
  zone    = "front.test"
  record "mx" {
    address = "192.168.1.25"
  }
  record "mx" {
    address = "192.168.1.25" # WARNING: Redundant DNS record
  }
  record "a" {
    address = "192.168.1.99" # ERROR: Conflicting DNS name
  }
  record "b" {
    address = "192.168.1.11" # WARNING: Redundant DNS record
  }
  record "www" {
    address = "203.0.113.80" # WARNING: Record outside every network
  }
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

node "a" {
  network = network.front
  address = "192.168.1.10"
}

node "b" {
  network = network.front
  address = "192.168.1.11"
}

node "c" {
  network  = network.front
  address  = "192.168.1.12"
  hostname = "A" # ERROR: Duplicate FQDN
}

node "gw" { # ERROR: Duplicate FQDN
  network = network.back
  address = "10.0.0.2"
}

node "d" {
  network  = network.back
  address  = "10.0.0.3"
  hostname = "a"
}
