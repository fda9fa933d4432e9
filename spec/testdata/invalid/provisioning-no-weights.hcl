site "t" {
  secret = env("T_SECRET")
}

provisioning {
  policy = "weighted_random" # ERROR: Missing weights
}
