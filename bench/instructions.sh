#!/usr/bin/env bash
# Instructions per DNS query, counted by valgrind (callgrind's Ir): a figure that other load on
# the machine cannot move, unlike QPS or CPU time, for telling whether a change made queries
# cheaper or dearer. Compares this build with SIGNPOST_BASELINE on the DNS bench's data
# (bench/gen.py: 1,000 services x 3 instances), for the query shapes of bench/dns.sh. Each
# server runs twice under callgrind, answering no queries and then QUERIES of them; the
# difference over QUERIES is the cost of a query, start-up and idle work taken out.
#
# Usage: SIGNPOST_BASELINE=path/to/older/signpost bench/instructions.sh [QUERIES] [SHAPES]
#        (defaults: 20000 queries; shapes plain,cookie,ecs)
# Needs valgrind, dnsperf and dig; the release build of this tree (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
queries=${1:-20000}
shapes=${2:-plain,cookie,ecs}
baseline=${SIGNPOST_BASELINE:?set SIGNPOST_BASELINE to the older signpost binary}
for tool in valgrind dnsperf dig; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install valgrind dnsperf dnsutils" >&2; exit 1; }
done
[ -x target/release/signpost ] || { echo "build first: cargo build --release" >&2; exit 1; }
# shellcheck source=bench/shapes.sh
. bench/shapes.sh
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
python3 bench/gen.py "$work" 1000 "$queries" >/dev/null
printf '[[regions.client]]\ncidr = "10.99.0.0/16"\nregion = "r0"\n' >"$work/regions.toml"
port=$((20000 + RANDOM % 20000))

# Total Ir of one server run answering `count` queries of `shape`.
run() {
  local binary=$1 shape=$2 count=$3 out="$work/cg.out" zones=zones config="" flags
  flags=$(shape_flags "$shape")
  [ "$shape" = ecs ] && zones=zones-regions config="--config $work/regions.toml"
  rm -rf "$work/data" "$out"
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" serve --dns-addr "127.0.0.1:$port" \
    --zones "$work/$zones" $config --data-dir "$work/data" --http-addr 127.0.0.1:0 --log-level warn \
    2>"$work/valgrind.log" &
  local pid=$!
  for _ in $(seq 600); do
    dig +time=1 +tries=1 -p "$port" @127.0.0.1 svc1.service.local A +short 2>/dev/null | grep -qE '^[0-9]' && break
    sleep 0.1
  done
  if [ "$count" -gt 0 ]; then
    head -n "$count" "$work/queries.txt" >"$work/q.txt"
    # shellcheck disable=SC2086
    # Under callgrind the first answers come late and dnsperf counts some as lost; the server
    # still answers each one, which is what is counted.
    dnsperf -s 127.0.0.1 -p "$port" -d "$work/q.txt" -n 1 -c 1 -q 20 -t 10 $flags >"$work/dnsperf.out" 2>/dev/null
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  sed -n 's/^summary: //p; s/^totals: //p' "$out" | head -n 1
}

printf '%-7s %-9s %14s\n' shape server "Ir/query"
IFS=, read -ra list <<<"$shapes"
for shape in "${list[@]}"; do
  declare -A per=()
  for server in signpost baseline; do
    binary=target/release/signpost
    [ "$server" = baseline ] && binary=$baseline
    idle=$(run "$binary" "$shape" 0)
    busy=$(run "$binary" "$shape" "$queries")
    per[$server]=$(((busy - idle) / queries))
    printf '%-7s %-9s %14d\n' "$shape" "$server" "${per[$server]}"
  done
  awk -v a="${per[signpost]}" -v b="${per[baseline]}" -v s="$shape" \
    'BEGIN { printf "%-7s signpost/baseline instructions per query: %.2f\n", s, a / b }'
done
