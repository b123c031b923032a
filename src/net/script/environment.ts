// The environment of a vpnc-script run: the variables OpenConnect sets for its `--script`, built
// from the tunnel configuration, so that vpnc-script, vpn-slice and other scripts written for
// OpenConnect work unchanged with acvpn.
//
// The reference is OpenConnect 9.01 (script.c and cstp.c) connected to ocserv 1.1.6: for the
// same CONNECT response this module produces the same variables and values, with these
// differences, each on purpose:
// - X-CSTP-Post-Auth-XML is left out of CISCO_CSTP_OPTIONS, because it contains the session
//   cookie. OpenConnect 9.01 passes it on.
// - CISCO_PROXY_PAC is also set for ocserv's spelling X-CSTP-MSIE-Proxy-Pac-URL, which
//   OpenConnect 9.01 misses because it compares the header name case-sensitively.
// - Values are the parsed ones: networks with host bits cleared, addresses in canonical form,
//   domains that failed validation dropped, duplicates removed. OpenConnect copies the header text.
// An unset variable means the headend did not provide the value.

import type { LogLevel } from '../../core/log.js';
import { netmaskFromPrefix, normalizeNetwork } from '../../core/ip.js';
import { isLocalLanMarker, parseSplitNetwork } from '../../cstp/split-network.js';
import type { IpNetwork, TunnelConfig } from '../../cstp/tunnel-config.js';

/** Values of `reason`, in the order a session meets them. */
export type ScriptReason = 'pre-init' | 'connect' | 'disconnect' | 'attempt-reconnect' | 'reconnect';

export interface ScriptEnvironmentArgs {
  /** The tunnel configuration; omitted for a pre-init run before the CONNECT response. */
  config?: TunnelConfig;
  /** TUN interface name; omitted when the device does not exist yet. */
  tunName?: string;
  /** Numeric IP address of the headend. */
  headendIp: string;
  /** Process id of the acvpn daemon (vpnc-script names its state files after it). */
  pid: number;
  /** OpenConnect verbosity: 0 error, 1 info, 2 debug, 3 trace (see scriptLogLevel). */
  logLevel: number;
  /** Final tunnel MTU, after any DTLS adjustment; config.mtu when omitted. */
  mtu?: number;
}

// OpenConnect keeps at most three DNS and three WINS servers (fixed arrays in its ip_info).
const maxResolvers = 3;

/** Builds the vpnc-script environment for one run; it contains no secret. */
export function buildScriptEnvironment(reason: ScriptReason, args: ScriptEnvironmentArgs): Record<string, string> {
  const env: Record<string, string> = {
    reason,
    VPNGATEWAY: args.headendIp,
    VPNPID: String(args.pid),
    LOG_LEVEL: String(args.logLevel),
  };
  if (args.tunName !== undefined) env.TUNDEV = args.tunName;

  const mtu = args.mtu ?? args.config?.mtu;
  if (mtu !== undefined) env.INTERNAL_IP4_MTU = String(mtu);

  const config = args.config;
  if (config !== undefined) {
    addAddresses(env, config);
    addResolvers(env, config);
    addSplitNetworks(env, config);
    addHeadendOptions(env, config);
  }
  return withoutNul(env);
}

/** Maps an acvpn log level to OpenConnect's LOG_LEVEL scale (0 error, 1 info, 2 debug, 3 trace). */
export function scriptLogLevel(level: LogLevel): number {
  switch (level) {
    case 'trace':
      return 3;
    case 'debug':
      return 2;
    case 'info':
      return 1;
    default:
      return 0;
  }
}

// ---- Addresses ----

function addAddresses(env: Record<string, string>, config: TunnelConfig): void {
  const ipv4 = config.ipv4;
  if (ipv4 !== undefined) {
    env.INTERNAL_IP4_ADDRESS = ipv4.address;
    // OpenConnect sets the netmask variables only when the headend sent an IPv4 X-CSTP-Netmask.
    // The parser turns a missing netmask into /32, so /32 alone does not say whether one was sent.
    if (ipv4.prefixLength < 32 || sentIpv4Netmask(config)) {
      env.INTERNAL_IP4_NETMASK = ipv4.netmask;
      env.INTERNAL_IP4_NETMASKLEN = String(ipv4.prefixLength);
      env.INTERNAL_IP4_NETADDR = normalizeNetwork(ipv4.address, ipv4.prefixLength)!.address;
    }
  }

  // NOTE: OpenConnect leaves INTERNAL_IP6_NETMASK unset when the headend sent an IPv6 address
  // without a prefix. Here it is then "address/128", which is what vpnc-script assumes anyway.
  const ipv6 = config.ipv6;
  if (ipv6 !== undefined) {
    env.INTERNAL_IP6_ADDRESS = ipv6.address;
    env.INTERNAL_IP6_NETMASK = `${ipv6.address}/${ipv6.prefixLength}`;
  }
}

function sentIpv4Netmask(config: TunnelConfig): boolean {
  return config.rawHeaders.some(([name, value]) => name.toLowerCase() === 'x-cstp-netmask' && !value.includes(':'));
}

// ---- DNS, WINS and domains ----

