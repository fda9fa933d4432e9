site "t" {
  secret = env("T_SECRET")
}

network "front" {
  cidr = "192.168.1.0/24"
  zone = "front.test"
  cidr = "192.168.2.0/24" # ERROR: Attribute redefined
}
