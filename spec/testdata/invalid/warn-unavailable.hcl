# Values read from the environment or from files that are not there: each is
# a warning, so that CI can validate without secrets (build makes them
# errors). T_UNSET and the other T_UNSET_* variables are not set.
variable "vrrp_secret" { # WARNING: Value not available
  sensitive = true
}

locals {
  ldap_admin = env("T_UNSET_LDAP")
}
site "t" {
  secret = env("T_UNSET") # WARNING: Value not available
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

node "lb1" {
  network = network.front
  address = "192.168.1.2"
}

node "lb2" {
  network  = network.front
  address  = "192.168.1.3"
  hostname = env("T_UNSET_HOSTNAME") # WARNING: Value not available
}

node "fe1" {
  network = network.front
  address = "192.168.1.11"
}

node "fe2" {
  network = network.front
  address = "192.168.1.12"
}

fence "pdu" {
  kind     = "power"
  agent    = "fence_apc"
  address  = "10.0.0.250"
  password = file("secrets/no-such.password") # WARNING: Value not available
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
    partition "store" {
      device = "/dev/sda2"
    }
    partition "queue" {
      device = "/dev/sda3"
    }
    partition "run" {
      device = "/dev/sda4"
    }
  }
}

balancer "lb" {
  nodes = [node.lb1, node.lb2]
  vrrp {
    password = var.vrrp_secret # WARNING: Value not available # WARNING: VRRP password
  }
  service "imap" {
    vip      = "192.168.1.100"
    port     = 143
    backends = [node.fe1, node.fe2]
  }
}

directory "ldap" {
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = local.ldap_admin # WARNING: Value not available
  service_dn       = "cn=mailfleet,dc=example,dc=com"
  service_password = env("T_LDAP_SERVICE")
  vip              = "10.0.0.100"
  data             = storage.san.disk.sda.partition.ldap
  nodes            = [node.be1, node.be2]
}

ldap_connector "main" {
  filter = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
}

frontend "fe" {
  nodes     = [node.fe1, node.fe2]
  domains   = ["example.com"]
  connector = ldap_connector.main
  imap {
    port = 143
  }
}

mail_instance "m1" {
  vip          = "10.0.0.101"
  storage      = storage.san.disk.sda.partition.store
  queue        = storage.san.disk.sda.partition.queue
  run          = storage.san.disk.sda.partition.run
  nodes        = [node.be1, node.be2]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000 }
  admin_secret = "${env("T_UNSET_ADMIN")}" # WARNING: Value not available
}
