# Values that decode but are not allowed: unknown listeners, ports, TLS
# modes, relative certificate paths, list elements and map keys.
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
  service "imap" {
    vip      = "192.168.1.100"
    port     = 143
    backends = [node.fe1, node.fe2]
  }
}

directory "ldap" {
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = env("T_LDAP_ADMIN")
  service_dn       = "cn=mailfleet,dc=example,dc=com"
  service_password = env("T_LDAP_SERVICE")
  vip              = "10.0.0.100"
  tls_mode         = "tls" # ERROR: Invalid TLS mode
  tls {
    cert = "ldap.crt" # ERROR: Relative path
    key  = "/etc/ldap.key"
    ca   = "certs/ca.crt" # ERROR: Relative path
  }
  data  = storage.san.disk.sda.partition.ldap
  nodes = [node.be1, node.be2]
}

ldap_connector "main" {
  filter = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
}

frontend "fe" {
  nodes            = [node.fe1, node.fe2]
  domains          = ["example.com", null]                                   # ERROR: Invalid value
  trusted_networks = [network.front, "10.1.0.0/16", 10, "300.0.0.0/8", null] # ERROR: Invalid CIDR
  connector        = ldap_connector.main
  imap {
    port                  = 143
    authenticate_on_proxy = "yes" # ERROR: Incorrect attribute value type
  }
  smtp {
    port    = 25
    routing = 1 # ERROR: Incorrect attribute value type
  }
}

mail_instance "m1" {
  vip          = "10.0.0.101"
  storage      = storage.san.disk.sda.partition.store
  queue        = storage.san.disk.sda.partition.queue
  run          = storage.san.disk.sda.partition.run
  nodes        = [node.be1, node.be2]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000, ftp = 21, web = 70000 } # ERROR: Unknown listener # ERROR: Invalid port
  admin_secret = env("T_ADMIN")
}

provisioning {
  policy  = "domain"
  domains = { "example.com" = mail_instance.m1, 5 = mail_instance.m1 } # ERROR: Invalid domain
}

