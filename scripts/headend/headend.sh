#!/usr/bin/env bash
# Test and demo headend: ocserv 1.1 with a throwaway PKI, one user and split routes.
#
#   headend.sh up    --prefix P --state-dir DIR [--full-tunnel] [--dpd SECONDS]
#                    [--no-split-exclude] [--ipv6] [--dns-servers] [--split-dns MODE] [--dns-outside]
#                    [--routed-client]
#   headend.sh down  --prefix P --state-dir DIR
#   headend.sh restart-ocserv --prefix P --state-dir DIR
#   headend.sh sweep --prefix P
#   headend.sh serve --state-dir DIR [--full-tunnel]
#
# `up` builds three network namespaces joined by veth pairs and runs ocserv in the middle one:
#
#   P-cli  to-hub 198.18.0.2/24 ── to-cli 198.18.0.1/24   P-hub (ocserv on TCP+UDP 443)
#                                  to-lan  198.18.10.1/24 ── to-hub  P-lan 198.18.10.20/24 (echo :7777)
#                                                                          198.18.10.10/24 (DNS address)
#                                                                          198.18.10.200/24 (excluded)
#                                  to-lan2 198.18.20.1/24 ── to-hub2 P-lan 198.18.20.20/24
#
# The hub forwards between the tunnel and the lan but drops anything between its client veth and
# the lan, so lan hosts are reachable only through the tunnel. `up` writes DIR/headend.env (KEY=VALUE)
# for the caller. `down` and `sweep` are idempotent. `serve` (the container entrypoint) makes the
# same PKI and configuration and runs ocserv in the foreground on the host's own network.
set -euo pipefail

readonly SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

readonly HEADEND_NAME=vpn.rig.test
readonly HEADEND_IP=198.18.0.1
readonly CLIENT_IP=198.18.0.2
readonly HUB_LAN_IP=198.18.10.1
readonly HUB_LAN2_IP=198.18.20.1
readonly TARGET_HOST=198.18.10.20
readonly TARGET_TCP_PORT=7777
readonly DNS_SERVER=198.18.10.10
readonly SECOND_LAN_HOST=198.18.20.20
readonly EXCLUDED_HOST=198.18.10.200
readonly VPN_POOL=198.19.0.0/24
# --ipv6: the same picture in fd00::/8. The client still reaches the headend over IPv4, and its
# IPv6 link to the hub gives IPv6 split-excludes an original path. fd00:10::c8 (200) lies in the
# excluded fd00:10::c0/122, as 198.18.10.200 lies in 198.18.10.192/26.
readonly CLIENT_IP6=fd00:18::2
readonly HUB_CLIENT_IP6=fd00:18::1
readonly HUB_LAN_IP6=fd00:10::1
readonly TARGET_HOST6=fd00:10::20
readonly EXCLUDED_HOST6=fd00:10::c8
readonly VPN_POOL6=fd00:acf::/64
# --dns-outside: the tunnel DNS server sits in 198.18.30.0/24, a lan network no split-include covers.
readonly HUB_LAN3_IP=198.18.30.1
readonly OUTSIDE_DNS_SERVER=198.18.30.10
# --routed-client: the client's link moves to 198.18.1.0/24, so it reaches the headend's address
# through the hub as its router instead of on its own link.
readonly ROUTED_CLIENT_IP=198.18.1.2
readonly HUB_ROUTER_IP=198.18.1.1
# --dns-servers: the tunnel DNS server answers names under SPLIT_DNS_DOMAINS with the lan target,
# and the local one (on the hub's client-side address, the client namespace's resolv.conf
# nameserver) answers every name with LOCAL_DNS_ANSWER.
readonly SPLIT_DNS_DOMAINS='corp.example lab.example'
readonly DEFAULT_DOMAIN=corp.example
readonly LOCAL_DNS_SERVER=$HEADEND_IP
readonly LOCAL_DNS_ANSWER=192.0.2.1
readonly VPN_USER=alice
# NOTE: ocserv 1.1.6's plain backend cuts the LAST group of a passwd line at its last space
# ("Example-VPN (Full"), so the group with spaces goes first. A login without a group choice
# therefore lands in that group.
readonly VPN_GROUPS='Example-VPN (Full Tunnel),staff'

# ocserv -d level 3 logs each login, CONNECT and session end. Levels 8 and above log secrets
# (DEBUG_SENSITIVE in ocserv 1.1's vpn.h).
readonly OCSERV_DEBUG_LEVEL=3
readonly LISTEN_TIMEOUT_TENTHS=100
readonly KILL_TIMEOUT_TENTHS=50

