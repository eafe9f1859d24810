#!/usr/bin/env bash
# DNS throughput and latency: signpost against NSD (and Knot with --knot), in the same run.
# Each server is pinned to CPU 0, dnsperf to CPU 1; servers alternate over ROUNDS rounds.
# Data: 1,000 services x 3 instances; 70% A, 20% SRV (half _svcN._tcp), 5% AAAA NODATA,
# 5% NXDOMAIN (bench/gen.py).
#
# Usage: bench/dns.sh [--knot] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

knot=0
if [ "${1:-}" = "--knot" ]; then knot=1; shift; fi
rounds=${1:-2}
seconds=${2:-10}
port_sp=15353 port_nsd=15354 port_knot=15355

need=(dnsperf nsd)
[ $knot = 1 ] && need+=(knotd)
missing=()
for c in "${need[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sed 's/^knotd$/knot/' | tr '\n' ' ')
  echo "installing: $pkgs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
fi

cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 bench/gen.py "$work" 1000 100000

cat > "$work/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$port_nsd
  server-count: 1
  round-robin: yes
  username: ""
  chroot: ""
  zonesdir: "$work/nsd"
  database: ""
  zonelistfile: "$work/nsd/zonelist"
  xfrdfile: "$work/nsd/xfrd.state"
  pidfile: "$work/nsd/nsd.pid"
  logfile: "$work/nsd/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: local
  zonefile: local.zone
CONF

cat > "$work/knot.conf" <<CONF
server:
  listen: 127.0.0.1@$port_knot
  rundir: "$work/knot"
  user: root
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: "$work/knot"
zone:
  - domain: local
    file: "$work/nsd/local.zone"
    zonefile-sync: -1
    journal-content: none
log:
  - target: stderr
    any: error
CONF
mkdir -p "$work/knot"

start() {
  case $1 in
    signpost) taskset -c 0 target/release/signpost serve --dns-addr 127.0.0.1:$port_sp --zones "$work/zones" \
                --data-dir "$work/data" --http-addr 127.0.0.1:0 --log-level warn 2>"$work/signpost.log" & ;;
    nsd) taskset -c 0 nsd -d -c "$work/nsd.conf" 2>"$work/nsd.err" & ;;
    knot) taskset -c 0 knotd -c "$work/knot.conf" 2>"$work/knot.err" & ;;
  esac
  server_pid=$!
  local port; port=$(port_of "$1")
  for _ in $(seq 100); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" svc1.service.local A >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not start" >&2; exit 1
}
port_of() { case $1 in signpost) echo $port_sp;; nsd) echo $port_nsd;; knot) echo $port_knot;; esac; }
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

# Prints: qps mean_ms p99_ms lost
measure() {
  local port=$1 out
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c 20 -q 500 -T 2 -l 2 >/dev/null 2>&1 # warm-up
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c 20 -q 500 -T 2 -l "$seconds")
  local qps mean lost
  qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
  mean=$(awk '/Average Latency/ {printf "%.3f", $4 * 1000}' <<<"$out")
  lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
  # p99 from per-query latencies of a shorter run (-v prints each response).
  local p99
  p99=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c 20 -q 500 -T 2 -l 3 -v 2>/dev/null \
        | awk '/^> / {print $NF}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int(NR*0.99)] * 1000}')
  echo "$qps $mean $p99 $lost"
}

servers=(signpost nsd)
[ $knot = 1 ] && servers+=(knot)
declare -A qps_sum
printf '%-6s %-9s %12s %10s %10s %8s\n' round server QPS mean_ms p99_ms lost
for r in $(seq "$rounds"); do
  order=("${servers[@]}")
  if [ $((r % 2)) = 0 ]; then order=($(printf '%s\n' "${servers[@]}" | tac)); fi
  for s in "${order[@]}"; do
    start "$s"
    read -r qps mean p99 lost <<<"$(measure "$(port_of "$s")")"
    stop
    printf '%-6s %-9s %12s %10s %10s %8s\n' "$r" "$s" "$qps" "$mean" "$p99" "$lost"
    qps_sum[$s]=$(awk -v a="${qps_sum[$s]:-0}" -v b="$qps" 'BEGIN {print a + b}')
  done
done
for s in "${servers[@]}"; do
  [ "$s" = signpost ] && continue
  awk -v a="${qps_sum[signpost]}" -v b="${qps_sum[$s]}" -v n="$s" 'BEGIN {printf "signpost/%s QPS ratio: %.2f\n", n, a / b}'
done
