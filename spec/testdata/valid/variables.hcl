# Variables (MAILFLEET_VAR_front_cidr, _vrrp_password and _site_secret are
# set in the test environment), locals built from locals, and functions.
variable "front_cidr" {
  default = "not a CIDR" # MAILFLEET_VAR_front_cidr gives 192.168.7.0/24
}

variable "back_cidr" {
  default = "10.20.0.0/16"
}

variable "domain" {
  default = "example.com"
}

variable "site_secret" {
  sensitive = true
}

variable "vrrp_password" {
  sensitive = true
}

locals {
  back        = cidrsubnet(var.back_cidr, 8, 1) # 10.20.1.0/24
  back_router = cidrhost(local.back, 1)
  zone_suffix = join(".", ["mail", "test"])
  front_zone  = format("front.%s", local.zone_suffix)
  back_zone   = format("back.%s", local.zone_suffix)
  base_dn     = join(",", [for part in split(".", var.domain) : "dc=${part}"])
  backend_ips = { for i in range(1, 3) : "be${i}" => cidrhost(local.back, 10 + i) }
}

site "t" {
  secret = var.site_secret
}

network "front" {
  cidr    = var.front_cidr
  gateway = cidrhost(var.front_cidr, 1)
  zone    = local.front_zone
}

network "back" {
  cidr    = local.back
  gateway = local.back_router
  zone    = local.back_zone
}

router "gw" {
  interface {
    network = network.front
    address = network.front.gateway
  }
  interface {
    network = network.back
    address = local.back_router
  }
  dns = true
}

node "lb1" {
  network = network.front
  address = cidrhost(network.front.cidr, 2)
}

node "lb2" {
  network = network.front
  address = cidrhost(network.front.cidr, 3)
}

node "fe1" {
  network = network.front
  address = cidrhost(network.front.cidr, 11)
}

node "fe2" {
  network = network.front
  address = cidrhost(network.front.cidr, 12)
}

fence "pdu" {
  kind     = "power"
  agent    = "fence_apc"
  address  = cidrhost(local.back, 250)
  password = env("T_FENCE")
  ports    = length(keys(local.backend_ips))
}

node "be1" {
  network = network.back
  address = local.backend_ips["be1"]
  fence {
    device = fence.pdu
    port   = 1
  }
}

node "be2" { # WARNING: Two-node cluster
  network = network.back
  address = local.backend_ips.be2
  fence {
    device = fence.pdu
    port   = 2
  }
}

storage "san" {
  disk "sda" {
    partition "ldap" {
      device = format("/dev/sda%d", 1)
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
    password = var.vrrp_password # WARNING: VRRP password
  }
  service "imap" {
    vip      = cidrhost(network.front.cidr, 100)
    port     = 143
    backends = [node.fe1, node.fe2]
  }
}

directory "ldap" {
  base             = local.base_dn
  admin_dn         = "cn=admin,${local.base_dn}"
  admin_password   = env("T_LDAP_ADMIN")
  service_dn       = "cn=mailfleet,${local.base_dn}"
  service_password = env("T_LDAP_SERVICE")
  vip              = cidrhost(local.back, 100)
  data             = storage.san.disk.sda.partition.ldap
  nodes            = [node.be1, node.be2]
}

ldap_connector "main" {
  filter = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
  base   = "ou=people,${directory.ldap.base}"
}

frontend "fe" {
  nodes     = [node.fe1, node.fe2]
  domains   = [var.domain]
  connector = ldap_connector.main
  imap {
    port = 143
  }
}

mail_instance "m1" {
  vip          = cidrhost(local.back, 101)
  storage      = storage.san.disk.sda.partition.store
  queue        = storage.san.disk.sda.partition.queue
  run          = storage.san.disk.sda.partition.run
  nodes        = [node.be1, node.be2]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000 }
  admin_secret = env("T_ADMIN")
}
