# The reference scenario transcribed literally from the AXIGEN HA white paper
# (September 2007), as far as the language can state it. It must NOT
# validate: every inconsistency of the document is marked on its line with
# the diagnostic it causes (a comment "ERROR: summary" after a hash), and the test
# examples_test.go checks that `mailfleet validate` reports exactly those,
# each at its line. examples/reference is the corrected scenario.

site "example" {
  secret = env("MAILFLEET_SITE_SECRET") # WARNING: Value not available
}

# 5.1/5.2: "a valid, internet routable subnet 140.0.0.0/24 (the 140.0.0.0
# IP class is an example and should not be used in a real scenario)".
network "frontend" {
  cidr    = "140.0.0.0/24" # WARNING: Public address range
  gateway = "140.0.0.1"
  zone    = "front-end.cluster"
  # 5.4.1: the front-end nodes' /etc/resolv.conf, as printed.
  resolver {
    search = ["backend.cluster"] # ERROR: Search list not led by the network's zone
    nameserver {
      address = "10.0.0.1"
    }
  }
  # 5.2: the virtual (balanced) service addresses "on the load balancer".
  record "smtp" {
    address = "140.0.0.200" # ERROR: Conflicting DNS name
  }
  record "pop3" {
    address = "140.0.0.201" # ERROR: Conflicting DNS name
  }
  record "imap" {
    address = "140.0.0.202" # ERROR: Conflicting DNS name
  }
}

network "backend" {
  cidr    = "10.0.0.0/24"
  gateway = "10.0.0.1"
  zone    = "backend.cluster"
  # 5.2: "Clustered service addresses".
  record "ldap" {
    address = "10.0.0.200" # ERROR: Conflicting DNS name
  }
  record "axigen1" {
    address = "10.0.0.211" # ERROR: Conflicting DNS name
  }
  record "axigen2" {
    address = "10.0.0.211" # ERROR: Conflicting DNS name
  }
}

router "router" {
  interface {
    network = network.frontend
    address = "140.0.0.1"
  }
  interface {
    network = network.backend
    address = "10.0.0.1"
  }
  dns = true
}

# 5.4.1 (1) and 5.5.2 (1): "fs.file-max = 32786", the same on both tiers.
kernel "tuned" {
  ip_forward          = false
  file_max            = 32786
  ip_local_port_range = [1024, 65000]
  tcp_keepalive_time  = 600
}

# 5.2 "Front-end": the node names as the zone lists them.
node "loadbalancer" {
  network = network.frontend
  address = "140.0.0.10" # WARNING: Public address
  kernel  = kernel.tuned
}

node "proxy1" {
  network  = network.frontend
  address  = "140.0.0.101" # WARNING: Public address
  hostname = "proxy1"
  kernel   = kernel.tuned
}

node "proxy2" {
  network  = network.frontend
  address  = "140.0.0.102" # WARNING: Public address
  hostname = "proxy1"      # ERROR: Duplicate FQDN
  kernel   = kernel.tuned
}

node "proxy3" {
  network  = network.frontend
  address  = "140.0.0.103" # WARNING: Public address
  hostname = "proxy1"      # ERROR: Duplicate FQDN
  kernel   = kernel.tuned
}

# 5.2 "Backend" and 5.5.3: the backend nodes. 4.2.2 and 5.5.4 add "another
# one as hot standby", which no section gives an address.
node "ldapnode" { # WARNING: Node without fencing
  network = network.backend
  address = "10.0.0.100"
  kernel  = kernel.tuned
}

node "axigenode1" { # WARNING: Node without fencing
  network = network.backend
  address = "10.0.0.11"
  kernel  = kernel.tuned
}

node "axigenode2" { # WARNING: Node without fencing
  network = network.backend
  address = "10.0.0.12"
  kernel  = kernel.tuned
}

node "standby" { # ERROR: Missing node address # WARNING: Node without fencing
  network = network.backend
  kernel  = kernel.tuned
  standby = true
}

# 5.5.1, first scenario: one LUN per service; "LDAP will run only on its home
# backend node and on the hot-standby node", so sda is visible to those only.
storage "san" {
  disk "sda" {
    nodes = [node.ldapnode, node.standby]
    partition "ldap_data" {
      device     = "/dev/sda1"
      mountpoint = "/var/lib/ldap"
    }
  }
  disk "sdb" {
    partition "axigen1_storage" {
      device = "/dev/sdb1"
      # 5.5.6 (2): "temporarily mount ... in the /var/opt/<service_name>/queue
      # and /var/opt/<service_name>/queue respectively the Queue and Storage".
      mountpoint = "/var/opt/AXIGEN1/queue"
    }
    partition "axigen1_queue" { # ERROR: Unused partition
      device     = "/dev/sdb2"
      mountpoint = "/var/opt/AXIGEN1/queue" # ERROR: Duplicate mount point
    }
    partition "axigen1_run" {
      device     = "/dev/sdb3"
      mountpoint = "/var/opt/AXIGEN1/run"
    }
  }
  disk "sdc" {
    partition "axigen2_storage" {
      device     = "/dev/sdc1"
      mountpoint = "/var/opt/AXIGEN2/domains"
    }
    partition "axigen2_queue" {
      device     = "/dev/sdc2"
      mountpoint = "/var/opt/AXIGEN2/queue"
    }
    partition "axigen2_run" {
      device     = "/dev/sdc3"
      mountpoint = "/var/opt/AXIGEN2/run"
    }
  }
}

