#!/usr/bin/env bash
# 10,000 HTTP checks at 1 s against a local target: probe lateness and CPU.
# Usage: bench/health.sh [CHECKS] [INTERVAL] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet --example probe_bench -- "${1:-10000}" "${2:-1s}" "${3:-30}"
