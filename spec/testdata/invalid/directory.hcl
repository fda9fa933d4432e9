# The directory: a certificate for TLS, and a read-only service DN with its
# own password (T_SAME_A and T_SAME_B hold the same value).
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

fence "pdu" {
  kind     = "power"
  agent    = "fence_apc"
  address  = "10.0.0.250"
  password = env("T_FENCE")
  ports    = 8
}

node "be1" {
  network = network.back
  address = "10.0.0.11"
  fence {
    device = fence.pdu
    port   = 1
  }
}

node "be2" { # WARNING: Two-node cluster
  network = network.back
  address = "10.0.0.12"
  fence {
    device = fence.pdu
    port   = 2
  }
}

storage "san" {
  disk "sda" {
    partition "ldap" {
      device = "/dev/sda1"
    }
  }
}

directory "ldap" {
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = env("T_SAME_A")
  service_dn       = "cn=admin,dc=example,dc=com" # ERROR: Service DN is the admin DN
  service_password = env("T_SAME_B")              # ERROR: Service password is the admin password
  vip              = "10.0.0.100"
  tls_mode         = "ldaps" # ERROR: TLS without certificate
  data             = storage.san.disk.sda.partition.ldap
  nodes            = [node.be1, node.be2]
}
