#!/usr/bin/env bash
# Benchmarks of the front tier (issue 4), in one run on this machine:
#   (a) an IMAP session (connect, LOGIN, SELECT, FETCH 1:10 of 10 KB
#       messages, LOGOUT) and an SMTP transaction (10 KB, one per
#       connection) through the balancer and a front-end node (IMAP proxy,
#       SMTP router) against the same directly on the store: p50/p99 latency,
#       throughput and their ratios at 1 and 200 concurrent clients, and the
#       CPU time each role spends per operation;
#   (c) memory per idle proxied IMAP session, 10,000 sessions held open;
#   (b) the balancer against HAProxy: bench/balancer/run.sh, run afterwards
#       when it exists (SKIP_BALANCER=1 skips it).
# Every role runs as its own process on 127.0.0.1 (slapd, `mailfleetd
# store`, two `mailfleetd frontend`, `mailfleetd balancer`), started and
# stopped by the load generator (bench/proxy/*.go, `go run ./bench/proxy
# -h`). Figures are medians of RUNS rounds after a warm-up round; the
# proxied and direct runs alternate within each round.
#
# Usage: bench/proxy/run.sh
#        RUNS=5 DURATION=5s IDLE=10000 IDLE_RUNS=3 PROFILE=1 SKIP_BALANCER=1 bench/proxy/run.sh
# PROFILE=1 (the default when perf(1) is installed) records the front-end
# processes with perf during one more proxied run of each test at 200
# clients and prints where their CPU time goes. RLIMIT_NOFILE is raised by
# the load generator when it may (root with CAP_SYS_RESOURCE); with a lower
# hard limit the idle sessions are spread over more front-end processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
IDLE=${IDLE:-10000}
IDLE_RUNS=${IDLE_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
PROFILE=${PROFILE:-$(command -v perf >/dev/null && echo 1 || echo 0)}

for tool in /usr/sbin/slapd /usr/sbin/slapadd; do
	[ -x "$tool" ] || { echo "bench/proxy: $tool is required (apt-get install slapd)" >&2; exit 1; }
done

T=$(mktemp -d "$BENCH_DIR/mailfleet-bench-proxy.XXXXXX")
trap 'rm -rf "$T"' EXIT
go build -o "$T/mailfleetd" ./cmd/mailfleetd
go build -o "$T/load" ./bench/proxy
flags=(-bin "$T/mailfleetd" -dir "$T/work" -runs "$RUNS" -duration "$DURATION" -idle "$IDLE" -idle-runs "$IDLE_RUNS" -out "$T/results.json")
[ "$PROFILE" = 0 ] || flags+=(-profile "$T/perf")
echo "# bench/proxy: $(nproc) CPU, $(free -g | awk '/Mem:/{print $2}') GiB, $(go version | cut -d' ' -f3), git $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +changes), $(date -u +%FT%TZ)"
"$T/load" "${flags[@]}"

if [ "${SKIP_BALANCER:-0}" != 1 ] && [ -f bench/balancer/run.sh ]; then
	echo
	echo "# (b) bench/balancer/run.sh"
	bash bench/balancer/run.sh || echo "# bench/balancer/run.sh failed (exit $?)"
fi
