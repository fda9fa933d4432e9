locals {
  mail_tls = {
    cert = "/etc/mailfleet/tls/mail.crt"
    key  = "/etc/mailfleet/tls/mail.key"
  }
}

# Section 5.3: least-connection balancing with fault detection, one VIP per
# service (the names smtp, pop3 and imap of the front-end zone).
balancer "lvs" {
  nodes = [node.loadbalancer, node.loadbalancer2]
  vrrp {
    # VRRPv3: adverts every 200 ms, unicast between the pair, no
    # password (VRRPv2's only, in whole seconds; see the README).
    router_id = 51
  }
  service "smtp" {
    vip       = "198.51.100.200"
    port      = 25
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2, node.proxy3]
    health_check {
      interval = "250ms"
      rise     = 2
      fall     = 2
    }
  }
  service "pop3" {
    vip       = "198.51.100.201"
    port      = 110
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2, node.proxy3]
    health_check {
      interval = "250ms"
    }
  }
  service "imap" {
    vip       = "198.51.100.202"
    port      = 143
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2, node.proxy3]
    health_check {
      interval = "250ms"
    }
  }
}

# The location directory: OpenLDAP on its own VIP, clustered on its home node
# and the standby (sections 5.5.1 and 5.5.5).
directory "ldap" {
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = file("secrets/ldap-admin.password")
  service_dn       = "cn=mailfleet,dc=example,dc=com"
  service_password = file("secrets/ldap-service.password")
  vip              = "10.0.0.210"
  tls_mode         = "starttls"
  tls {
    cert = "/etc/mailfleet/tls/ldap.crt"
    key  = "/etc/mailfleet/tls/ldap.key"
    ca   = "/etc/mailfleet/tls/ca.crt"
  }
  data  = storage.san.disk.sda.partition.ldap_data
  nodes = [node.ldapnode, node.standby]
}

# The reference's LDAP_Master connector, binding as the read-only service DN
# (never the admin) at the directory's VIP (never a node).
ldap_connector "LDAP_Master" {
  filter            = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
  host_attribute    = "mailHost"
  refuse_duplicates = true
}

frontend "proxies" {
  nodes            = [node.proxy1, node.proxy2, node.proxy3]
  sessions         = 10000
  domains          = ["example.com"]
  trusted_networks = [network.frontend]
  connector        = ldap_connector.LDAP_Master
  default_route    = mail_instance.AXIGEN1
  backend_tls      = true
  imap {
    port                  = 143
    authenticate_on_proxy = true
    tls {
      cert = local.mail_tls.cert
      key  = local.mail_tls.key
    }
  }
  pop3 {
    port                  = 110
    authenticate_on_proxy = true
    tls {
      cert = local.mail_tls.cert
      key  = local.mail_tls.key
    }
  }
  smtp {
    port    = 25
    routing = true
    tls {
      cert = local.mail_tls.cert
      key  = local.mail_tls.key
    }
  }
}

mail_instance "AXIGEN1" {
  vip          = "10.0.0.201"
  hostname     = "axigen1"
  storage      = storage.san.disk.sdb.partition.axigen1_storage
  queue        = storage.san.disk.sdb.partition.axigen1_queue
  run          = storage.san.disk.sdb.partition.axigen1_run
  nodes        = [node.axigenode1, node.standby]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000, web = 9000 }
  admin_secret = file("secrets/axigen1-admin.secret")
  connector    = ldap_connector.LDAP_Master
  resolver {
    nameserver {
      address  = "10.0.0.1"
      priority = 5
    }
    timeout = "2s"
    retries = 3
  }
  tls {
    cert = local.mail_tls.cert
    key  = local.mail_tls.key
  }
}

mail_instance "AXIGEN2" {
  vip          = "10.0.0.202"
  hostname     = "axigen2"
  storage      = storage.san.disk.sdc.partition.axigen2_storage
  queue        = storage.san.disk.sdc.partition.axigen2_queue
  run          = storage.san.disk.sdc.partition.axigen2_run
  nodes        = [node.axigenode2, node.standby]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000, web = 9000 }
  admin_secret = file("secrets/axigen2-admin.secret")
  connector    = ldap_connector.LDAP_Master
  resolver {
    nameserver {
      address  = "10.0.0.1"
      priority = 5
    }
    timeout = "2s"
    retries = 3
  }
  tls {
    cert = local.mail_tls.cert
    key  = local.mail_tls.key
  }
}
