#!/usr/bin/env bash
# The main job on this machine: the reference scenario as a lab. Installs
# what is needed, builds mailfleet, brings examples/lab up (every host in its
# own network namespace), deploys it over SSH exactly as on real hosts,
# creates two accounts, sends each a message through the balancer and reads
# it back through the IMAP and POP3 proxies, then says how to look around and
# how to take it down. Run it again at any time: every step converges.
set -euo pipefail
cd "$(dirname "$0")"
T=examples/lab
bash scripts/deps.sh
mkdir -p bin
go build -o bin/mailfleet ./cmd/mailfleet
go build -o bin/mailfleetd ./cmd/mailfleetd
MF=$(pwd)/bin/mailfleet

echo "== mailfleet validate $T"
"$MF" validate "$T"
echo "== mailfleet lab up $T"
"$MF" lab up "$T"
echo "== mailfleet lab apply -auto-approve $T"
"$MF" lab apply -auto-approve "$T" | tail -n 12

# Two accounts, one on each mail instance (from the lab's workstation, as an
# admin would from theirs); the password file stays on this machine, 0600.
pw=$(mktemp)
trap 'rm -f "$pw"' EXIT
echo "demo-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" > "$pw"
echo "== mailfleet account add (alice on AXIGEN1, bob on AXIGEN2)"
for a in alice@example.com:AXIGEN1 bob@example.com:AXIGEN2; do
  addr=${a%%:*} inst=${a##*:}
  for i in $(seq 1 60); do
    if out=$("$MF" lab exec "$T" workstation -- "$MF" account add "$addr" -password-file "$pw" -instance "$inst" -topology "$(pwd)/$T" 2>&1); then
      echo "$out"; break
    elif echo "$out" | grep -q "already exists"; then
      "$MF" lab exec "$T" workstation -- "$MF" account passwd "$addr" -password-file "$pw" -topology "$(pwd)/$T"
      break
    fi
    [ "$i" -lt 60 ] || { echo "$out" >&2; exit 1; }
    sleep 2 # the cluster is still starting the directory or the instance
  done
done

status=$("$MF" lab status -json "$T")
svc() { python3 -c 'import json,sys; s=json.load(sys.stdin); print(s[sys.argv[1]] if sys.argv[1]=="ca" else s["services"][sys.argv[1]])' "$1" <<<"$status"; }
echo "== mail through the balancer (SMTP $(svc smtp)), read back through IMAP $(svc imap) and POP3 $(svc pop3)"
"$MF" lab exec "$T" workstation -- python3 "$(pwd)/$T/mailcheck.py" --ca "$(svc ca)" \
  --smtp "$(svc smtp)" --imap "$(svc imap)" --pop3 "$(svc pop3)" \
  "alice@example.com:$pw" "bob@example.com:$pw"

tip() { printf '  %-58s %s\n' "$1" "$2"; }
echo
echo "The lab is up and serving mail. Look around:"
tip "bin/mailfleet lab status $T" "nodes, addresses, service VIPs"
tip "bin/mailfleet lab shell $T ldapnode" "a shell on a node (or: workstation)"
tip "bin/mailfleet lab exec $T ldapnode -- crm_mon -1" "the cluster: instances, directory, fencing"
tip "bin/mailfleet lab plan $T" "what apply would change (nothing now)"
tip "bin/mailfleet lab exec $T ldapnode -- stonith_admin --fence axigenode1" ""
tip "" "fence a node: its instance moves to the standby"
tip "bin/mailfleet lab power on $T axigenode1" "and it comes back"
echo "Take it down (removes every namespace, mount, process and file it made):"
echo "  bin/mailfleet lab down $T"
