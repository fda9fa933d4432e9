# Every kind of named block, each defined twice; the second definition is
# reported (with the first as related range), and decoding stops there.
site "t" {
  secret = env("T_SECRET")
}

site "t" { # ERROR: Duplicate site
  secret = env("T_SECRET")
}

network "n" {
  cidr = "10.0.0.0/24"
  zone = "n.test"
}

network "n" { # ERROR: Duplicate network
  cidr = "10.0.1.0/24"
  zone = "m.test"
}

router "r" {
}

router "r" { # ERROR: Duplicate router
}

kernel "k" {
}

kernel "k" { # ERROR: Duplicate kernel
}

node "a" {
  network = network.n
  address = "10.0.0.10"
}

node "a" { # ERROR: Duplicate node
  network = network.n
  address = "10.0.0.11"
}

fence "f" {
  kind    = "power"
  address = "10.0.0.250"
  ports   = 1
}

fence "f" { # ERROR: Duplicate fence
  kind    = "power"
  address = "10.0.0.251"
  ports   = 1
}

storage "s" {
}

storage "s" { # ERROR: Duplicate storage
}

balancer "b" {
  nodes = [node.a]
}

balancer "b" { # ERROR: Duplicate balancer
  nodes = [node.a]
}

directory "d" {
}

directory "d" { # ERROR: Duplicate directory
}

ldap_connector "c" {
  filter = "(uid=%e)"
}

ldap_connector "c" { # ERROR: Duplicate ldap_connector
  filter = "(uid=%e)"
}

frontend "f" {
}

frontend "f" { # ERROR: Duplicate frontend
}

mail_instance "m" {
}

mail_instance "m" { # ERROR: Duplicate mail_instance
}
