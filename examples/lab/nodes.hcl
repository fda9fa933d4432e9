# Load balancer tier: a VRRP pair (keepalived holds the service VIPs).
node "lb1" {
  network = network.frontend
  address = "192.168.51.10"
  kernel  = kernel.tuned
}

node "lb2" {
  network = network.frontend
  address = "192.168.51.11"
  kernel  = kernel.tuned
}

# Front-end tier: two proxies (the paper has three; two keep the lab light
# and still show the balancing).
node "proxy1" {
  network = network.frontend
  address = "192.168.51.101"
  kernel  = kernel.tuned
}

node "proxy2" {
  network = network.frontend
  address = "192.168.51.102"
  kernel  = kernel.tuned
}

# Backend tier: the directory's node, two mail nodes and the hot standby,
# one Pacemaker cluster, every node on a port of the lab's power switch.
node "ldapnode" {
  network = network.backend
  address = "10.0.0.100"
  kernel  = kernel.tuned
  fence {
    device = fence.pdu1
    port   = 1
  }
}

node "axigenode1" {
  network = network.backend
  address = "10.0.0.11"
  kernel  = kernel.tuned
  fence {
    device = fence.pdu1
    port   = 2
  }
}

node "axigenode2" {
  network = network.backend
  address = "10.0.0.12"
  kernel  = kernel.tuned
  fence {
    device = fence.pdu1
    port   = 3
  }
}

node "standby" {
  network = network.backend
  address = "10.0.0.13"
  kernel  = kernel.tuned
  standby = true
  fence {
    device = fence.pdu1
    port   = 4
  }
}

# The lab's power switch: `mailfleet lab up` runs it at this address, and
# its fence agent (fence_mailfleet_lab) powers a node off as a real switch
# would: every process of the node ends and its addresses go.
fence "pdu1" {
  kind     = "power"
  agent    = "fence_mailfleet_lab"
  address  = "10.0.0.250"
  login    = "lab"
  password = file("secrets/fence.password")
  ports    = 4
}
