# Functions: unknown ones, failing calls, and file() reading relative to the
# topology's directory (secrets/fence.password is there, the rest is not).
site "t" {
  secret = file("secrets/site.key")
}

network "back" {
  cidr    = cidrsubnet("10.0.0.0/16", 8, 0)
  gateway = cidrhost("10.0.0.0/24", 300) # ERROR: Error in function call
  zone    = lower(nslookup("back.test")) # ERROR: Call to unknown function
}

node "a" {
  network  = network.back
  address  = cidrhost(network.back.cidr, 10)
  hostname = file("secrets/binary.bin") # ERROR: Error in function call
}

node "b" {
  network  = network.back
  address  = cidrhost(network.back.cidr, 11)
  hostname = env("T_SECRET", "default") # ERROR: Too many function arguments
}

fence "pdu" {
  kind     = "power"
  agent    = "fence_apc"
  address  = cidrhost(network.back.cidr, 250)
  login    = "apc"
  password = file("secrets/fence.password")
  ports    = 4
}
