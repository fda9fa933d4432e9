# Addresses and prefixes that do not parse. The faulty values are left out.
site "t" {
  secret = env("T_SECRET")
}

network "a" {
  cidr = "10.1.0.0/33" # ERROR: Invalid CIDR
  zone = "a.test"
}

network "b" {
  cidr = "10.2.0.5/24" # ERROR: Invalid CIDR
  zone = "b.test"
}

network "c" {
  cidr = "ten/8" # ERROR: Invalid CIDR
  zone = "c.test"
}

network "back" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.256" # ERROR: Invalid IP address
  zone    = "back.test"
  record "printer" {
    address = "printer.back.test" # ERROR: Invalid IP address
  }
}

node "a" {
  network = network.back
  address = "10.0.0.300" # ERROR: Invalid IP address
}

node "b" {
  network = network.back
  address = "fe80::1%eth0" # ERROR: Invalid IP address
}

node "c" {
  network = network.back
  address = 10 # ERROR: Invalid IP address
}

fence "pdu" {
  kind    = "power"
  agent   = "fence_apc"
  address = "pdu.back.test" # ERROR: Invalid IP address
  ports   = 4
}
