site "t" {
  secret = env("T_SECRET")
}

variable "zone" { # ERROR: Missing variable value
  description = "no default, and MAILFLEET_VAR_zone is not set"
}

network "back" {
  cidr = "10.0.0.0/24"
  zone = var.zone
}
