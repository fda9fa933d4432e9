#!/usr/bin/env bash
# Benchmark of `mailfleet account import`: N accounts (default 10000) into a
# development cluster (real slapd, two real store instances) started here.
# Prints the import's summary line, with accounts per second.
#   bash bench/account/run.sh [N] [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-10000}
workers=${2:-16}
work=$(mktemp -d)
trap 'kill "$dev" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/mailfleetd" ./cmd/mailfleetd
go build -o "$work/mailfleet" ./cmd/mailfleet
"$work/mailfleetd" dev -data "$work/dev" -addr-base "${ADDR_BASE:-127.0.7.100}" >"$work/dev.json" 2>"$work/dev.log" &
dev=$!
for _ in $(seq 100); do [ -s "$work/dev.json" ] && break; sleep 0.1; done
[ -s "$work/dev.json" ] || { cat "$work/dev.log"; exit 1; }
{
  echo "address,password,instance,quota"
  for i in $(seq -w 1 "$n"); do echo "bench$i@bench.test,pw-$i-secret,,"; done
} >"$work/accounts.csv"
echo "import of $n accounts, $workers workers:"
"$work/mailfleet" account import -topology "$work/dev/topology" -workers "$workers" "$work/accounts.csv"
echo "second run (resume: everything skipped):"
"$work/mailfleet" account import -topology "$work/dev/topology" -workers "$workers" "$work/accounts.csv"
"$work/mailfleet" account check -topology "$work/dev/topology" | tail -1
