# Required arguments left out. Each is reported where its block opens; the
# block is kept without it.
site "t" { # ERROR: Missing required argument
  cluster_name = "t"
}

network "front" {
  cidr    = "192.168.1.0/24"
  gateway = "192.168.1.1"
  zone    = "front.test"
  record "mx" { # ERROR: Missing required argument
  }
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
  interface { # ERROR: Missing required argument
    address = "172.16.0.1"
  }
  dns = true
}

node "lb1" {
  network = network.front
  address = "192.168.1.2"
}

node "lb2" {
  network = network.front
  address = "192.168.1.3"
}

node "fe1" {
  network = network.front
  address = "192.168.1.11"
}

node "spare" { # ERROR: Missing node address
  network = network.back
}

node "nowhere" { # ERROR: Missing required argument
  address = "10.0.0.99"
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
  fence { # ERROR: Missing required argument
    device = fence.pdu
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
    partition "run" { # ERROR: Missing required argument
      fstype = "xfs"
    }
  }
}

balancer "lb" {
  nodes = [node.lb1, node.lb2]
  service "imap" {
    vip      = "192.168.1.100"
    port     = 143
    backends = [node.fe1, node.fe2]
    backend { # ERROR: Missing required argument
      port = 1143
    }
  }
  service "smtp" { # ERROR: Missing required argument
    backends = [node.fe1, node.fe2]
  }
}

directory "ldap" { # ERROR: Missing required argument
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = env("T_LDAP_ADMIN")
  service_dn       = "cn=mailfleet,dc=example,dc=com"
  service_password = env("T_LDAP_SERVICE")
  vip              = "10.0.0.100"
  tls_mode         = "starttls"
  tls { # ERROR: Missing required argument
    cert = "/etc/ssl/ldap.crt"
  }
  data = storage.san.disk.sda.partition.ldap
}

ldap_connector "main" {
  filter = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
}

frontend "fe" { # ERROR: Missing required argument
  nodes     = [node.fe1, node.fe2]
  connector = ldap_connector.main
  imap {
    port = 143
  }
  pop3 { # ERROR: Missing required argument
  }
}

mail_instance "m1" { # ERROR: Missing required argument
  vip          = "10.0.0.101"
  storage      = storage.san.disk.sda.partition.store
  queue        = storage.san.disk.sda.partition.queue
  run          = storage.san.disk.sda.partition.run
  nodes        = [node.be1, node.be2]
  admin_secret = env("T_ADMIN")
}

fence "pdu2" { # ERROR: Missing required argument
  agent   = "fence_apc"
  address = "10.0.0.251"
  ports   = 4
}

balancer "lb2" { # ERROR: Missing required argument
}
