site "t" {
  secret = env("T_SECRET")
}

locals {
  first  = local.second  # ERROR: Cycle in locals
  second = local.first   # ERROR: Cycle in locals
  third  = local.nowhere # ERROR: Reference to undeclared local
  fine   = "10.0.0.0/24"
}

network "back" {
  cidr = local.fine
  zone = "back.test"
}
