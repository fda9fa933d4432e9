site "t" {
  secret = env("T_SECRET")
}

provisioning {
  policy  = "domain" # ERROR: Missing domain table
  domains = {}
}
