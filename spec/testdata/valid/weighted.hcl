# A highly available site with a weighted balancer, the domain provisioning
# policy and the directory reached over LDAPS: no diagnostic at all.
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

node "fe3" {
  network = network.front
  address = "192.168.1.13"
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
    partition "store2" {
      device = "/dev/sda5"
    }
    partition "queue2" {
      device = "/dev/sda6"
    }
    partition "run2" {
      device = "/dev/sda7"
    }
  }
}

balancer "lb" {
  nodes          = [node.lb1, node.lb2]
  proxy_protocol = true
  vrrp {
    router_id = 7
    password  = env("T_VRRP") # WARNING: VRRP password
  }
  service "imap" {
    vip       = "192.168.1.100"
    port      = 143
    scheduler = "weighted_least_conn"
    backend {
      node   = node.fe1
      weight = 3
    }
    backend {
      node   = node.fe2
      weight = 2
    }
    backend {
      node = node.fe3
    }
    health_check {
      interval = "2s"
      timeout  = "500ms"
      rise     = 3
      fall     = 2
    }
  }
  service "smtp" {
    vip          = "192.168.1.100"
    port         = 25
    scheduler    = "round_robin"
    backend_port = 2525
    backends     = [node.fe1, node.fe2, node.fe3]
  }
}

directory "ldap" {
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = env("T_LDAP_ADMIN")
  service_dn       = "cn=mailfleet,dc=example,dc=com"
  service_password = env("T_LDAP_SERVICE")
  vip              = "10.0.0.100"
  tls_mode         = "ldaps"
  tls {
    cert = "/etc/ldap/tls/ldap.crt"
    key  = "/etc/ldap/tls/ldap.key"
  }
  data  = storage.san.disk.sda.partition.ldap
  nodes = [node.be1, node.be2]
}

ldap_connector "main" {
  filter            = "(&(|(mail=%e)(uid=%u))(objectClass=inetLocalMailRecipient))"
  refuse_duplicates = true
}

frontend "fe" {
  nodes            = [node.fe1, node.fe2, node.fe3]
  sessions         = 1000
  domains          = ["example.com", "example.org"]
  trusted_networks = [network.front, "10.0.0.0/24"]
  connector        = ldap_connector.main
  imap {
    port = 143
  }
  smtp {
    port    = 2525
    routing = true
    lmtp    = true
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
}

mail_instance "m2" {
  vip          = "10.0.0.102"
  storage      = storage.san.disk.sda.partition.store2
  queue        = storage.san.disk.sda.partition.queue2
  run          = storage.san.disk.sda.partition.run2
  nodes        = [node.be2, node.be1]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000, lmtp = 24 }
  admin_secret = env("T_ADMIN")
}

provisioning {
  policy = "domain"
  domains = {
    "example.com" = mail_instance.m1
    "example.org" = mail_instance.m2
  }
  default_quota = "2G"
  account_limit = 1000
}
