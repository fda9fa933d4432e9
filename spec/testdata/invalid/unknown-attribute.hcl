site "t" {
  secret  = env("T_SECRET")
  cluster = "c" # ERROR: Unsupported argument
}

network "front" {
  cidr    = "192.168.1.0/24"
  zone    = "front.test"
  netmask = "255.255.255.0" # ERROR: Unsupported argument
  dns {                     # ERROR: Unsupported block type
  }
}

kernel "k" {
  file_max   = 100000
  overcommit = 1 # ERROR: Unsupported argument
}

node "a" {
  network = network.front
  address = "192.168.1.10"
  ip      = "192.168.1.10" # ERROR: Unsupported argument
  ssh {
    user     = "admin"
    password = "x" # ERROR: Unsupported argument
  }
  disk "sdb" { # ERROR: Unsupported block type
  }
}
