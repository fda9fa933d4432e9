#!/usr/bin/env bash
# Failover in the lab, every failure kind N times: prints a table of
# outages (fault to the first good IMAP login through the balancer),
# messages acknowledged/lost/duplicated, 5xx answers and spurious fencing.
#   bash bench/failover/run.sh [N] [CASES]
# CASES: comma separated, of power,storekill,storehang,freeze,linkcut,
# directory,balancer,frontend,relocate (default: all). The lab (examples/lab) is set
# up or converged first, as demo.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1}
CASES=${2:-power,storekill,storehang,freeze,linkcut,directory,balancer,frontend,relocate}
bash demo.sh >/dev/null
go build -o bin/failover ./bench/failover
exec bin/failover run -lab examples/lab -mailfleet bin/mailfleet -n "$N" -cases "$CASES"
