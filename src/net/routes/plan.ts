// Turns a tunnel configuration and a view of the host's routes into the list of routes to install.
// Pure: no `ip`, no I/O. apply.ts installs the result, host-state.ts reads the host view.
//
// Rules, in the order planRoutes applies them:
//  1. Split-includes go to the TUN device as device routes. A route never names a next hop inside
//     the tunnel: the TUN device is point-to-point, and an invented gateway such as "our address
//     plus one" does not exist on the headend side.
//  2. No split-include at all means full tunnel: 0.0.0.0/1 and 128.0.0.0/1 (and ::/1 and 8000::/1
//     when IPv6 is assigned). Two halves, not a default route, so they win over the host's default
//     route by prefix length without replacing it. An include of 0.0.0.0/0 or ::/0 is expanded the
//     same way.
//  3. Split-excludes go through the original path: the host's default route of their family, or,
//     without one, the headend's route. The default route comes first because the headend may sit
//     on a directly connected network (no gateway) while excluded networks lie behind a router.
//  4. In split mode, each tunnel DNS server that no include covers gets a host route into the TUN
//     device, so that queries sent to it reach it.
//  5. Local LAN access is always allowed. A tunnel route at or inside a network that the host
//     reaches without a router would take that network away from its device, so it is dropped.
//     A tunnel route that contains such a network needs nothing: the connected route is more
//     specific and wins the longest-prefix match. This leaves connected routes untouched, where
//     copying them as extra routes would collide with the kernel's own route (same prefix, same
//     metric: "File exists") or leave stale copies when the LAN changes.
//  6. The headend gets a host route on the original path when the most specific route for its
//     address would otherwise be a tunnel route, so that the tunnel's own packets never loop
//     into the tunnel.
//  7. Routes are collapsed by network; where a tunnel route and an original-path route share a
//     network, the original path wins. The local-LAN exclude form (0.0.0.0/32, ::/128) is a
//     flag of the tunnel configuration and never becomes a route.
//  8. The result is sorted: original-path routes first, so that the headend's host route exists
//     before the full-tunnel halves capture its traffic, then by family, address and prefix.

import { AcvpnError } from '../../core/errors.js';
import { formatNetwork, networkContains, normalizeNetwork, parseIp } from '../../core/ip.js';
import type { IpNetwork, TunnelConfig } from '../../cstp/tunnel-config.js';
import type { OriginalPath } from './host-state.js';

export type RouteEntry =
  | {
      network: IpNetwork;
      via: 'tunnel';
      /** Why the route exists: a split-include, a full-tunnel half, or a tunnel DNS server. */
      role: 'include' | 'full-tunnel' | 'dns';
    }
  | {
      network: IpNetwork;
      via: 'original';
      gateway?: string;
      dev: string;
      /** 'headend' routes are installed with `ip route replace` (see apply.ts). */
      role: 'exclude' | 'headend';
    };

export interface RoutePlan {
  /** The TUN device that 'tunnel' routes point at. */
  tunName: string;
  routes: RouteEntry[];
  /** One sentence per dropped or changed route, for the log. */
  warnings: string[];
}

/** The host's routing state that planRoutes reads (host-state.ts collects it). */
export interface HostRouting {
  tunName: string;
  headendIp: string;
  /** The route to the headend before the tunnel; `local` when the headend is this host. */
  pathToHeadend: OriginalPath & { local?: boolean };
  /** The default route of the family the headend address is not in, when the host has one. */
  otherFamilyPath?: OriginalPath;
  /**
   * True when the host already has a route for exactly the headend's address (for example one the
   * administrator set up). It is more specific than any tunnel route, so acvpn adds none and, more
   * to the point, never replaces and later deletes it.
   */
  headendHostRouteExists?: boolean;
  /** The default route of the headend's own family, when the host has one. */
  sameFamilyPath?: OriginalPath;
  /** Networks reached without a router (see connectedNetworks in host-state.ts). */
  connectedNetworks: IpNetwork[];
}

const fullTunnelHalves: Record<4 | 6, IpNetwork[]> = {
  4: [
    { family: 4, address: '0.0.0.0', prefixLength: 1 },
    { family: 4, address: '128.0.0.0', prefixLength: 1 },
  ],
  6: [
    { family: 6, address: '::', prefixLength: 1 },
    { family: 6, address: '8000::', prefixLength: 1 },
  ],
};

const familyName = { 4: 'IPv4', 6: 'IPv6' } as const;

