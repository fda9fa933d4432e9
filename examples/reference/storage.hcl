# Shared storage: one LUN per service (section 5.5.1, first scenario). Each
# disk is visible only to the nodes its service may run on.
storage "san" {
  disk "sda" {
    nodes = [node.ldapnode, node.standby]
    partition "ldap_data" {
      device = "/dev/sda1"
    }
  }
  disk "sdb" {
    nodes = [node.axigenode1, node.standby]
    partition "axigen1_storage" {
      device = "/dev/sdb1"
    }
    partition "axigen1_queue" {
      device = "/dev/sdb2"
    }
    partition "axigen1_run" {
      device = "/dev/sdb3"
    }
  }
  disk "sdc" {
    nodes = [node.axigenode2, node.standby]
    partition "axigen2_storage" {
      device = "/dev/sdc1"
    }
    partition "axigen2_queue" {
      device = "/dev/sdc2"
    }
    partition "axigen2_run" {
      device = "/dev/sdc3"
    }
  }
}
