#!/usr/bin/env bash
# DNS throughput, CPU and latency: signpost against NSD (and Knot with --knot), in the same run,
# for the query shapes real clients send:
#   plain   no EDNS options (the bench mix)
#   cookie  a DNS COOKIE on every query, as dig, BIND and c-ares send (dnsperf -E 10:...)
#   ecs     an EDNS Client Subnet on every query, as forwarders add (dnsperf -E 8:...); signpost
#           runs the region decision for it (instances in regions r0-r2, a client map that does
#           not match the subnet, so answers stay the size NSD's are)
#   tcp     the plain mix over TCP (dnsperf -m tcp, 20 connections, pipelined)
# Each server is pinned to CPU 0 and capped at CAP% of it by a cgroup v1 cpu.cfs_quota_us, dnsperf
# runs on CPU 1: capped, a server's QPS measures its work per query rather than dnsperf's ceiling
# (about 170k QPS on this machine). Servers alternate over ROUNDS rounds. Plain rounds also take
# the mean and p99 latency at a steady 1,000 QPS.
# Data: 1,000 services x 3 instances; 70% A, 20% SRV (half _svcN._tcp), 5% AAAA NODATA,
# 5% NXDOMAIN (bench/gen.py).
#
# Usage: bench/dns.sh [--knot] [--cap PERCENT] [--shapes plain,cookie,ecs,tcp] [ROUNDS] [SECONDS]
#        (defaults: cap 50, all four shapes, 2 rounds of 10 s; --cap 0 runs uncapped)
# SIGNPOST_BASELINE=path/to/an/older/signpost adds that build as a third server ("baseline"), to
# see a change's own effect in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."

knot=0 cap=50 shapes=plain,cookie,ecs,tcp
while [ $# -gt 0 ]; do
  case $1 in
    --knot) knot=1; shift ;;
    --cap) cap=$2; shift 2 ;;
    --shapes) shapes=$2; shift 2 ;;
    *) break ;;
  esac
done
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
cgroup=""
if [ "$cap" != 0 ]; then
  cgroup=/sys/fs/cgroup/cpu/signpost-bench-$$
  mkdir "$cgroup"
  echo 100000 >"$cgroup/cpu.cfs_period_us"
  echo $((cap * 1000)) >"$cgroup/cpu.cfs_quota_us"
fi
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$cgroup" ] && rmdir "$cgroup" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 bench/gen.py "$work" 1000 100000
cat >"$work/regions.toml" <<CONF
[[regions.client]]
cidr = "10.99.0.0/16"
region = "r0"
CONF

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

# Starts a server inside the cgroup (every thread it makes is capped too), pinned to CPU 0.
start() {
  local server=$1 shape=$2 enter=""
  [ -n "$cgroup" ] && enter="echo \$\$ > $cgroup/cgroup.procs;"
  local zones=zones config=""
  [ "$shape" = ecs ] && zones=zones-regions config="--config $work/regions.toml"
  case $server in
    signpost) sh -c "$enter exec taskset -c 0 target/release/signpost serve --dns-addr 127.0.0.1:$port_sp \
                --zones $work/$zones $config --data-dir $work/data-$shape --http-addr 127.0.0.1:0 \
                --log-level warn" 2>"$work/signpost.log" & ;;
    baseline) sh -c "$enter exec taskset -c 0 $SIGNPOST_BASELINE serve --dns-addr 127.0.0.1:$port_sp \
                --zones $work/$zones $config --data-dir $work/base-$shape --http-addr 127.0.0.1:0 \
                --log-level warn" 2>"$work/baseline.log" & ;;
    nsd) sh -c "$enter exec taskset -c 0 nsd -d -c $work/nsd.conf" 2>"$work/nsd.err" & ;;
    knot) sh -c "$enter exec taskset -c 0 knotd -c $work/knot.conf" 2>"$work/knot.err" & ;;
  esac
  server_pid=$!
  local port; port=$(port_of "$server")
  for _ in $(seq 100); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" svc1.service.local A >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$server did not start" >&2; exit 1
}
port_of() { case $1 in signpost|baseline) echo $port_sp;; nsd) echo $port_nsd;; knot) echo $port_knot;; esac; }
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

# dnsperf's options for a query shape.
# shellcheck source=bench/shapes.sh
. bench/shapes.sh

