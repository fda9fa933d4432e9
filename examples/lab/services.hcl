# Certificates: `mailfleet lab up` makes a lab CA and gives every node a
# certificate for its names, the topology's VIPs and the zones' names.
locals {
  mail_tls = {
    cert = "/etc/ssl/mailfleet-lab/node.crt"
    key  = "/etc/ssl/mailfleet-lab/node.key"
    ca   = "/etc/ssl/mailfleet-lab/ca.crt"
  }
}

# Section 5.3: least-connection balancing with fault detection, one VIP per
# service (the names smtp, pop3 and imap of the front-end zone).
balancer "lvs" {
  nodes = [node.lb1, node.lb2]
  vrrp {
    # VRRPv3: adverts every 200 ms, unicast between the pair, no
    # password (VRRPv2's only, in whole seconds; see the README).
    router_id = 51
  }
  service "smtp" {
    vip       = "192.168.51.200"
    port      = 25
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2]
  }
  service "pop3" {
    vip       = "192.168.51.201"
    port      = 110
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2]
  }
  service "imap" {
    vip       = "192.168.51.202"
    port      = 143
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2]
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
    cert = "/etc/ssl/mailfleet-lab/node.crt"
    key  = "/etc/ssl/mailfleet-lab/ldap.key"
    ca   = "/etc/ssl/mailfleet-lab/ca.crt"
  }
  data  = storage.san.disk.ldap.partition.ldap_data
  nodes = [node.ldapnode, node.standby]
}

# The reference's LDAP_Master connector, binding as the read-only service DN
# at the directory's VIP.
ldap_connector "LDAP_Master" {
  filter            = "(&(uid=%e)(objectClass=inetLocalMailRecipient))"
  host_attribute    = "mailHost"
  refuse_duplicates = true
}

frontend "proxies" {
  nodes            = [node.proxy1, node.proxy2]
  sessions         = 2000
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
      ca   = local.mail_tls.ca
    }
  }
  pop3 {
    port                  = 110
    authenticate_on_proxy = true
    tls {
      cert = local.mail_tls.cert
      key  = local.mail_tls.key
      ca   = local.mail_tls.ca
    }
  }
  smtp {
    port    = 25
    routing = true
    tls {
      cert = local.mail_tls.cert
      key  = local.mail_tls.key
      ca   = local.mail_tls.ca
    }
  }
}

mail_instance "AXIGEN1" {
  vip          = "10.0.0.201"
  hostname     = "axigen1"
  storage      = storage.san.disk.axigen1.partition.axigen1_storage
  queue        = storage.san.disk.axigen1.partition.axigen1_queue
  run          = storage.san.disk.axigen1.partition.axigen1_run
  nodes        = [node.axigenode1, node.standby]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000 }
  admin_secret = file("secrets/axigen1-admin.secret")
  connector    = ldap_connector.LDAP_Master
  tls {
    cert = local.mail_tls.cert
    key  = local.mail_tls.key
    ca   = local.mail_tls.ca
  }
}

mail_instance "AXIGEN2" {
  vip          = "10.0.0.202"
  hostname     = "axigen2"
  storage      = storage.san.disk.axigen2.partition.axigen2_storage
  queue        = storage.san.disk.axigen2.partition.axigen2_queue
  run          = storage.san.disk.axigen2.partition.axigen2_run
  nodes        = [node.axigenode2, node.standby]
  listeners    = { smtp = 25, pop3 = 110, imap = 143, admin = 7000 }
  admin_secret = file("secrets/axigen2-admin.secret")
  connector    = ldap_connector.LDAP_Master
  tls {
    cert = local.mail_tls.cert
    key  = local.mail_tls.key
    ca   = local.mail_tls.ca
  }
}
