# A second node "a": the duplicate is reported here, pointing at a.hcl.

node "a" { # ERROR: Duplicate node
  network = network.n
  address = "10.0.0.11"
}
