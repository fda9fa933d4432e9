# Blocks that may appear once, written twice, and nested names written
# twice. The second is reported and left out.
site "t" {
  secret = env("T_SECRET")
}

site "u" { # ERROR: Duplicate site block
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
  resolver {
    timeout = "2s"
  }
  resolver { # ERROR: Duplicate resolver block
    timeout = "3s"
  }
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
  ssh {
    user = "admin"
  }
  ssh { # ERROR: Duplicate ssh block
    user = "root"
  }
}

node "lb2" {
  network = network.front
  address = "192.168.1.3"
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
  fence { # ERROR: Duplicate fence block
    device = fence.pdu
    port   = 3
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
    partition "run" { # ERROR: Duplicate partition
      device = "/dev/sda5"
    }
  }
  disk "sda" { # ERROR: Duplicate disk
    partition "other" {
      device = "/dev/sda6"
    }
  }
}

balancer "lb" {
  nodes = [node.lb1, node.lb2]
  vrrp {
    router_id = 51
  }
  vrrp { # ERROR: Duplicate vrrp block
    router_id = 52
  }
  service "imap" {
    vip      = "192.168.1.100"
    port     = 143
    backends = [node.fe1, node.fe2]
    health_check {
      interval = "1s"
    }
    health_check { # ERROR: Duplicate health_check block
      interval = "2s"
    }
  }
}

directory "ldap" {
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = env("T_LDAP_ADMIN")
  service_dn       = "cn=mailfleet,dc=example,dc=com"
  service_password = env("T_LDAP_SERVICE")
  vip              = "10.0.0.100"
  data             = storage.san.disk.sda.partition.ldap
  nodes            = [node.be1, node.be2]
}

directory "ldap2" { # ERROR: Duplicate directory
  base             = "dc=example,dc=org"
  admin_dn         = "cn=admin,dc=example,dc=org"
  admin_password   = env("T_LDAP_ADMIN")
  service_dn       = "cn=mailfleet,dc=example,dc=org"
  service_password = env("T_LDAP_SERVICE")
  vip              = "10.0.0.110"
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
  imap { # ERROR: Duplicate imap block
    port = 993
  }
}

mail_instance "m1" {
  vip          = "10.0.0.101"
  storage      = storage.san.disk.sda.partition.store
  queue        = storage.san.disk.sda.partition.queue
  run          = storage.san.disk.sda.partition.run
  nodes        = [node.be1, node.be2]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000 }
  admin_secret = env("T_ADMIN")
  tls {
    cert = "/etc/ssl/mail.crt"
    key  = "/etc/ssl/mail.key"
  }
  tls { # ERROR: Duplicate tls block
    cert = "/etc/ssl/other.crt"
    key  = "/etc/ssl/other.key"
  }
}

provisioning {
  policy = "least_used"
}

provisioning { # ERROR: Duplicate provisioning block
  policy = "random"
}