# 5.3: "Virtual server: 140.0.0.10" for IMAP, POP3 and SMTP alike.
balancer "lvs" {
  nodes = [node.loadbalancer] # WARNING: Single balancer
  service "imap" {
    vip       = "140.0.0.10" # ERROR: VIP is a node address
    port      = 143
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2, node.proxy3]
  }
  service "pop3" {
    vip       = "140.0.0.10" # ERROR: VIP is a node address
    port      = 110
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2, node.proxy3]
  }
  service "smtp" {
    vip       = "140.0.0.10" # ERROR: VIP is a node address
    port      = 25
    scheduler = "least_conn"
    backends  = [node.proxy1, node.proxy2, node.proxy3]
  }
}

# 5.5.5 and 5.5.4: suffix, rootdn, "rootpw secret"; the LDAP service VIP
# 10.0.0.210 on the data partition; "copy the LDAP configuration file to all
# the backend nodes where the LDAP service will be allowed to run (in our
# case, all the backend nodes)".
directory "ldap" {
  base             = "dc=example,dc=com"
  admin_dn         = "cn=admin,dc=example,dc=com"
  admin_password   = "secret"                             # ERROR: Secret in plain text
  service_dn       = "cn=admin,dc=example,dc=com"         # ERROR: Service DN is the admin DN
  service_password = env("MAILFLEET_LDAP_ADMIN_PASSWORD") # WARNING: Value not available
  vip              = "10.0.0.210"
  data             = storage.san.disk.sda.partition.ldap_data
  nodes            = [node.ldapnode, node.axigenode1, node.axigenode2, node.standby] # ERROR: Node cannot reach storage
}

# 5.4.1 and 5.5.8 (3): the LDAP_Master connector of both tiers.
ldap_connector "LDAP_Master" {
  url               = "ldap://10.0.0.100"          # ERROR: Connector points at a node, not the directory VIP
  bind_dn           = "cn=admin,dc=example,dc=com" # ERROR: Connector binds as the directory admin
  bind_password     = "secret"                     # ERROR: Secret in plain text
  base              = "dc=example,dc=com"
  filter            = "(&(uid=%e)(objectType=inetLocalMailRecipient))" # ERROR: Invalid LDAP filter
  host_attribute    = "mailHost"
  refuse_duplicates = true
}

# 5.4.1 (2) and 5.4.2/5.4.3: proxies and SMTP routing on each front-end node.
frontend "proxies" {
  nodes     = [node.proxy1, node.proxy2, node.proxy3]
  domains   = ["example.com"]
  connector = ldap_connector.LDAP_Master
  imap {
    port                  = 143
    authenticate_on_proxy = true
  }
  pop3 {
    port                  = 110
    authenticate_on_proxy = true
  }
  smtp {
    port    = 25
    routing = true
  }
  # 5.4.1 (2) "Domain Name Resolver ... Address: 140.0.0.1".
  resolver { # ERROR: Inconsistent nameservers
    nameserver {
      address  = "140.0.0.1"
      priority = 5
    }
    timeout = "2s"
    retries = 3
  }
}

# 5.5.4 (2), 5.5.6 (2) and 5.5.7: the service instances. "queuePath =
# /var/opt/AXIGEN<instance>/run" puts the queue on the RunDir partition, and
# "clusvcadm -E AXIGEN2 -m backend_axigen1_node / -E AXIGEN2 -m
# backend_axigen2_node" starts AXIGEN2 twice, on nodes no section defines,
# and AXIGEN1 nowhere.
mail_instance "AXIGEN1" {
  vip       = "10.0.0.201"
  hostname  = "axigen1"
  storage   = storage.san.disk.sdb.partition.axigen1_storage
  queue     = storage.san.disk.sdb.partition.axigen1_run
  run       = storage.san.disk.sdb.partition.axigen1_run # ERROR: Partition used twice
  nodes     = []                                         # ERROR: No nodes
  listeners = { smtp = 25, pop3 = 110, imap = 143, admin = 7000, web = 9000 }
  resolver {
    nameserver {
      address  = "10.0.0.1"
      priority = 5
    }
    timeout = "2s"
    retries = 3
  }
}

mail_instance "AXIGEN2" {
  vip       = "10.0.0.202"
  hostname  = "axigen2"
  storage   = storage.san.disk.sdc.partition.axigen2_storage
  queue     = storage.san.disk.sdc.partition.axigen2_queue
  run       = storage.san.disk.sdc.partition.axigen2_run
  nodes     = [node.backend_axigen1_node, node.backend_axigen2_node] # ERROR: Reference to undeclared node
  listeners = { smtp = 25, pop3 = 110, imap = 143, admin = 7000, web = 9000 }
}
