#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian package providing each command the tests run.
declare -A needs=([dig]=dnsutils [curl]=curl)
# Forwarding tests resolve through glibc and Python in a private mount namespace.
needs+=([unshare]=util-linux [mount]=mount [getent]=libc-bin [python3]=python3)
# Real Consul clients (tests/it/clients.rs): py-consul from PyPI, node-consul from npm.
needs+=([node]=nodejs [npm]=npm)
# The status page's browser test (tests/it/ui_browser.rs): headless Chromium via chromedriver.
needs+=([chromium]=chromium [chromedriver]=chromium-driver)
# Cluster mode: etcd-client's build needs protoc; tests/it/cluster.rs runs a real 3-member etcd,
# and tests/it/cluster_secure.rs one with TLS and authentication, whose users etcdctl makes.
needs+=([protoc]=protobuf-compiler [etcd]=etcd-server [etcdctl]=etcd-client)
# Zone transfers (tests/it/transfer.rs): NSD as a secondary that mirrors signpost.
needs+=([nsd]=nsd)
# The Debian package (tests/it/package.rs): lintian, the capability tools, man, systemd-analyze.
needs+=([lintian]=lintian [getcap]=libcap2-bin [man]=man-db [systemd-analyze]=systemd [setpriv]=util-linux)
# EDNS options (tests/it/edns.rs) with Knot's kdig beside dig.
needs+=([kdig]=knot-dnsutils)
# /metrics is checked with the Prometheus project's own lint (tests/it/metrics.rs).
needs+=([promtool]=prometheus)
# DNS-SD with a real client (tests/it/dnssd_avahi.rs): avahi-daemon in wide-area mode on a
# D-Bus daemon of the test's, and avahi-browse.
needs+=([avahi-daemon]=avahi-daemon [avahi-browse]=avahi-utils [dbus-daemon]=dbus-daemon [dbus-send]=dbus-bin)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# examples/compose.yaml is parsed with PyYAML.
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Consul clients go into target/ (not the system), once per pinned version.
PY_CONSUL=1.8.0
NODE_CONSUL=2.0.1
clients=target/test-clients
if [ ! -d "$clients/python/py_consul-$PY_CONSUL.dist-info" ]; then
  echo "installing py-consul $PY_CONSUL into $clients/python"
  rm -rf "$clients/python"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$clients/python" "py-consul==$PY_CONSUL"
fi
if ! grep -qs "\"version\": \"$NODE_CONSUL\"" "$clients/node/node_modules/consul/package.json"; then
  echo "installing node-consul $NODE_CONSUL into $clients/node"
  rm -rf "$clients/node"
  mkdir -p "$clients/node"
  npm install --silent --no-audit --no-fund --prefix "$clients/node" "consul@$NODE_CONSUL"
fi

# The example binaries that tests/it/examples.rs runs (`--all-targets` builds examples as tests,
# not as the runnable binaries in target/debug/examples/).
cargo build --examples --features cluster
# Everything, cluster mode included (the feature only adds code; every other test runs the same).
cargo test --all-targets --features cluster "$@"
# The default build (no protoc needed) has its own refusal of --store; its unit tests check it.
cargo test --lib "$@"
