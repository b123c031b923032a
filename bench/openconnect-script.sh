#!/bin/sh
# openconnect --script for the benchmark. openconnect runs it with `reason` and the tunnel settings
# in the environment. It sets the TUN device's address and MTU and routes BENCH_ROUTE (the lan
# behind the headend) through it, and nothing else: no DNS changes, no other routes, so it touches
# only the client namespace. Debian's vpnc-script would also rewrite resolv.conf.
set -eu

case "${reason:-}" in
  pre-init)
    ;;
  connect)
    : "${TUNDEV:?openconnect did not set TUNDEV}"
    : "${INTERNAL_IP4_ADDRESS:?the headend assigned no IPv4 address}"
    if [ -n "${INTERNAL_IP4_MTU:-}" ]; then
      ip link set dev "$TUNDEV" mtu "$INTERNAL_IP4_MTU"
    fi
    ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
    ip link set dev "$TUNDEV" up
    ip route replace "${BENCH_ROUTE:-198.18.10.0/24}" dev "$TUNDEV"
    ;;
  disconnect)
    # openconnect deletes the TUN device after this, which removes its address and route.
    ;;
  reconnect | attempt-reconnect)
    ;;
  *)
    echo "openconnect-script.sh: unknown reason '${reason:-}'" >&2
    exit 1
    ;;
esac
