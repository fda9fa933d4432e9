#!/usr/bin/env bash
# Pushing the rendered files of examples/lab to the lab's hosts:
# `mailfleet apply -no-actions` against Ansible (Debian's ansible-core, the
# `copy` module with a loop), same files (the mailfleetd binary included),
# same hosts, same sshd, both from the lab's workstation namespace, neither
# running service actions. Each round: mailfleet first push, mailfleet no-op
# run, files removed from the hosts, Ansible first push, Ansible no-op run,
# files removed. Reports every time, the medians and the ratios; asserts
# nothing.
#
#   bash bench/deploy/run.sh          # RUNS=3 FORKS=10
#
# Runs on a lab of its own (examples/lab under the site name "bench", in
# namespaces of its own), never applied with actions, so no service runs
# while files come and go; it is taken down at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
FORKS=${FORKS:-10}

if ! command -v ansible-playbook >/dev/null; then
  echo "installing ansible-core" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends ansible-core >/dev/null
fi
bash scripts/deps.sh
mkdir -p bin
go build -o bin/mailfleet ./cmd/mailfleet
go build -o bin/mailfleetd ./cmd/mailfleetd
MF=$(pwd)/bin/mailfleet

work=$(mktemp -d)
T=$work/lab
cp -r examples/lab "$T"
sed -i 's/^site "lab"/site "bench"/' "$T/site.hcl"
cleanup() {
  "$MF" lab down "$T" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$MF" lab up "$T" >/dev/null
"$MF" lab status -json "$T" > "$work/status.json"

# What mailfleet would write: the rendered files (build) plus the binary.
"$MF" build -o "$work/out" "$T" >/dev/null
python3 bench/deploy/ansible_inputs.py "$work/status.json" "$work/out" "$(pwd)/bin/mailfleetd" "$work" "$FORKS"

now() { date +%s.%N; }
reset_hosts() {
  while read -r node paths; do
    "$MF" lab exec "$T" "$node" -- sh -c "rm -f $paths /var/lib/mailfleet/manifest.json /var/lib/mailfleet/pending.json" >/dev/null
  done < "$work/reset.txt"
}
mf_apply() {
  "$MF" lab apply "$T" -auto-approve -no-actions -parallelism "$FORKS" > "$work/mf.log" 2>&1 || { cat "$work/mf.log" >&2; exit 1; }
}
ansible_push() {
  "$MF" lab exec "$T" workstation -- env ANSIBLE_CONFIG="$work/ansible.cfg" \
    ansible-playbook -i "$work/inventory.ini" "$work/push.yml" > "$work/ansible.log" 2>&1 || { cat "$work/ansible.log" >&2; exit 1; }
}

# Warm-up (not timed): the first apply creates the mailfleet user the
# files' owners name, which the Ansible run needs as well.
mf_apply
reset_hosts

declare -a MF1 MF0 AN1 AN0
for i in $(seq 1 "$RUNS"); do
  t0=$(now); mf_apply; t1=$(now); mf_apply; t2=$(now)
  grep -q "no changes" "$work/mf.log" || { echo "the second mailfleet run changed something:" >&2; cat "$work/mf.log" >&2; exit 1; }
  MF1+=("$(echo "$t1 - $t0" | bc)"); MF0+=("$(echo "$t2 - $t1" | bc)")
  reset_hosts
  t0=$(now); ansible_push; t1=$(now); ansible_push; t2=$(now)
  grep -q "changed=0" "$work/ansible.log" || { echo "the second Ansible run changed something" >&2; cat "$work/ansible.log" >&2; exit 1; }
  AN1+=("$(echo "$t1 - $t0" | bc)"); AN0+=("$(echo "$t2 - $t1" | bc)")
  reset_hosts
  printf 'round %d: mailfleet first %.2fs no-op %.2fs | ansible first %.2fs no-op %.2fs\n' "$i" "${MF1[-1]}" "${MF0[-1]}" "${AN1[-1]}" "${AN0[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m1=$(median "${MF1[@]}"); m0=$(median "${MF0[@]}"); a1=$(median "${AN1[@]}"); a0=$(median "${AN0[@]}")
echo
echo "hosts: $(wc -l < "$work/reset.txt"), files: $(cat "$work/count.txt"), forks/parallelism: $FORKS, rounds: $RUNS"
printf 'first push: mailfleet %.2fs, ansible %.2fs, ratio %.1fx\n' "$m1" "$a1" "$(echo "$a1 / $m1" | bc -l)"
printf 'no-op run:  mailfleet %.2fs, ansible %.2fs, ratio %.1fx\n' "$m0" "$a0" "$(echo "$a0 / $m0" | bc -l)"
