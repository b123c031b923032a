#!/usr/bin/env bash
# Installs everything acvpn's build, demo and tests need on a fresh Debian 12 machine, then
# installs the npm dependencies and builds the TUN addon and the TypeScript (npm ci runs
# `prepare`). Needs root for apt-get; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  ocserv          # the headend for the demo and the integration tests
  openconnect     # the reference client: headend smoke test and benchmarks
  gnutls-bin      # certtool for the throwaway PKI, gnutls-serv as a DTLS peer
  iproute2        # ip netns, veth, routes
  nftables        # isolating the test networks, dropping UDP in fault tests
  iputils-ping
  vpnc-scripts    # Debian's vpnc-script, for --script compatibility tests
  iperf3          # benchmarks
  procps
  python3 make g++  # node-gyp
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ocserv's package starts a system-wide instance on port 443 of the host; the project runs its own
# inside network namespaces and needs none.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ocserv 2>/dev/null; then
  systemctl stop ocserv || true
fi

npm ci
