#!/usr/bin/env bash
# The demo: starts a throwaway ocserv headend in network namespaces, connects acvpn to it, shows
# the tunnel carrying ping and TCP to a host that is reachable only through the tunnel, logs off
# and tears everything down. Needs root. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [[ "${ACVPN_DEMO_SKIP_INSTALL:-}" != 1 ]]; then
  bash scripts/install-deps.sh
fi

prefix=acvpn-demo
state=$(mktemp -d /tmp/acvpn-demo.XXXXXX)
client_pid=

teardown() {
  if [[ -n "$client_pid" ]] && kill -0 "$client_pid" 2>/dev/null; then
    kill -INT "$client_pid" 2>/dev/null || true
    wait "$client_pid" 2>/dev/null || true
  fi
  bash scripts/headend/headend.sh down --prefix "$prefix" --state-dir "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap teardown EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting a local ocserv headend in network namespaces ($prefix-*)"
bash scripts/headend/headend.sh sweep --prefix "$prefix" >/dev/null 2>&1 || true
bash scripts/headend/headend.sh up --prefix "$prefix" --state-dir "$state"
# shellcheck disable=SC1091
source "$state/headend.env"

step "connecting: acvpn connect --user $VPN_USER --passwd-on-stdin --authgroup staff --cafile ca.pem $HEADEND_URL"
ip netns exec "$CLIENT_NS" node "$root/bin/acvpn.js" connect \
  --user "$VPN_USER" --passwd-on-stdin --authgroup staff --cafile "$CAFILE" --non-interactive \
  --interface acvpn0 --state-dir "$state/client-state" --run-dir "$state/client-run" \
  "$HEADEND_URL" <"$VPN_PASSWORD_FILE" 2>"$state/acvpn.log" &
client_pid=$!

for _ in $(seq 1 100); do
  grep -q '"state":"connected"\|state=connected' "$state/acvpn.log" 2>/dev/null && break
  kill -0 "$client_pid" 2>/dev/null || { cat "$state/acvpn.log"; echo "acvpn exited early"; exit 1; }
  sleep 0.1
done
grep -E 'INFO|WARN|ERROR' "$state/acvpn.log" | sed 's/^/  acvpn: /'

step "the tunnel device and the routes acvpn installed"
ip netns exec "$CLIENT_NS" ip addr show dev acvpn0
ip netns exec "$CLIENT_NS" ip route

step "ping $TARGET_HOST (reachable only through the tunnel)"
ip netns exec "$CLIENT_NS" ping -c 3 -W 2 "$TARGET_HOST"

step "TCP through the tunnel: echo service on $TARGET_HOST:$TARGET_TCP_PORT"
ip netns exec "$CLIENT_NS" node -e '
  const socket = require("node:net").connect(Number(process.argv[2]), process.argv[1], () => socket.end("hello through acvpn\n"));
  socket.on("data", (data) => process.stdout.write("  echoed: " + data));
  socket.setTimeout(5000, () => { console.error("timed out"); process.exit(1); });
' "$TARGET_HOST" "$TARGET_TCP_PORT"

step "logging off (SIGINT)"
kill -INT "$client_pid"
wait "$client_pid" && status=0 || status=$?
client_pid=
echo "  acvpn exited with status $status"
tail -n 3 "$state/acvpn.log" | sed 's/^/  acvpn: /'
echo "  routes after logoff:"
ip netns exec "$CLIENT_NS" ip route | sed 's/^/    /'
step "done; tearing the headend down"