log() { printf 'headend: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: headend.sh up    --prefix P --state-dir DIR [--full-tunnel] [--dpd SECONDS]
                         [--no-split-exclude] [--ipv6] [--dns-servers]
                         [--split-dns list|none-default-domain|none] [--dns-outside]
                         [--routed-client]
                         [--rekey SECONDS] [--rekey-method ssl|new-tunnel] [--cert-auth] [--cert-and-password]
       headend.sh down  --prefix P --state-dir DIR
       headend.sh sweep --prefix P
       headend.sh serve --state-dir DIR [--full-tunnel]
EOF
  exit 2
}

# ---------------------------------------------------------------------------------------------
# Arguments

prefix=''
state_dir=''
full_tunnel=false
# Dead-peer-detection interval ocserv announces; fault tests shorten it so a lost path is noticed
# in seconds instead of minutes.
dpd=60
split_exclude=true
ipv6=false
dns_servers=false
# What ocserv announces besides the DNS server. `list` is split-dns for both domains plus the
# default domain, `none-default-domain` the default domain alone, and `none` neither.
split_dns=list
dns_outside=false
routed_client=false
# Rekey period and method ocserv announces; rekey tests shorten the period.
rekey_time=172800
# Which server certificate the headend presents; trust tests ask for a faulty one.
server_cert_kind=valid
rekey_method=ssl
# --cert-auth: ocserv accepts only client certificates (user name from the CN), and the state
# directory gets the user's certificate as PKCS#12 in modern (AES-256) and legacy (RC2/3DES) form.
cert_auth=false
# With --cert-and-password, ocserv asks for both the client certificate and the password.
cert_and_password=false

parse_options() {
  while (($# > 0)); do
    case "$1" in
      --prefix) (($# >= 2)) || usage; prefix="$2"; shift 2 ;;
      --state-dir) (($# >= 2)) || usage; state_dir="$2"; shift 2 ;;
      --full-tunnel) full_tunnel=true; shift ;;
      --dpd) (($# >= 2)) || usage; [[ "$2" =~ ^[1-9][0-9]{0,4}$ ]] || die "invalid --dpd '$2': use whole seconds"; dpd="$2"; shift 2 ;;
      --no-split-exclude) split_exclude=false; shift ;;
      --ipv6) ipv6=true; shift ;;
      --dns-servers) dns_servers=true; shift ;;
      --split-dns)
        (($# >= 2)) || usage
        [[ "$2" =~ ^(list|none-default-domain|none)$ ]] ||
          die "invalid --split-dns '$2': use list, none-default-domain or none"
        split_dns="$2"; shift 2 ;;
      --dns-outside) dns_outside=true; shift ;;
      --routed-client) routed_client=true; shift ;;
      --rekey) (($# >= 2)) || usage; [[ "$2" =~ ^[1-9][0-9]{0,5}$ ]] || die "invalid --rekey '$2': use whole seconds"; rekey_time="$2"; shift 2 ;;
      --server-cert) (($# >= 2)) || usage; [[ "$2" =~ ^(valid|self-signed|expired|wrong-name)$ ]] || die "invalid --server-cert '$2': use valid, self-signed, expired or wrong-name"; server_cert_kind="$2"; shift 2 ;;
      --cert-auth) cert_auth=true; shift ;;
      --cert-and-password) cert_auth=true; cert_and_password=true; shift ;;
      --rekey-method) (($# >= 2)) || usage; [[ "$2" =~ ^(ssl|new-tunnel)$ ]] || die "invalid --rekey-method '$2': use ssl or new-tunnel"; rekey_method="$2"; shift 2 ;;
      *) log "unknown option: $1"; usage ;;
    esac
  done
}

require_prefix() {
  [[ -n "$prefix" ]] || { log 'missing --prefix'; usage; }
  # The prefix becomes part of namespace names and of paths under /etc/netns.
  [[ "$prefix" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$ ]] ||
    die "invalid --prefix '$prefix': use 1-40 letters, digits, '-' or '_'"
}

require_state_dir() {
  [[ -n "$state_dir" ]] || { log 'missing --state-dir'; usage; }
  # Paths go unquoted into headend.env and into the ocserv configuration.
  [[ "$state_dir" =~ ^/[A-Za-z0-9_./-]+$ ]] ||
    die "invalid --state-dir '$state_dir': use an absolute path of letters, digits, '_', '.', '/', '-'"
}

# ---------------------------------------------------------------------------------------------
# PKI, user and ocserv configuration (shared by `up` and `serve`)

