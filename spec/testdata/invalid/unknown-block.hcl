# Unknown top-level blocks and arguments stop before the blocks are decoded.
site "t" {
  secret = env("T_SECRET")
}

cluster "c" { # ERROR: Unsupported block type
  name = "c"
}

loadbalancer "lb" { # ERROR: Unsupported block type
}

zone = "front.test" # ERROR: Unsupported argument

node { # ERROR: Missing name for node
  address = "192.168.1.10"
}
