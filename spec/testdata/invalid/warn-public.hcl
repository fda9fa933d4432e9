# Public addresses are allowed, but only where the network says so.
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

network "ext" {
  cidr = "140.0.0.0/24" # WARNING: Public address range
  zone = "ext.test"
}

network "dmz" {
  cidr   = "140.0.1.0/24"
  zone   = "dmz.test"
  public = true
}

node "a" {
  network = network.ext
  address = "140.0.0.10" # WARNING: Public address
}

node "b" {
  network = network.dmz
  address = "140.0.1.10"
}