# Creates a CA and a server certificate for vpn.rig.test and 198.18.0.1. Existing files are kept,
# so a container restarted on the same volume keeps its pin.
make_pki() {
  local dir="$1"
  [[ -s "$dir/ca.pem" && -s "$dir/server-cert.pem" && -s "$dir/server-key.pem" ]] && return 0

  cat >"$dir/ca.tmpl" <<'EOF'
cn = "acvpn test headend CA"
organization = "acvpn test rig"
serial = 1
expiration_days = 30
ca
cert_signing_key
crl_signing_key
EOF
  cat >"$dir/server.tmpl" <<EOF
cn = "$HEADEND_NAME"
organization = "acvpn test rig"
serial = 2
expiration_days = 30
dns_name = "$HEADEND_NAME"
ip_address = "$HEADEND_IP"
tls_www_server
signing_key
encryption_key
EOF

  # Keys stay readable by root only: of ocserv's processes only sec-mod, which keeps root, reads
  # the server key, and workers send it signing requests.
  (
    umask 077
    certtool --generate-privkey --key-type rsa --bits 2048 --outfile "$dir/ca-key.pem"
    certtool --generate-privkey --key-type rsa --bits 2048 --outfile "$dir/server-key.pem"
  ) 2>/dev/null
  certtool --generate-self-signed --load-privkey "$dir/ca-key.pem" \
    --template "$dir/ca.tmpl" --outfile "$dir/ca.pem" >/dev/null 2>&1
  case "$server_cert_kind" in
    valid) ;;
    # Trust tests: the same name and key, with one thing wrong.
    expired) sed -i 's/^expiration_days = .*/expiration_date = "2020-01-02 00:00:00"\nactivation_date = "2020-01-01 00:00:00"/' "$dir/server.tmpl" ;;
    wrong-name) sed -i "s/^cn = .*/cn = \"other.rig.test\"/; s/^dns_name = .*/dns_name = \"other.rig.test\"/; /^ip_address/d" "$dir/server.tmpl" ;;
  esac
  if [[ "$server_cert_kind" == self-signed ]]; then
    certtool --generate-self-signed --load-privkey "$dir/server-key.pem" \
      --template "$dir/server.tmpl" --outfile "$dir/server-cert.pem" >/dev/null 2>&1
  else
    certtool --generate-certificate --load-privkey "$dir/server-key.pem" \
      --load-ca-certificate "$dir/ca.pem" --load-ca-privkey "$dir/ca-key.pem" \
      --template "$dir/server.tmpl" --outfile "$dir/server-cert.pem" >/dev/null 2>&1
  fi
  chmod 0644 "$dir/ca.pem" "$dir/server-cert.pem"
}

# Prints the server key's pin in the form OpenConnect's --servercert takes:
# pin-sha256: followed by the base64 SHA-256 of the SubjectPublicKeyInfo.
server_pin() {
  local dir="$1" pin
  pin="$(certtool --certificate-info --infile "$dir/server-cert.pem" |
    awk '$1 ~ /^pin-sha256:/ { print $1; exit }')"
  [[ -n "$pin" ]] || die "certtool printed no pin-sha256 for $dir/server-cert.pem"
  printf '%s\n' "$pin"
}

# Creates the user with a random password in DIR/password (0600) and the ocpasswd file.
make_user() {
  local dir="$1" password
  if [[ ! -s "$dir/password" ]]; then
    password="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
    (umask 077 && printf '%s\n' "$password" >"$dir/password")
  fi
  password="$(head -n 1 "$dir/password")"
  # ocpasswd reads the password twice from standard input when it is not a terminal.
  printf '%s\n%s\n' "$password" "$password" |
    ocpasswd --passwd "$dir/ocpasswd" --group "$VPN_GROUPS" "$VPN_USER" >/dev/null
  chmod 0600 "$dir/ocpasswd"
}

