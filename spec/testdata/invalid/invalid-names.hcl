# Block names are identifiers: a letter, then letters, digits, '_' or '-',
# at most 63 characters. An invalid name stops decoding.
site "t" {
  secret = env("T_SECRET")
}

network "back.net" { # ERROR: Invalid name
  cidr = "10.0.0.0/24"
  zone = "back.test"
}

node "1st" { # ERROR: Invalid name
  network = network.back
  address = "10.0.0.10"
}

node "" { # ERROR: Invalid name
  network = network.back
  address = "10.0.0.11"
}

kernel "tuned kernel" { # ERROR: Invalid name
}

fence "a234567890123456789012345678901234567890123456789012345678901234" { # ERROR: Invalid name
  kind    = "power"
  address = "10.0.0.250"
  ports   = 4
}

mail_instance "mail@1" { # ERROR: Invalid name
}
