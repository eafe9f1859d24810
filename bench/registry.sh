#!/usr/bin/env bash
# Registry benchmarks through the built binary: registration throughput (64 clients, durable
# writes), RSS with INSTANCES instances, restart time with them stored, and DNS QPS while 100
# registrations/s churn the registry. Server pinned to CPU 0, load generators to CPU 1.
# Usage: bench/registry.sh [INSTANCES]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dnsperf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null; }
cargo build --release --quiet
cargo build --release --quiet --example registry_bench
taskset -c 1 target/release/examples/registry_bench target/release/signpost "${1:-100000}"