# Creates a certificate for the user (CN = user name, TLS client usage) signed by the rig CA, and
# writes it with its key and the CA as DIR/client.p12 (AES-256-CBC, SHA-256 MAC) and
# DIR/client-legacy.p12 (RC2-40 certificates, 3DES key, SHA-1 MAC), both with the random password
# in DIR/client-cert-password. Existing files are kept.
make_client_identity() {
  local dir="$1"
  [[ -s "$dir/client.p12" && -s "$dir/client-legacy.p12" && -s "$dir/client-rsa.p12" && -s "$dir/client-cert-password" ]] && return 0

  cat >"$dir/client.tmpl" <<EOF
cn = "$VPN_USER"
organization = "acvpn test rig"
serial = 3
expiration_days = 30
tls_www_client
signing_key
EOF
  (
    umask 077
    certtool --generate-privkey --key-type ecdsa --curve secp256r1 --outfile "$dir/client-key.pem"
    head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$dir/client-cert-password"
  ) 2>/dev/null
  certtool --generate-certificate --load-privkey "$dir/client-key.pem" \
    --load-ca-certificate "$dir/ca.pem" --load-ca-privkey "$dir/ca-key.pem" \
    --template "$dir/client.tmpl" --outfile "$dir/client-cert.pem" >/dev/null 2>&1
  (
    umask 077
    openssl pkcs12 -export -name "$VPN_USER" -inkey "$dir/client-key.pem" -in "$dir/client-cert.pem" \
      -certfile "$dir/ca.pem" -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 \
      -passout "file:$dir/client-cert-password" -out "$dir/client.p12"
    openssl pkcs12 -export -legacy -name "$VPN_USER" -inkey "$dir/client-key.pem" -in "$dir/client-cert.pem" \
      -certfile "$dir/ca.pem" -passout "file:$dir/client-cert-password" -out "$dir/client-legacy.p12"
  )

  # The same user with an RSA key, in a modern file: DIR/client-rsa.p12.
  sed 's/^serial = .*/serial = 4/' "$dir/client.tmpl" >"$dir/client-rsa.tmpl"
  (umask 077 && certtool --generate-privkey --key-type rsa --bits 2048 --outfile "$dir/client-rsa-key.pem") 2>/dev/null
  certtool --generate-certificate --load-privkey "$dir/client-rsa-key.pem" \
    --load-ca-certificate "$dir/ca.pem" --load-ca-privkey "$dir/ca-key.pem" \
    --template "$dir/client-rsa.tmpl" --outfile "$dir/client-rsa-cert.pem" >/dev/null 2>&1
  (
    umask 077
    openssl pkcs12 -export -name "$VPN_USER" -inkey "$dir/client-rsa-key.pem" -in "$dir/client-rsa-cert.pem" \
      -certfile "$dir/ca.pem" -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 \
      -passout "file:$dir/client-cert-password" -out "$dir/client-rsa.p12"
  )
}

# Prints the auth line, plus what certificate authentication needs: the CA for client
# certificates and the certificate field that contains the user name (2.5.4.3 is the CN).
ocserv_auth_settings() {
  local dir="$1"
  if [[ "$cert_and_password" == true ]]; then
    # Two primary methods: ocserv requires both, the certificate first.
    printf 'auth = "certificate"\nauth = "plain[passwd=%s/ocpasswd]"\nca-cert = %s/ca.pem\ncert-user-oid = 2.5.4.3' "$dir" "$dir"
  elif [[ "$cert_auth" == true ]]; then
    printf 'auth = "certificate"\nca-cert = %s/ca.pem\ncert-user-oid = 2.5.4.3' "$dir"
  else
    printf 'auth = "plain[passwd=%s/ocpasswd]"' "$dir"
  fi
}

