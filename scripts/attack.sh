#!/usr/bin/env bash
# Attack tests (issue 7): sqlmap, slowhttptest and testssl.sh against a release server on
# loopback with a seeded envelope; see scripts/attack.py. Installs the three tools (Debian
# packages) when missing. Exit 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v sqlmap >/dev/null || need_apt+=(sqlmap)
command -v slowhttptest >/dev/null || need_apt+=(slowhttptest)
command -v testssl >/dev/null || need_apt+=(testssl.sh)
# Not an attack tool: the load generator of bench-edge, which .ci/run runs next.
command -v wrk >/dev/null || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
cargo build --release --locked --bin sigillum
exec python3 scripts/attack.py
