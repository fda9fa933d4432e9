# Shared storage: one "LUN" per service, as in section 5.5.1. In the lab a
# partition is a directory of the lab's storage (/srv/san on every lab
# node), bind-mounted by the Filesystem resource on the one node that runs
# the service; a real site names block devices (/dev/sdb1) and ext4.
storage "san" {
  disk "ldap" {
    nodes = [node.ldapnode, node.standby]
    partition "ldap_data" {
      device  = "/srv/san/ldap-data"
      fstype  = "none"
      options = "bind"
    }
  }
  disk "axigen1" {
    nodes = [node.axigenode1, node.standby]
    partition "axigen1_storage" {
      device  = "/srv/san/axigen1-domains"
      fstype  = "none"
      options = "bind"
    }
    partition "axigen1_queue" {
      device  = "/srv/san/axigen1-queue"
      fstype  = "none"
      options = "bind"
    }
    partition "axigen1_run" {
      device  = "/srv/san/axigen1-run"
      fstype  = "none"
      options = "bind"
    }
  }
  disk "axigen2" {
    nodes = [node.axigenode2, node.standby]
    partition "axigen2_storage" {
      device  = "/srv/san/axigen2-domains"
      fstype  = "none"
      options = "bind"
    }
    partition "axigen2_queue" {
      device  = "/srv/san/axigen2-queue"
      fstype  = "none"
      options = "bind"
    }
    partition "axigen2_run" {
      device  = "/srv/san/axigen2-run"
      fstype  = "none"
      options = "bind"
    }
  }
}
