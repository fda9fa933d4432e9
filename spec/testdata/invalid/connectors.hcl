# LDAP connectors bind as the read-only service DN at the directory's VIP,
# search under its base, and look accounts up with a filter that parses,
# has a placeholder and names attributes and classes of the loaded schemas.
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
  data             = storage.san.disk.sda.partition.ldap
  nodes            = [node.be1, node.be2]
}

ldap_connector "main" {
  filter = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
}

ldap_connector "as-admin" {
  bind_dn = "cn=admin,dc=example,dc=com" # ERROR: Connector binds as the directory admin
  filter  = "(uid=%e)"
}

ldap_connector "at-node" {
  url    = "ldap://10.0.0.11:389" # ERROR: Connector points at a node, not the directory VIP
  filter = "(uid=%e)"
}

ldap_connector "at-other" {
  url    = "ldaps://10.0.0.200" # ERROR: Connector URL does not match the directory
  filter = "(uid=%e)"
}

ldap_connector "http" {
  url    = "http://10.0.0.100/" # ERROR: Invalid LDAP URL
  filter = "(uid=%e)"
}

ldap_connector "elsewhere" {
  base   = "ou=people,dc=example,dc=org" # ERROR: Search base outside the directory
  filter = "(uid=%e)"
}

ldap_connector "reader" {
  bind_dn = "cn=reader,dc=example,dc=com" # ERROR: Missing bind password
  filter  = "(uid=%e)"
}

ldap_connector "bad-dns" {
  bind_dn       = "reader" # ERROR: Invalid LDAP DN
  bind_password = env("T_BIND")
  base          = "ou=people,mailGroup=x,dc=example,dc=com" # ERROR: Invalid LDAP DN
  filter        = "(uid=%e)"
}

ldap_connector "static" {
  filter = "(objectClass=inetLocalMailRecipient)" # ERROR: Filter without placeholder
}

ldap_connector "attribute" {
  filter = "(&(mailAddress=%e)(objectClass=inetLocalMailRecipient))" # ERROR: Invalid LDAP filter
}

ldap_connector "class" {
  filter = "(&(uid=%e)(objectClass=mailRecipient))" # ERROR: Invalid LDAP filter
}

ldap_connector "placeholder" {
  filter = "(&(uid=%e)(mail=%x))" # ERROR: Invalid LDAP filter
}

ldap_connector "unparsable" {
  filter = "(&(uid=%e)" # ERROR: Invalid LDAP filter
}

ldap_connector "host" {
  filter         = "(uid=%e)"
  host_attribute = "mailServer" # ERROR: Unknown LDAP attribute
}

ldap_connector "nofilter" { # ERROR: Missing required argument
  host_attribute = "mailHost"
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
  admin_secret = env("T_ADMIN")
  connector    = ldap_connector.main
}
