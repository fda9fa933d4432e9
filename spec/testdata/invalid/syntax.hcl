# A parse error stops before decoding: only it is reported.
site "t" {
  secret = env("T_SECRET")
}

node "a" {
  network = network.front
  address = "192.168.1.10" "192.168.1.11" # ERROR: Missing newline after argument
}
