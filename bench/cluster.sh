#!/usr/bin/env bash
# Cluster mode at scale (issue 21): a 3-member etcd on loopback with its data in tmpfs
# (/dev/shm), 3 replicas of the release build, and each figure printed against its target:
# acknowledged registrations/s (64 clients spread over the replicas), the same while filling to
# 100,000 instances with the CPU each write costs the replicas and etcd, a 4th replica's join
# time at that size, RSS per replica, one replica's DNS QPS under 200 writes/s against quiet
# (three times each, interleaved, dnsperf -q 2000; that replica's DNS thread alone on CPU 0,
# capped at 50%, its other threads on CPU 1; then the whole replica in that half CPU; its CPU,
# its UDP thread's and CPU 0's printed; needs dnsperf), propagation (a write's 200 on one
# replica to the next replica's DNS answer) at 2,000 writes/s of churn for 60 s, RSS after it,
# and probing: 10,000 HTTP checks (10 s interval) shared by 3 replicas, how many probes each
# check gets, and the share that moves and the longest gap when a replica is killed and when
# one joins. Otherwise nothing is pinned: the 2 CPUs are shared by etcd, the replicas and the
# load tool, as a new user's machine would be. Takes about 12 minutes; --small about 5.
#
# Usage: bench/cluster.sh [--small] [--skip-writes] [--rate N] [--seconds N] [--clients N]
#                         [--checks N] [--interval SECONDS] [--probes]
#        --probes: only the probing figures; --checks 0: none of them
#        SIGNPOST_BASELINE=path/to/older/signpost bench/cluster.sh   (writes/s and joins of both, alternating)
# Needs etcd (Debian: etcd-server) and protoc (protobuf-compiler) for the cluster build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null || { echo "bench/cluster.sh needs etcd (apt-get install etcd-server)" >&2; exit 1; }
cargo build --release --quiet --features cluster
cargo build --release --quiet --features cluster --example cluster_bench
exec target/release/examples/cluster_bench target/release/signpost "$@"
