# The first definition of node "a"; b.hcl defines it again.

node "a" {
  network = network.n
  address = "10.0.0.10"
}

site "t" {
  secret = env("T_SECRET")
}

network "n" {
  cidr = "10.0.0.0/24"
  zone = "n.test"
}