# Replaces each @NAME@ in a template with its value. Bash pattern substitution keeps '&', '/' and
# newlines in values literal (the replacement is quoted), which sed would not.
render_template() {
  local template="$1" output="$2" text name value
  shift 2
  text="$(<"$template")"
  while (($# > 0)); do
    name="${1%%=*}"
    value="${1#*=}"
    text="${text//@"$name"@/"$value"}"
    shift
  done
  [[ "$text" != *@[A-Z_]*@* ]] || die "unfilled placeholder left in $template"
  printf '%s\n' "$text" >"$output"
}

tunnel_dns_server() {
  if [[ "$dns_outside" == true ]]; then printf '%s' "$OUTSIDE_DNS_SERVER"; else printf '%s' "$DNS_SERVER"; fi
}

# Prints the route and no-route lines. `route = default` also covers IPv6 when --ipv6 is given.
ocserv_routes() {
  local routes
  if [[ "$full_tunnel" == true ]]; then
    printf 'route = default'
    return 0
  fi
  routes=$'route = 198.18.10.0/24\nroute = 198.18.20.0/24'
  [[ "$split_exclude" == true ]] && routes+=$'\nno-route = 198.18.10.192/26'
  if [[ "$ipv6" == true ]]; then
    routes+=$'\nroute = fd00:10::/64'
    [[ "$split_exclude" == true ]] && routes+=$'\nno-route = fd00:10::c0/122'
  fi
  printf '%s' "$routes"
}

ocserv_dns_settings() {
  local settings domain
  settings="dns = $(tunnel_dns_server)"
  [[ "$split_dns" != none ]] && settings+=$'\n'"default-domain = $DEFAULT_DOMAIN"
  if [[ "$split_dns" == list ]]; then
    for domain in $SPLIT_DNS_DOMAINS; do settings+=$'\n'"split-dns = $domain"; done
  fi
  printf '%s' "$settings"
}

ocserv_ipv6_settings() {
  if [[ "$ipv6" == true ]]; then
    # Each client gets one address of the pool, as ocserv 1.1 does by default.
    printf 'ipv6-network = %s\nipv6-subnet-prefix = 128' "$VPN_POOL6"
  else
    printf '# no IPv6 pool: clients get IPv4 only'
  fi
}

# Writes DIR/ocserv.conf and the connect/disconnect script. LISTEN_HOST empty means every address.
write_ocserv_config() {
  local dir="$1" listen_host="$2" listen_line routes
  if [[ -n "$listen_host" ]]; then
    listen_line="listen-host = $listen_host"
  else
    listen_line='# listen-host unset: ocserv listens on every address'
  fi
  routes="$(ocserv_routes)"

  render_template "$SCRIPT_DIR/ocserv.conf.in" "$dir/ocserv.conf" \
    "STATE_DIR=$dir" \
    "AUTH_SETTINGS=$(ocserv_auth_settings "$dir")" \
    "LISTEN_HOST=$listen_line" \
    "ISOLATE_WORKERS=true" \
    "DPD=$dpd" \
    "REKEY_TIME=$rekey_time" \
    "REKEY_METHOD=$rekey_method" \
    "IPV6_SETTINGS=$(ocserv_ipv6_settings)" \
    "DNS_SETTINGS=$(ocserv_dns_settings)" \
    "ROUTES=$routes"

  install -m 0755 "$SCRIPT_DIR/connect-event.sh" "$dir/connect-event.sh"
  : >>"$dir/connect-events.log"
  ocserv --test-config --config "$dir/ocserv.conf" >"$dir/ocserv-config-test.log" 2>&1 ||
    die "ocserv rejected $dir/ocserv.conf: $(tail -n 5 "$dir/ocserv-config-test.log")"
}

prepare_headend_files() {
  local dir="$1" listen_host="$2"
  # ocserv's unprivileged workers must reach files in DIR, so DIR is searchable by all. The
  # secrets in it (password, keys, ocpasswd) are 0600.
  mkdir -p "$dir"
  chmod 0711 "$dir"
  make_pki "$dir"
  make_user "$dir"
  if [[ "$cert_auth" == true ]]; then make_client_identity "$dir"; fi
  write_ocserv_config "$dir" "$listen_host"
}

# ---------------------------------------------------------------------------------------------
# Namespaces

ns_cli() { printf '%s-cli' "$prefix"; }
ns_hub() { printf '%s-hub' "$prefix"; }
ns_lan() { printf '%s-lan' "$prefix"; }

in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

create_namespaces() {
  local cli hub lan ns
  cli="$(ns_cli)" hub="$(ns_hub)" lan="$(ns_lan)"

  for ns in "$cli" "$hub" "$lan"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
  done

  # Files in /etc/netns/NS/ are bind-mounted over /etc/ by `ip netns exec`, so the client sees
  # its own resolver and hosts file and the host's are never touched.
  mkdir -p "/etc/netns/$cli"
  printf 'nameserver %s\n' "$HEADEND_IP" >"/etc/netns/$cli/resolv.conf"
  cat >"/etc/netns/$cli/hosts" <<EOF
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
$HEADEND_IP	$HEADEND_NAME
EOF

  # Each veth pair is created with its ends already in their namespaces, so no name is ever
  # taken in the host's namespace.
  ip link add to-hub netns "$cli" type veth peer name to-cli netns "$hub"
  ip link add to-lan netns "$hub" type veth peer name to-hub netns "$lan"
  ip link add to-lan2 netns "$hub" type veth peer name to-hub2 netns "$lan"

  in_ns "$cli" ip addr add "$CLIENT_IP/24" dev to-hub
  in_ns "$cli" ip link set to-hub up
  in_ns "$cli" ip route add default via "$HEADEND_IP"

  in_ns "$hub" ip addr add "$HEADEND_IP/24" dev to-cli
  in_ns "$hub" ip addr add "$HUB_LAN_IP/24" dev to-lan
  in_ns "$hub" ip addr add "$HUB_LAN2_IP/24" dev to-lan2
  for ns in to-cli to-lan to-lan2; do in_ns "$hub" ip link set "$ns" up; done
  in_ns "$hub" sysctl -q -w net.ipv4.ip_forward=1
  in_ns "$hub" nft -f - <<'EOF'
table inet headend {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "to-cli" drop
    oifname "to-cli" drop
  }
}
EOF

  in_ns "$lan" ip addr add "$TARGET_HOST/24" dev to-hub
  in_ns "$lan" ip addr add "$DNS_SERVER/24" dev to-hub
  in_ns "$lan" ip addr add "$EXCLUDED_HOST/24" dev to-hub
  in_ns "$lan" ip addr add "$SECOND_LAN_HOST/24" dev to-hub2
  in_ns "$lan" ip link set to-hub up
  in_ns "$lan" ip link set to-hub2 up
  # Only the VPN pool is routed back; 198.18.0.0/24 (the client's veth) stays unreachable.
  in_ns "$lan" ip route add "$VPN_POOL" via "$HUB_LAN_IP"

  if [[ "$dns_outside" == true ]]; then
    in_ns "$hub" ip addr add "$HUB_LAN3_IP/24" dev to-lan
    in_ns "$lan" ip addr add "$OUTSIDE_DNS_SERVER/24" dev to-hub
  fi
  [[ "$ipv6" == true ]] && add_ipv6_addresses
  [[ "$routed_client" == true ]] && route_client_through_hub
  return 0
}

route_client_through_hub() {
  local cli hub
  cli="$(ns_cli)" hub="$(ns_hub)"
  in_ns "$hub" ip addr add "$HUB_ROUTER_IP/24" dev to-cli
  in_ns "$cli" ip route del default
  in_ns "$cli" ip addr del "$CLIENT_IP/24" dev to-hub
  in_ns "$cli" ip addr add "$ROUTED_CLIENT_IP/24" dev to-hub
  in_ns "$cli" ip route add default via "$HUB_ROUTER_IP"
}

# nodad makes each address usable at once instead of after duplicate address detection (~1 s).
add_ipv6_addresses() {
  local cli hub lan
  cli="$(ns_cli)" hub="$(ns_hub)" lan="$(ns_lan)"
  in_ns "$cli" ip -6 addr add "$CLIENT_IP6/64" dev to-hub nodad
  in_ns "$cli" ip -6 route add default via "$HUB_CLIENT_IP6"
  in_ns "$hub" ip -6 addr add "$HUB_CLIENT_IP6/64" dev to-cli nodad
  in_ns "$hub" ip -6 addr add "$HUB_LAN_IP6/64" dev to-lan nodad
  in_ns "$hub" sysctl -q -w net.ipv6.conf.all.forwarding=1
  in_ns "$lan" ip -6 addr add "$TARGET_HOST6/64" dev to-hub nodad
  in_ns "$lan" ip -6 addr add "$EXCLUDED_HOST6/64" dev to-hub nodad
  in_ns "$lan" ip -6 route add "$VPN_POOL6" via "$HUB_LAN_IP6"
}

# Starts a background process inside a namespace and records "NAME PID" in DIR/pids.
# `ip netns exec` execs the command, so $! is the command's own PID.
start_in_ns() {
  local dir="$1" name="$2" ns="$3" logfile="$4"
  shift 4
  ip netns exec "$ns" "$@" </dev/null >>"$logfile" 2>&1 &
  printf '%s %s\n' "$name" "$!" >>"$dir/pids"
}

recorded_pid() {
  local dir="$1" name="$2"
  [[ -r "$dir/pids" ]] || return 0
  awk -v name="$name" '$1 == name { pid = $2 } END { if (pid) print pid }' "$dir/pids"
}

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

start_echo_server() {
  local dir="$1"
  start_in_ns "$dir" echo "$(ns_lan)" "$dir/echo-server.log" \
    node "$SCRIPT_DIR/echo-server.mjs" "$TARGET_HOST" "$TARGET_TCP_PORT"
}

# Records every query in DIR/dns-tunnel.log and DIR/dns-local.log (one JSON line each).
start_dns_servers() {
  local dir="$1"
  # SPLIT_DNS_DOMAINS is split into one argument per domain on purpose.
  # shellcheck disable=SC2086
  start_in_ns "$dir" dns-tunnel "$(ns_lan)" "$dir/dns-tunnel.log" \
    node "$SCRIPT_DIR/dns-server.mjs" "$(tunnel_dns_server)" "$TARGET_HOST" $SPLIT_DNS_DOMAINS
  start_in_ns "$dir" dns-local "$(ns_hub)" "$dir/dns-local.log" \
    node "$SCRIPT_DIR/dns-server.mjs" "$LOCAL_DNS_SERVER" "$LOCAL_DNS_ANSWER"
}

start_ocserv_in_ns() {
  local dir="$1"
  start_in_ns "$dir" ocserv "$(ns_hub)" "$dir/ocserv.log" \
    ocserv --foreground --debug="$OCSERV_DEBUG_LEVEL" --config "$dir/ocserv.conf"
}

# Waits until a TCP listener on ADDRESS:PORT exists in NS, at most TENTHS/10 s. Returns 1 on
# timeout and 2 as soon as PID has exited.
wait_for_listener() {
  local ns="$1" address="$2" port="$3" pid="$4" tenths="$5" i
  for ((i = 0; i < tenths; i++)); do
    pid_alive "$pid" || return 2
    if in_ns "$ns" ss -H -l -t -n "src $address and sport = :$port" | grep -q LISTEN; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

wait_for_service() {
  local name="$1" ns="$2" address="$3" port="$4" pid="$5" logfile="$6" status=0
  wait_for_listener "$ns" "$address" "$port" "$pid" "$LISTEN_TIMEOUT_TENTHS" || status=$?
  case "$status" in
    0) return 0 ;;
    2) log "$name exited before listening on $address:$port; last lines of $logfile:" ;;
    *) log "$name is not listening on $address:$port after 10 s; last lines of $logfile:" ;;
  esac
  tail -n 30 "$logfile" >&2 || true
  return 1
}

