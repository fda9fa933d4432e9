#!/usr/bin/env bash
# Installs the Debian packages that mailfleet's commands and tests use, without
# starting any daemon (a policy-rc.d that refuses every start is put in place
# for the install and removed afterwards if we created it).
set -euo pipefail

PKGS=(
  bind9 bind9-utils
  slapd ldap-utils
  keepalived
  pacemaker-cli-utils
  pacemaker corosync resource-agents fence-agents psmisc kmod mount
  libxml2-utils
  iputils-arping
  ruby vagrant vagrant-libvirt
  graphviz
  curl python3
  openssh-server openssh-client iproute2
  postfix
  systemd
  # go test -race needs cgo: a C compiler and the C library's headers.
  gcc libc6-dev
)

missing=()
for p in "${PKGS[@]}"; do
  case "$p" in \#*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "mailfleet: these Debian packages are missing: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
created_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
echo "mailfleet: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix (for smtp-sink in the store's tests) is installed unconfigured.
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