/** Builds the routes for `config` on a host described by `host`; see the rules at the top. */
export function planRoutes(config: TunnelConfig, host: HostRouting): RoutePlan {
  const warnings: string[] = [];
  const headend = parseIp(host.headendIp);
  if (headend === undefined) {
    throw new AcvpnError('INTERNAL', `headend address ${JSON.stringify(host.headendIp)} is not an IP literal`);
  }
  if (host.pathToHeadend.dev === host.tunName) {
    // Reading the host state after the full-tunnel routes went in returns the tunnel itself;
    // routing the headend there would loop the tunnel's own packets.
    throw new AcvpnError(
      'INTERNAL',
      `the route to the headend ${host.headendIp} already goes through ${host.tunName}: read the host routes before installing tunnel routes`,
    );
  }

  const assigned = { 4: config.ipv4 !== undefined, 6: config.ipv6 !== undefined };
  const pathFor = (family: 4 | 6): OriginalPath | undefined =>
    family === headend.family ? (host.sameFamilyPath ?? host.pathToHeadend) : host.otherFamilyPath;

  const tunnelRoutes = planTunnelRoutes(config, assigned, warnings);
  const keptTunnelRoutes = dropLocalAndOnLink(tunnelRoutes, config, host.connectedNetworks, warnings);
  const excludeRoutes = planExcludes(config, assigned, host.connectedNetworks, pathFor, warnings);

  const routes = new Map<string, RouteEntry>();
  for (const entry of keptTunnelRoutes) routes.set(formatNetwork(entry.network), entry);
  for (const entry of excludeRoutes) {
    const key = formatNetwork(entry.network);
    const clash = routes.get(key);
    if (clash?.via === 'tunnel') {
      warnings.push(`${formatNetwork(entry.network)} is a split-exclude and also a tunnel route (${clash.role}): it stays outside the tunnel`);
    }
    routes.set(key, entry);
  }

  const headendRoute = planHeadendRoute(host, headend.family, [...routes.values()]);
  if (headendRoute !== undefined) {
    const key = formatNetwork(headendRoute.network);
    const clash = routes.get(key);
    if (clash !== undefined && clash.via === 'tunnel') {
      warnings.push(`${formatNetwork(headendRoute.network)} is the headend itself: it stays on the original path, not in the tunnel (${clash.role})`);
    }
    routes.set(key, headendRoute);
  }

  if (config.splitInclude.length === 0) warnUnassignedFamilies(config, assigned, warnings);

  return { tunName: host.tunName, routes: [...routes.values()].sort(compareEntries), warnings };
}

// Rules 1, 2 and 4: the routes into the tunnel, before the LAN and pool checks.
function planTunnelRoutes(config: TunnelConfig, assigned: Record<4 | 6, boolean>, warnings: string[]): RouteEntry[] {
  const routes: RouteEntry[] = [];

  if (config.splitInclude.length === 0) {
    for (const family of [4, 6] as const) {
      if (!assigned[family]) continue;
      for (const network of fullTunnelHalves[family]) routes.push({ network, via: 'tunnel', role: 'full-tunnel' });
    }
    return routes;
  }

  const includes: IpNetwork[] = [];
  for (const raw of config.splitInclude) {
    const network = cleanNetwork(raw, 'split-include', warnings);
    if (network === undefined) continue;
    if (!assigned[network.family]) {
      warnings.push(`split-include ${formatNetwork(network)} skipped: the headend assigned no ${familyName[network.family]} address`);
      continue;
    }
    if (network.prefixLength === 0) {
      for (const half of fullTunnelHalves[network.family]) routes.push({ network: half, via: 'tunnel', role: 'full-tunnel' });
      includes.push(network);
      continue;
    }
    routes.push({ network, via: 'tunnel', role: 'include' });
    includes.push(network);
  }

  for (const server of config.dnsServers) {
    const address = parseIp(server);
    if (address === undefined || !assigned[address.family]) continue;
    if (includes.some((network) => networkContains(network, server))) continue;
    const network = normalizeNetwork(server, address.family === 4 ? 32 : 128);
    if (network !== undefined) routes.push({ network, via: 'tunnel', role: 'dns' });
  }
  return routes;
}

// Rule 5, plus the TUN device's own on-link network. configureTunLink adds the assigned address
// with its prefix length, so the kernel already routes that network into the TUN device. A
// second route with the same prefix would fail with "File exists".
function dropLocalAndOnLink(
  routes: RouteEntry[],
  config: TunnelConfig,
  connected: IpNetwork[],
  warnings: string[],
): RouteEntry[] {
  const onLink: IpNetwork[] = [];
  if (config.ipv4 !== undefined) pushNetwork(onLink, config.ipv4.address, config.ipv4.prefixLength);
  if (config.ipv6 !== undefined) pushNetwork(onLink, config.ipv6.address, config.ipv6.prefixLength);

  return routes.filter((entry) => {
    if (onLink.some((network) => networkCovers(network, entry.network))) return false;
    const lan = connected.find((network) => networkCovers(network, entry.network));
    if (lan === undefined) return true;
    const what = entry.role === 'dns' ? 'tunnel DNS server' : entry.role;
    warnings.push(
      `${what} ${formatNetwork(entry.network)} is not routed into the tunnel: it lies in the directly connected network ${formatNetwork(lan)}, and local LAN access is always kept`,
    );
    return false;
  });
}

