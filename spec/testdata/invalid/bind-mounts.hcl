# Bind mounts: fstype "none" needs options with bind (or rbind) and an
# absolute device; options are mount -o options, without spaces or quotes;
# any other fstype still needs a device under /dev.
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

node "lb" {
  network = network.front
  address = "192.168.1.2"
}

node "fe" {
  network = network.front
  address = "192.168.1.11"
}

node "be" { # WARNING: Node without fencing
  network = network.back
  address = "10.0.0.11"
}

storage "san" {
  disk "sda" {
    partition "ldap" {
      device = "/srv/san/ldap"
      fstype = "none" # ERROR: Bind mount without bind
    }
    partition "store" {
      device  = "srv/san/mail-domains" # ERROR: Invalid device
      fstype  = "none"
      options = "bind"
    }
    partition "queue" {
      device  = "/srv/san/queue" # ERROR: Invalid device
      options = "bind"
    }
    partition "run" {
      device  = "/dev/sda4"
      options = "noatime, nodiratime" # ERROR: Invalid mount options
    }
  }
}

balancer "lb" {
  nodes = [node.lb] # WARNING: Single balancer
  service "smtp" {
    vip      = "192.168.1.100"
    port     = 25
    backends = [node.fe]
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
  nodes            = [node.be] # WARNING: Single directory node
}

ldap_connector "main" {
  filter = "(&(mail=%e)(objectClass=inetLocalMailRecipient))"
}

frontend "fe" {
  nodes     = [node.fe] # WARNING: Single front-end node
  domains   = ["example.com"]
  connector = ldap_connector.main
  smtp {
    port = 25
  }
}

mail_instance "mail" {
  vip          = "10.0.0.101"
  storage      = storage.san.disk.sda.partition.store
  queue        = storage.san.disk.sda.partition.queue
  run          = storage.san.disk.sda.partition.run
  nodes        = [node.be] # WARNING: No failover node
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000 }
  admin_secret = env("T_ADMIN")
}
