site "t" {
  secret = env("T_SECRET")
}

variable "zone" {
  default = "back.test"
}

variable "zone" { # ERROR: Duplicate variable
  default = "other.test"
}

locals {
  cidr = "10.0.0.0/24"
}

locals {
  cidr = "10.0.1.0/24" # ERROR: Duplicate local
}