wait_for_services() {
  local dir="$1" ocserv_pid echo_pid
  ocserv_pid="$(recorded_pid "$dir" ocserv)"
  echo_pid="$(recorded_pid "$dir" echo)"

  wait_for_service ocserv "$(ns_hub)" "$HEADEND_IP" 443 "$ocserv_pid" "$dir/ocserv.log"
  wait_for_service 'echo server' "$(ns_lan)" "$TARGET_HOST" "$TARGET_TCP_PORT" "$echo_pid" \
    "$dir/echo-server.log"
  if [[ "$dns_servers" == true ]]; then
    wait_for_service 'tunnel DNS server' "$(ns_lan)" "$(tunnel_dns_server)" 53 \
      "$(recorded_pid "$dir" dns-tunnel)" "$dir/dns-tunnel.log"
    wait_for_service 'local DNS server' "$(ns_hub)" "$LOCAL_DNS_SERVER" 53 \
      "$(recorded_pid "$dir" dns-local)" "$dir/dns-local.log"
  fi

  # A ping rather than a TCP probe proves the client's path without adding a session to ocserv.log.
  if ! in_ns "$(ns_cli)" ping -c 1 -W 2 "$HEADEND_IP" >/dev/null; then
    log "the client namespace cannot reach $HEADEND_IP"
    return 1
  fi
}

