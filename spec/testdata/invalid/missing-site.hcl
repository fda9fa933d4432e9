# TOPOLOGY ERROR: Missing site block
network "back" {
  cidr = "10.0.0.0/24"
  zone = "back.test"
}
