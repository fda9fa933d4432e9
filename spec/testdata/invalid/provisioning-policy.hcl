site "t" {
  secret = env("T_SECRET")
}

provisioning {
  policy  = "round_robin"   # ERROR: Unknown policy
  domains = ["example.com"] # ERROR: Invalid domain table
}
