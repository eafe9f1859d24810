#!/usr/bin/env bash
# Cluster mode at scale (issue 21): a 3-member etcd on loopback with its data in tmpfs
# (/dev/shm), 3 replicas of the release build, and each figure printed against its target:
# acknowledged registrations/s (64 clients spread over the replicas), the same while filling to
# 100,000 instances, a 4th replica's join time at that size, RSS per replica, propagation
# (a write's 200 on one replica to the next replica's DNS answer) at 2,000 writes/s of churn for
# 60 s, and RSS after it. Nothing is pinned: the 2 CPUs are shared by etcd, the replicas and the
# load tool, as a new user's machine would be. Takes about 4 minutes; --small about 1.
#
# Usage: bench/cluster.sh [--small]
#        SIGNPOST_BASELINE=path/to/older/signpost bench/cluster.sh   (writes/s of both, alternating)
# Needs etcd (Debian: etcd-server) and protoc (protobuf-compiler) for the cluster build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null || { echo "bench/cluster.sh needs etcd (apt-get install etcd-server)" >&2; exit 1; }
cargo build --release --quiet --features cluster
cargo build --release --quiet --features cluster --example cluster_bench
exec target/release/examples/cluster_bench target/release/signpost "$@"