// Rule 3. An exclude at or inside a connected network needs no route: rule 5 lets no tunnel
// route in there, so the connected route keeps it off the tunnel. A route through the gateway
// would instead pull part of the LAN away from its device.
function planExcludes(
  config: TunnelConfig,
  assigned: Record<4 | 6, boolean>,
  connected: IpNetwork[],
  pathFor: (family: 4 | 6) => OriginalPath | undefined,
  warnings: string[],
): RouteEntry[] {
  const routes: RouteEntry[] = [];
  for (const raw of config.splitExclude) {
    if (isLocalLanForm(raw)) continue;
    const network = cleanNetwork(raw, 'split-exclude', warnings);
    // Without an address of this family there are no tunnel routes of it to carve out of.
    if (network === undefined || !assigned[network.family]) continue;
    if (connected.some((lan) => networkCovers(lan, network))) continue;

    const path = pathFor(network.family);
    if (path === undefined) {
      warnings.push(`split-exclude ${formatNetwork(network)} skipped: the host has no ${familyName[network.family]} route to send it through`);
      continue;
    }
    // NOTE: the exclude follows the default route (or the headend's path), not the route the host
    // had for that network itself. On a host with a more specific route for part of an excluded
    // network through another router, that traffic now takes the default router instead.
    routes.push({ network, via: 'original', gateway: path.gateway, dev: path.dev, role: 'exclude' });
  }
  return routes;
}

// Rule 6: decide by longest-prefix match over the planned routes and the connected networks.
function planHeadendRoute(host: HostRouting, family: 4 | 6, planned: RouteEntry[]): RouteEntry | undefined {
  if (host.pathToHeadend.local === true || host.headendHostRouteExists === true) return undefined;

  let bestPrefix = -1;
  let bestIsTunnel = false;
  for (const entry of planned) {
    if (!networkContains(entry.network, host.headendIp) || entry.network.prefixLength <= bestPrefix) continue;
    bestPrefix = entry.network.prefixLength;
    bestIsTunnel = entry.via === 'tunnel';
  }
  for (const network of host.connectedNetworks) {
    if (!networkContains(network, host.headendIp) || network.prefixLength <= bestPrefix) continue;
    bestPrefix = network.prefixLength;
    bestIsTunnel = false;
  }
  if (!bestIsTunnel) return undefined;

  const network = normalizeNetwork(host.headendIp, family === 4 ? 32 : 128);
  if (network === undefined) return undefined;
  const { gateway, dev } = host.pathToHeadend;
  return { network, via: 'original', gateway, dev, role: 'headend' };
}

function warnUnassignedFamilies(config: TunnelConfig, assigned: Record<4 | 6, boolean>, warnings: string[]): void {
  if (config.clientBypassProtocol) return;
  for (const family of [4, 6] as const) {
    if (assigned[family] || !assigned[family === 4 ? 6 : 4]) continue;
    // NOTE: an AnyConnect client drops this traffic, but acvpn installs no blocking rule. On a
    // host with a route for this family, that traffic leaves outside the full tunnel.
    warnings.push(
      `full tunnel without an ${familyName[family]} address and without client bypass: ${familyName[family]} traffic is not routed into the tunnel`,
    );
  }
}

function cleanNetwork(raw: IpNetwork, kind: string, warnings: string[]): IpNetwork | undefined {
  const network = normalizeNetwork(raw.address, raw.prefixLength);
  if (network === undefined) {
    warnings.push(`${kind} ${raw.address}/${raw.prefixLength} skipped: not a valid network`);
    return undefined;
  }
  if (network.address !== raw.address) {
    warnings.push(`${kind} ${raw.address}/${raw.prefixLength} has host bits set: using ${formatNetwork(network)}`);
  }
  return network;
}

function isLocalLanForm(network: IpNetwork): boolean {
  return (
    (network.family === 4 && network.prefixLength === 32 && network.address === '0.0.0.0') ||
    (network.family === 6 && network.prefixLength === 128 && parseIp(network.address)?.bytes.every((byte) => byte === 0) === true)
  );
}

function pushNetwork(into: IpNetwork[], address: string, prefixLength: number): void {
  const network = normalizeNetwork(address, prefixLength);
  if (network !== undefined) into.push(network);
}

/** True when `outer` contains all of `inner` (same family, prefix at most as long). */
function networkCovers(outer: IpNetwork, inner: IpNetwork): boolean {
  return (
    outer.family === inner.family &&
    outer.prefixLength <= inner.prefixLength &&
    networkContains(outer, inner.address)
  );
}

function compareEntries(a: RouteEntry, b: RouteEntry): number {
  if (a.via !== b.via) return a.via === 'original' ? -1 : 1;
  return compareNetworks(a.network, b.network);
}

function compareNetworks(a: IpNetwork, b: IpNetwork): number {
  if (a.family !== b.family) return a.family - b.family;
  const left = parseIp(a.address)?.bytes ?? new Uint8Array();
  const right = parseIp(b.address)?.bytes ?? new Uint8Array();
  for (let index = 0; index < left.length; index += 1) {
    const difference = (left[index] ?? 0) - (right[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return a.prefixLength - b.prefixLength;
}