write_env_file() {
  local dir="$1" pin
  pin="$(server_pin "$dir")"
  cat >"$dir/headend.env" <<EOF
HEADEND_URL=https://$HEADEND_NAME
HEADEND_IP=$HEADEND_IP
CLIENT_NS=$(ns_cli)
HUB_NS=$(ns_hub)
LAN_NS=$(ns_lan)
CAFILE=$dir/ca.pem
VPN_USER=$VPN_USER
VPN_PASSWORD_FILE=$dir/password
TARGET_HOST=$TARGET_HOST
TARGET_TCP_PORT=$TARGET_TCP_PORT
DNS_SERVER=$(tunnel_dns_server)
EXCLUDED_HOST=$EXCLUDED_HOST
OCSERV_LOG=$dir/ocserv.log
CONNECT_EVENTS_LOG=$dir/connect-events.log
OCCTL_SOCKET=$dir/occtl.socket
SERVER_PIN=$pin
EOF
  if [[ "$ipv6" == true ]]; then
    cat >>"$dir/headend.env" <<EOF
CLIENT_IP6=$CLIENT_IP6
HUB_CLIENT_IP6=$HUB_CLIENT_IP6
TARGET_HOST6=$TARGET_HOST6
EXCLUDED_HOST6=$EXCLUDED_HOST6
EOF
  fi
  if [[ "$dns_servers" == true ]]; then
    cat >>"$dir/headend.env" <<EOF
TUNNEL_DNS_LOG=$dir/dns-tunnel.log
TUNNEL_DNS_ANSWER=$TARGET_HOST
LOCAL_DNS_SERVER=$LOCAL_DNS_SERVER
LOCAL_DNS_LOG=$dir/dns-local.log
LOCAL_DNS_ANSWER=$LOCAL_DNS_ANSWER
EOF
  fi
  if [[ "$cert_auth" == true ]]; then
    cat >>"$dir/headend.env" <<EOF
CLIENT_CERT_P12=$dir/client.p12
CLIENT_CERT_LEGACY_P12=$dir/client-legacy.p12
CLIENT_CERT_RSA_P12=$dir/client-rsa.p12
CLIENT_CERT_PASSWORD_FILE=$dir/client-cert-password
EOF
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------
# Teardown

# Sends SIGTERM, waits up to 5 s, then SIGKILL.
stop_pid() {
  local pid="$1" i
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < KILL_TIMEOUT_TENTHS; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  log "process $pid ignored SIGTERM for 5 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# Stops a PID from DIR/pids only while it still runs the recorded program inside the expected
# namespace, so a PID the kernel has since reused is left alone.
stop_recorded() {
  local dir="$1" name="$2" ns="$3" pid comm
  pid="$(recorded_pid "$dir" "$name")"
  pid_alive "$pid" || return 0
  comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  case "$name:$comm" in
    ocserv:ocserv* | echo:node | dns-tunnel:node | dns-local:node) ;;
    *) log "PID $pid now runs '$comm', not $name; leaving it alone"; return 0 ;;
  esac
  [[ "$(ip netns identify "$pid" 2>/dev/null || true)" == "$ns" ]] || return 0
  stop_pid "$pid"
}

