#!/usr/bin/env bash
# The CPU one write costs a replica, split between the replica that takes it over HTTP and one
# that only hears of it through etcd's watch: 1 etcd member (data in tmpfs), replicas A and B,
# INSTANCES registered through B, then the cluster bench's churn for 20 s through B (200
# writes/s: instances of one service registered and deregistered a second later, and 20 new
# services a second, each deregistered at once), and the CPU ticks (1/100 s) of A, B and etcd
# over 10 s of it, with that CPU per write (the writes counted by B's
# signpost_http_requests_total). With SERVICES 1 the fill is one service of INSTANCES, and the
# churn registers into it: what a write to a large service costs. With BASELINE, its build and
# this one alternate, ROUNDS times each.
#
# Usage: bench/replica_cpu.sh [INSTANCES] [ROUNDS] [SERVICES]     (defaults 30000, 2, 10000)
#        SIGNPOST_BASELINE=path/to/older/signpost bench/replica_cpu.sh
# Needs etcd (Debian: etcd-server), python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null || { echo "bench/replica_cpu.sh needs etcd (apt-get install etcd-server)" >&2; exit 1; }
cargo build --release --quiet --features cluster
instances=${1:-30000}
rounds=${2:-2}
services=${3:-10000}
dir=$(mktemp -d /dev/shm/signpost-replica-cpu.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  pids=()
}
trap 'cleanup; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
requests() { curl -s "127.0.0.1:$1/metrics" | awk '/^signpost_http_requests_total/ {n += $NF} END {print int(n)}'; }

# Registers instances of svc<i mod 10,000> (32 connections), or runs the churn (8).
load() {
  python3 - "$@" "$services" <<'PY'
import http.client, json, sys, threading, time
mode, port, n, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
churned = "svc0" if services == 1 else "churn"
def put(c, path, body=None):
    c.request("PUT", path, body); r = c.getresponse(); r.read(); return r.status
def fill(t, T):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(t, n, T):
        body = json.dumps({"Name": f"svc{i % services}", "ID": f"i{i}", "Port": 8080, "Tags": ["v1"],
                           "Address": f"10.{i//65536%256}.{i//256%256}.{i%256}", "Meta": {"version": "1.0"}})
        assert put(c, "/v1/agent/service/register", body) == 200
def churn(t, T, rate=200):
    c = http.client.HTTPConnection("127.0.0.1", port); t0 = time.time(); k = t
    while k < rate * n:
        time.sleep(max(0, t0 + k / rate - time.time()))
        if k % 2 == 0:
            sample = (k // 2) % 5 == 0
            name, id = (f"p{k}", f"p{k}") if sample else (churned, f"c{k}")
            put(c, "/v1/agent/service/register", json.dumps({"Name": name, "ID": id, "Address": "10.9.0.1", "Port": 80}))
            if sample:
                put(c, f"/v1/agent/service/deregister/p{k}")
        else:
            put(c, f"/v1/agent/service/deregister/c{k - 1 - rate}")
        k += T
T = 32 if mode == "fill" else 8
ts = [threading.Thread(target=fill if mode == "fill" else churn, args=(t, T)) for t in range(T)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
}

run() {
  local binary=$1 label=$2 client peer a b e
  rm -rf "${dir:?}"/*; mkdir -p "$dir/zones"
  client=$(free_port); peer=$(free_port)
  etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" --log-level error --logger zap --quota-backend-bytes 4294967296 >/dev/null 2>&1 &
  e=$!; pids+=("$e")
  local ports=()
  for r in a b; do
    local http; http=$(free_port); ports+=("$http")
    "$binary" serve --store "etcd://127.0.0.1:$client" --dns-addr 127.0.0.1:0 --http-addr "127.0.0.1:$http" \
      --data-dir "$dir/$r" --zones "$dir/zones" >"$dir/$r.log" 2>&1 &
    pids+=("$!")
  done
  a=${pids[1]}; b=${pids[2]}
  for http in "${ports[@]}"; do
    for _ in $(seq 300); do curl -sf "127.0.0.1:$http/readyz" >/dev/null && break; sleep 0.1; done
    curl -sf "127.0.0.1:$http/readyz" >/dev/null || { echo "a replica did not get ready; its log: $dir" >&2; cat "$dir"/*.log >&2; exit 1; }
  done
  load fill "${ports[1]}" "$instances"
  load churn "${ports[1]}" 20 &
  local churning=$!
  sleep 3
  local a0 b0 e0 w0 da db de dw; a0=$(ticks "$a"); b0=$(ticks "$b"); e0=$(ticks "$e"); w0=$(requests "${ports[1]}")
  sleep 10
  db=$(($(ticks "$b") - b0)); da=$(($(ticks "$a") - a0)); de=$(($(ticks "$e") - e0)); dw=$(($(requests "${ports[1]}") - w0))
  printf '%-10s  B (takes the writes) %4d ticks %5d us/write   A (watches) %4d ticks %5d us/write   etcd %4d ticks   %d writes in 10 s; %d instances in %d services\n' \
    "$label" "$db" $((db * 10000 / dw)) "$da" $((da * 10000 / dw)) "$de" "$dw" "$instances" "$services"
  wait "$churning"
  cleanup
}

for round in $(seq "$rounds"); do
  if [ -n "${SIGNPOST_BASELINE:-}" ]; then run "$SIGNPOST_BASELINE" baseline; fi
  run target/release/signpost "this build"
done
