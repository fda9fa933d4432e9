#!/usr/bin/env bash
# Benchmark of `mailfleetd balancer` against HAProxy (Debian's package,
# `balance leastconn`) in front of the same two greeting+echo front-end
# stand-ins on loopback, and the time from a front-end's failure to its
# mark-down. Reports medians; asserts nothing.
#
#   bash bench/balancer/run.sh            # RUNS=5 DURATION=5s CLIENTS=50 STREAMS=8
#
# Throughput: "conn" = connections/s of short sessions (connect, greeting,
# one line echoed, close) with CLIENTS concurrent clients; "bytes" = MB/s
# echoed through STREAMS long connections (each byte crosses the balancer
# twice). Runs alternate between the balancers; "direct" is the same load
# on one front-end with no balancer, for scale.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-50}
STREAMS=${STREAMS:-8}
MARK_RUNS=${MARK_RUNS:-5}
IDLE=${IDLE:-5000}

if ! command -v haproxy >/dev/null; then
  echo "installing haproxy" >&2
  export DEBIAN_FRONTEND=noninteractive
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; rm_policy=1; }
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends haproxy >/dev/null
  [ -z "${rm_policy:-}" ] || rm -f /usr/sbin/policy-rc.d
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/mailfleetd" ./cmd/mailfleetd
go build -o "$work/bench" ./bench/balancer

FE1=127.0.0.31:14301 FE2=127.0.0.32:14302
OURS=127.0.0.40:14340 OURS_ADMIN=127.0.0.40:14341
HAP=127.0.0.41:14342

start_bg() { "$@" & pids+=($!); }

# balancer_config FILE INTERVAL TIMEOUT: a config as render writes it.
balancer_config() {
  cat > "$1" <<EOF
{
  "format_version": 1,
  "node": "bench",
  "admin": "$OURS_ADMIN",
  "services": [
    {
      "name": "imap", "protocol": "imap", "listen": "$OURS", "scheduler": "least_conn", "proxy_protocol": false,
      "backends": [{"name": "fe1", "address": "$FE1", "weight": 1}, {"name": "fe2", "address": "$FE2", "weight": 1}],
      "health": {"interval": "$2", "timeout": "$3", "rise": 2, "fall": 2}
    }
  ],
  "limits": {"max_connections": 30000, "max_per_client": 256, "idle_timeout": "31m0s"},
  "log_file": "$work/balancer.log"
}
EOF
}

cat > "$work/haproxy.cfg" <<EOF
global
    maxconn 9000  # the FD limit here is 20000 (HAProxy needs 2 per connection)
    nbthread 2
defaults
    mode tcp
    timeout connect 3s
    timeout client 31m
    timeout server 31m
frontend imap
    bind $HAP
    default_backend fe
backend fe
    balance leastconn
    option tcp-check
    tcp-check expect string OK
    default-server inter 1s fall 2 rise 2
    server fe1 $FE1 check
    server fe2 $FE2 check
EOF
haproxy -c -f "$work/haproxy.cfg" >/dev/null

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; return 1; }
wait_up() { for _ in $(seq 400); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$OURS_ADMIN/healthz")" = 200 ] && return 0; sleep 0.05; done; echo "balancer not healthy" >&2; return 1; }

# ---- throughput
start_bg "$work/bench" serve -listen $FE1 -name fe1
start_bg "$work/bench" serve -listen $FE2 -name fe2
fe2_pid=$!
wait_port $FE1; wait_port $FE2
balancer_config "$work/balancer.json" 1s 1s
start_bg "$work/mailfleetd" balancer -config "$work/balancer.json"
ours_pid=$!
start_bg haproxy -db -f "$work/haproxy.cfg"
hap_pid=$!
wait_port $OURS; wait_port $HAP; wait_up

: > "$work/results.jsonl"
for run in $(seq "$RUNS"); do
  for mode in conn bytes; do
    c=$CLIENTS; [ $mode = bytes ] && c=$STREAMS
    for target in ours haproxy direct; do
      case $target in ours) addr=$OURS ;; haproxy) addr=$HAP ;; direct) addr=$FE1 ;; esac
      "$work/bench" load -target $addr -mode $mode -c "$c" -d "$DURATION" |
        python3 -c "import json,sys; r=json.load(sys.stdin); r['who']='$target'; print(json.dumps(r))" >> "$work/results.jsonl"
      sleep 1 # let TIME_WAIT and the other side settle
    done
  done
  echo "throughput run $run/$RUNS done" >&2
done
ours_rss=$(awk '/VmHWM/ {print $2}' /proc/$ours_pid/status)

# ---- memory per idle session: IDLE sessions held open through each
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
: > "$work/idle.txt"
for who in ours haproxy; do
  case $who in ours) addr=$OURS pid=$ours_pid ;; haproxy) addr=$HAP pid=$hap_pid ;; esac
  before=$(rss "$pid")
  mkfifo "$work/hold.in"
  "$work/bench" hold -target $addr -n "$IDLE" < "$work/hold.in" > "$work/hold.out" & hold_pid=$!
  exec 7>"$work/hold.in"
  for _ in $(seq 600); do [ -s "$work/hold.out" ] && break; sleep 0.1; done
  sleep 1
  after=$(rss "$pid")
  fds=$(ls /proc/"$pid"/fd | wc -l)
  exec 7>&-
  wait $hold_pid || true
  rm -f "$work/hold.in" "$work/hold.out"
  echo "$who $before $after $fds" >> "$work/idle.txt"
  sleep 2