# Stops every process left in a namespace of ours (ocserv, the echo server, a test's client),
# because a namespace with live processes keeps its interfaces after `ip netns delete`.
stop_namespace_processes() {
  local ns="$1" pid
  for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
    stop_pid "$pid"
  done
}

namespaces_with_prefix() {
  ip netns list 2>/dev/null | awk '{ print $1 }' | while read -r ns; do
    [[ "$ns" == "$prefix"-* ]] && printf '%s\n' "$ns"
  done
  return 0
}

sweep_prefix() {
  local ns dir
  for ns in $(namespaces_with_prefix); do
    stop_namespace_processes "$ns"
    ip netns delete "$ns" 2>/dev/null || log "could not delete namespace $ns"
  done
  for dir in /etc/netns/"$prefix"-*; do
    [[ -d "$dir" ]] && rm -rf -- "$dir"
  done
  # /etc/netns did not exist on a fresh Debian host; rmdir leaves it when anything else uses it.
  rmdir /etc/netns 2>/dev/null || true
  return 0
}

# ---------------------------------------------------------------------------------------------
# Commands

# Stops ocserv and starts it again with the same configuration: every session and cookie is
# forgotten, as after a headend reboot (fault tests use it).
cmd_restart_ocserv() {
  require_prefix
  require_state_dir
  stop_recorded "$state_dir" ocserv "$(ns_hub)"
  start_ocserv_in_ns "$state_dir"
  wait_for_service ocserv "$(ns_hub)" "$HEADEND_IP" 443 "$(recorded_pid "$state_dir" ocserv)" "$state_dir/ocserv.log"
  log "restart-ocserv: ocserv runs again in $(ns_hub)"
}

cmd_up() {
  require_prefix
  require_state_dir
  [[ -z "$(namespaces_with_prefix)" ]] ||
    die "namespaces named $prefix-* already exist; run: headend.sh sweep --prefix $prefix"

  # Any failure from here on tears down what was built, so a failed `up` leaves nothing behind.
  trap 'status=$?; if ((status != 0)); then log "up failed; tearing down"; cmd_down; fi' EXIT

  prepare_headend_files "$state_dir" "$HEADEND_IP"
  : >"$state_dir/pids"
  create_namespaces
  start_echo_server "$state_dir"
  [[ "$dns_servers" == true ]] && start_dns_servers "$state_dir"
  start_ocserv_in_ns "$state_dir"
  wait_for_services "$state_dir"
  write_env_file "$state_dir"

  trap - EXIT
  log "up: $(ns_cli) -> $(ns_hub) ($HEADEND_NAME) -> $(ns_lan); environment in $state_dir/headend.env"
}

cmd_down() {
  require_prefix
  require_state_dir
  # Clients first, so they end while the headend still answers; then the recorded services.
  stop_namespace_processes "$(ns_cli)"
  stop_recorded "$state_dir" ocserv "$(ns_hub)"
  stop_recorded "$state_dir" echo "$(ns_lan)"
  stop_recorded "$state_dir" dns-tunnel "$(ns_lan)"
  stop_recorded "$state_dir" dns-local "$(ns_hub)"
  sweep_prefix
}

cmd_sweep() {
  require_prefix
  sweep_prefix
}

# Container entrypoint: no namespaces, ocserv listens on every address of the container and logs
# to standard error. The lan hosts do not exist here; a client can still reach the headend's own
# tunnel address (the first address of the VPN pool).
cmd_serve() {
  require_state_dir
  prepare_headend_files "$state_dir" ''
  log "CA certificate: $state_dir/ca.pem"
  log "server pin: $(server_pin "$state_dir")"
  log "user $VPN_USER, password in $state_dir/password, groups: $VPN_GROUPS"
  exec ocserv --foreground --debug="$OCSERV_DEBUG_LEVEL" --config "$state_dir/ocserv.conf"
}

main() {
  (($# >= 1)) || usage
  local command="$1"
  shift
  parse_options "$@"
  [[ "$(id -u)" == 0 ]] || die "must run as root (namespaces, ocserv's tun device)"
  case "$command" in
    up) cmd_up ;;
    down) cmd_down ;;
    restart-ocserv) cmd_restart_ocserv ;;
    sweep) cmd_sweep ;;
    serve) cmd_serve ;;
    *) log "unknown command: $command"; usage ;;
  esac
}

# `exit` on the same line stops bash from reading on if this file is edited while it runs.
main "$@"; exit