# CPU seconds (user + system) the server has used so far: every process of its cgroup (NSD
# answers from a child process), or the process and its children when uncapped.
cpu_of() {
  local pids
  if [ -n "$cgroup" ]; then pids=$(cat "$cgroup/cgroup.procs"); else pids="$server_pid $(pgrep -P "$server_pid" || true)"; fi
  # Fields after the command name, which may hold spaces ("nsd: server 1"): utime, stime are 12, 13.
  for p in $pids; do sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null; done | awk '{t += $12 + $13} END {printf "%.2f", t / 100}'
}

# Prints: qps mean_ms p99_ms lost cpu_us_per_query
measure() {
  local port=$1 flags out
  flags=$(shape_flags "$2")
  # shellcheck disable=SC2086
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c 20 -q 500 -T 2 -l 2 $flags >/dev/null 2>&1 # warm-up
  local before after
  before=$(cpu_of)
  # shellcheck disable=SC2086
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c 20 -q 500 -T 2 -l "$seconds" $flags)
  after=$(cpu_of)
  local qps mean lost completed
  qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
  mean=$(awk '/Average Latency/ {printf "%.3f", $4 * 1000; exit}' <<<"$out")
  lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
  completed=$(awk '/Queries completed/ {print $3}' <<<"$out")
  local cpu
  cpu=$(awk -v a="$before" -v b="$after" -v n="$completed" 'BEGIN {printf "%.2f", (b - a) * 1e6 / n}')
  # p99 from per-query latencies of a shorter run (-v prints each response).
  local p99
  # shellcheck disable=SC2086
  p99=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -c 20 -q 500 -T 2 -l 3 -v $flags 2>/dev/null \
        | awk '/^> / {print $NF}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int(NR*0.99)] * 1000}')
  echo "$qps $mean $p99 $lost $cpu"
}

# Prints: mean_ms p99_ms at a steady 1,000 QPS.
latency() {
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -c 4 -Q 1000 -l 5 -v 2>/dev/null \
    | awk '/^> / {print $NF}' | sort -n \
    | awk '{a[NR]=$1; s+=$1} END {printf "%.3f %.3f", s / NR * 1000, a[int(NR*0.99)] * 1000}'
}

servers=(signpost nsd)
[ $knot = 1 ] && servers+=(knot)
[ -n "${SIGNPOST_BASELINE:-}" ] && servers+=(baseline)
IFS=, read -r -a shape_list <<<"$shapes"
declare -A qps_sum lost_sum
echo "cap: ${cap}% of CPU 0 per server (0 = none); dnsperf on CPU 1"
printf '%-6s %-7s %-9s %12s %9s %9s %7s %9s %16s\n' round shape server QPS mean_ms p99_ms lost cpu_us/q "1kQPS mean/p99"
for r in $(seq "$rounds"); do
  order=("${servers[@]}")
  if [ $((r % 2)) = 0 ]; then mapfile -t order < <(printf '%s\n' "${servers[@]}" | tac); fi
  for shape in "${shape_list[@]}"; do
    for s in "${order[@]}"; do
      start "$s" "$shape"
      read -r qps mean p99 lost cpu <<<"$(measure "$(port_of "$s")" "$shape")"
      steady="-"
      if [ "$shape" = plain ]; then steady=$(latency "$(port_of "$s")" | tr ' ' /); fi
      stop
      printf '%-6s %-7s %-9s %12s %9s %9s %7s %9s %16s\n' "$r" "$shape" "$s" "$qps" "$mean" "$p99" "$lost" "$cpu" "$steady"
      key="$shape/$s"
      qps_sum[$key]=$(awk -v a="${qps_sum[$key]:-0}" -v b="$qps" 'BEGIN {print a + b}')
      lost_sum[$key]=$(( ${lost_sum[$key]:-0} + lost ))
    done
  done
done
for shape in "${shape_list[@]}"; do
  for s in "${servers[@]}"; do
    [ "$s" = signpost ] && continue
    awk -v a="${qps_sum[$shape/signpost]}" -v b="${qps_sum[$shape/$s]}" -v n="$s" -v sh="$shape" \
      -v la="${lost_sum[$shape/signpost]}" -v lb="${lost_sum[$shape/$s]}" \
      'BEGIN {printf "%-7s signpost/%s QPS ratio: %.2f (lost: signpost %d, %s %d)\n", sh, n, a / b, la, n, lb}'
  done
done
