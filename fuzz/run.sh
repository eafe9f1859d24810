#!/usr/bin/env bash
# Runs each fuzz target for a given time: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# (default 600 s; targets dns, edns, filter, zone_file, registration). libFuzzer through libfuzzer-sys on the
# stable toolchain: the coverage instrumentation cargo-fuzz would ask nightly for is passed as
# plain -C flags, and --target keeps it away from build scripts and proc macros.
# Corpora grow in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>); crashes land in
# fuzz/artifacts/<target>/. The last line per target gives executions and findings.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dns edns filter zone_file registration)
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
cargo build --release --target "$triple" --bins
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  log="artifacts/$t/run.log"
  status=0
  "target/$triple/release/$t" "corpus/$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "artifacts/$t" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
  echo "$t: ${runs:-?} executions in ${seconds}s, exit $status, $crashes finding(s) in fuzz/artifacts/$t"
done
