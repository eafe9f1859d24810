#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian package providing each command the tests run.
declare -A needs=([dig]=dnsutils [curl]=curl)
# Forwarding tests resolve through glibc and Python in a private mount namespace.
needs+=([unshare]=util-linux [mount]=mount [getent]=libc-bin [python3]=python3)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo test --all-targets "$@"