done
kill "$ours_pid" "$hap_pid"; wait "$ours_pid" "$hap_pid" 2>/dev/null || true

# ---- kill / hang → mark-down, with the defaults render writes and faster ones
: > "$work/markdown.jsonl"
for setting in "1s 1s" "250ms 250ms"; do
  for variant in "KILL -probe $OURS" "KILL -probe=" "STOP -probe $OURS"; do
    set -- $setting $variant
    for run in $(seq "$MARK_RUNS"); do
      # A fresh fe2 every run (the last one was killed or stopped).
      [ -z "$fe2_pid" ] || { kill -9 "$fe2_pid" 2>/dev/null || true; wait "$fe2_pid" 2>/dev/null || true; }
      "$work/bench" serve -listen $FE2 -name fe2 & fe2_pid=$!; pids+=($fe2_pid)
      wait_port $FE2
      balancer_config "$work/balancer.json" "$1" "$2"
      "$work/mailfleetd" balancer -config "$work/balancer.json" & bpid=$!; pids+=($bpid)
      wait_port $OURS; wait_up
      "$work/bench" markdown -admin $OURS_ADMIN -service imap -backend fe2 -pid "$fe2_pid" -signal $3 $4 ${5:-} |
        python3 -c "import json,sys; r=json.load(sys.stdin); r['interval']='$1'; r['timeout']='$2'; print(json.dumps(r))" >> "$work/markdown.jsonl"
      kill "$bpid"; wait "$bpid" 2>/dev/null || true
    done
  done
done

python3 - "$work/results.jsonl" "$work/markdown.jsonl" "$ours_rss" "$work/idle.txt" "$IDLE" <<'EOF'
import json, statistics, sys
res = [json.loads(l) for l in open(sys.argv[1])]
mark = [json.loads(l) for l in open(sys.argv[2])]
med = lambda xs: statistics.median(xs) if xs else float('nan')
print("balancer throughput on 127.0.0.1 (medians of %d runs; two front-end stand-ins; load generator on the same 2 cores)" % (len(res) // 6))
print("%-6s %-8s %12s %10s %8s" % ("mode", "who", "conns/s", "MB/s", "errors"))
m = {}
for mode in ("conn", "bytes"):
    for who in ("ours", "haproxy", "direct"):
        rs = [r for r in res if r["mode"] == mode and r["who"] == who]
        m[mode, who] = (med([r["conns_per_s"] for r in rs]), med([r["mb_per_s"] for r in rs]), sum(r["errors"] for r in rs))
        print("%-6s %-8s %12.0f %10.1f %8d" % (mode, who, *m[mode, who]))
print("ratio ours/haproxy: %.2f for connections/s, %.2f for MB/s" % (m["conn", "ours"][0] / m["conn", "haproxy"][0], m["bytes", "ours"][1] / m["bytes", "haproxy"][1]))
print("per run, ours/haproxy conns/s: " + " ".join("%.2f" % (a["conns_per_s"] / b["conns_per_s"]) for a, b in zip(
    [r for r in res if r["mode"] == "conn" and r["who"] == "ours"], [r for r in res if r["mode"] == "conn" and r["who"] == "haproxy"])))
print("per run, ours/haproxy MB/s:    " + " ".join("%.2f" % (a["mb_per_s"] / b["mb_per_s"]) for a, b in zip(
    [r for r in res if r["mode"] == "bytes" and r["who"] == "ours"], [r for r in res if r["mode"] == "bytes" and r["who"] == "haproxy"])))
print("mailfleetd balancer peak RSS during the throughput runs: %s kB" % sys.argv[3])
for line in open(sys.argv[4]):
    who, before, after, fds = line.split()
    n = int(sys.argv[5])
    print("%s with %d idle sessions: RSS %d → %d kB, %.1f KB per session, %s descriptors" % (
        who, n, int(before), int(after), (int(after) - int(before)) / n, fds))
print()
print("failure → mark-down (fall 2, rise 2; fast interval = interval/4). kill = SIGKILL of the front-end process,")
print("hang = SIGSTOP (the kernel still accepts, nothing greets); traffic = 4 clients connecting every ~5 ms, whose")
print("failed connects make the balancer check at once; idle = no client traffic.")
print("%-9s %-8s %-13s %10s %8s %7s %7s %s" % ("interval", "timeout", "failure", "median ms", "max ms", "probes", "failed", "runs (ms)"))
for setting in sorted({(r["interval"], r["timeout"]) for r in mark}, key=lambda s: s[0] != "1s"):
    for sig, probe in (("KILL", True), ("KILL", False), ("STOP", True)):
        rs = [r for r in mark if (r["interval"], r["timeout"]) == setting and r["signal"] == sig and r["probe"] == probe]
        ms = [r["markdown_ms"] for r in rs]
        what = ("kill" if sig == "KILL" else "hang") + (", traffic" if probe else ", idle")
        failed = "%d" % sum(r["probe_failures_after_markdown"] for r in rs) if probe else "-"
        print("%-9s %-8s %-13s %10.0f %8.0f %7d %7s %s" % (setting[0], setting[1], what, med(ms), max(ms),
              sum(r["probes"] for r in rs), failed, " ".join("%.0f" % x for x in ms)))
print("(failed = probe connections that failed after the mark-down; probes before it may fail on a hung node)")
EOF