function addResolvers(env: Record<string, string>, config: TunnelConfig): void {
  // Both families go into INTERNAL_IP4_DNS, in the order received, as OpenConnect does: scripts
  // read resolvers from that one variable only.
  setList(env, 'INTERNAL_IP4_DNS', config.dnsServers.slice(0, maxResolvers), ' ');
  setList(env, 'INTERNAL_IP4_NBNS', config.nbnsServers.slice(0, maxResolvers), ' ');
  setList(env, 'CISCO_DEF_DOMAIN', config.defaultDomains, ' ');
  // OpenConnect 9.01 lists split-DNS domains last-received first.
  setList(env, 'CISCO_SPLIT_DNS', [...config.splitDnsDomains].reverse(), ',');
}

function setList(env: Record<string, string>, name: string, items: string[], separator: string): void {
  if (items.length > 0) env[name] = items.join(separator);
}

// ---- Split networks ----

/**
 * Sets CISCO_SPLIT_INC / _EXC and CISCO_IPV6_SPLIT_INC / _EXC with their numbered entries. No
 * IPv4 include means full tunnel, so CISCO_SPLIT_INC stays unset rather than "0".
 *
 * The local-LAN exclude (0.0.0.0/32, and ::/128 where sent) is passed on as an exclude, as
 * OpenConnect passes what the headend sent. It is a flag, not a route: vpnc-script (vpnc-scripts
 * 0.1~git20220510) skips 0.0.0.0/32 as a non-forwardable exclude, and a script that wants to
 * honour "allow local LAN" can only see it here.
 */
function addSplitNetworks(env: Record<string, string>, config: TunnelConfig): void {
  const excludes = [...config.splitExclude];
  const markers = sentLocalLanMarkers(config);
  // NOTE: the parser does not keep the position of the marker among the other excludes. It is
  // listed as if it came last, which only changes the numbering.
  if (markers.ipv4) excludes.push({ family: 4, address: '0.0.0.0', prefixLength: 32 });
  if (markers.ipv6) excludes.push({ family: 6, address: '::', prefixLength: 128 });

  addNetworkList(env, 'INC', config.splitInclude);
  addNetworkList(env, 'EXC', excludes);
}

/** Finds which local-LAN markers the headend sent; IPv4 when the flag is set but no header shows one. */
function sentLocalLanMarkers(config: TunnelConfig): { ipv4: boolean; ipv6: boolean } {
  if (!config.localLanAllowed) return { ipv4: false, ipv6: false };

  const markers = { ipv4: false, ipv6: false };
  for (const [name, value] of config.rawHeaders) {
    if (!name.toLowerCase().startsWith('x-cstp-split-exclude')) continue;
    const parsed = parseSplitNetwork(value.trim());
    if (parsed === undefined || !isLocalLanMarker(parsed.network)) continue;
    if (parsed.network.family === 4) markers.ipv4 = true;
    else markers.ipv6 = true;
  }
  if (!markers.ipv4 && !markers.ipv6) markers.ipv4 = true;
  return markers;
}

function addNetworkList(env: Record<string, string>, kind: 'INC' | 'EXC', networks: IpNetwork[]): void {
  // OpenConnect 9.01 builds its route lists by prepending, so scripts see the last route received
  // as entry 0. The same order here makes the environment identical to OpenConnect's.
  const reversed = [...networks].reverse();

  const ipv4 = reversed.filter((network) => network.family === 4);
  ipv4.forEach((network, index) => {
    env[`CISCO_SPLIT_${kind}_${index}_ADDR`] = network.address;
    env[`CISCO_SPLIT_${kind}_${index}_MASK`] = netmaskFromPrefix(network.prefixLength);
    env[`CISCO_SPLIT_${kind}_${index}_MASKLEN`] = String(network.prefixLength);
  });
  if (ipv4.length > 0) env[`CISCO_SPLIT_${kind}`] = String(ipv4.length);

  const ipv6 = reversed.filter((network) => network.family === 6);
  ipv6.forEach((network, index) => {
    env[`CISCO_IPV6_SPLIT_${kind}_${index}_ADDR`] = network.address;
    env[`CISCO_IPV6_SPLIT_${kind}_${index}_MASKLEN`] = String(network.prefixLength);
  });
  if (ipv6.length > 0) env[`CISCO_IPV6_SPLIT_${kind}`] = String(ipv6.length);
}

// ---- Other headend options ----

function addHeadendOptions(env: Record<string, string>, config: TunnelConfig): void {
  if (config.banner !== undefined) env.CISCO_BANNER = config.banner;
  if (config.proxyPacUrl !== undefined) env.CISCO_PROXY_PAC = config.proxyPacUrl;
  if (config.idleTimeoutSeconds !== undefined) env.IDLE_TIMEOUT = String(config.idleTimeoutSeconds);

  // One "Name=value" line per X-CSTP-* header in the order received, joined by newlines with no
  // newline after the last, byte for byte as OpenConnect 9.01 writes it. X-DTLS-* headers are
  // not part of it in OpenConnect either.
  const lines = config.rawHeaders
    .filter(([name]) => isScriptCstpOption(name))
    .map(([name, value]) => `${name}=${value}`);
  if (lines.length > 0) env.CISCO_CSTP_OPTIONS = lines.join('\n');
}

function isScriptCstpOption(name: string): boolean {
  const key = name.toLowerCase();
  // rawHeaders already leaves X-CSTP-Post-Auth-XML out; checked again because it contains the cookie.
  return key.startsWith('x-cstp-') && key !== 'x-cstp-post-auth-xml';
}

/** Removes NUL characters, which an environment string cannot contain (spawn would throw). */
function withoutNul(env: Record<string, string>): Record<string, string> {
  for (const [name, value] of Object.entries(env)) {
    if (value.includes('\0')) env[name] = value.replaceAll('\0', '');
  }
  return env;
}
