// Reads the host's routing state that the route plan needs, through `ip -json`.
//
// Read it before the tunnel routes go in: once the full-tunnel routes are installed, a lookup of
// any address but the headend's returns the TUN device. The headend's own host route stays on the
// original path, so `routeToHeadend` still returns the original path on a reconnect.

import { AcvpnError } from '../../core/errors.js';
import { normalizeNetwork, parseIp } from '../../core/ip.js';
import type { IpNetwork } from '../../cstp/tunnel-config.js';
import type { IpRunner } from '../ip-command.js';
import type { HostRouting } from './plan.js';

/** The way traffic left the host before the tunnel: an on-link device, or a router behind one. */
export interface OriginalPath {
  gateway?: string;
  dev: string;
}

export interface HeadendPath extends OriginalPath {
  /** Source address the kernel picks for the headend. */
  src?: string;
  /** True when the headend address belongs to this host (the route comes from the local table). */
  local: boolean;
}

/** One object of `ip -json route` output; only the fields acvpn reads. */
interface JsonRoute {
  type?: string;
  dst?: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  metric?: number;
  nexthops?: Array<{ gateway?: string; dev?: string }>;
}

function parseRouteList(stdout: string, argv: string[]): JsonRoute[] {
  let value: unknown;
  try {
    value = JSON.parse(stdout === '' ? '[]' : stdout);
  } catch (error) {
    throw new AcvpnError(
      'ENV_COMMAND_FAILED',
      `"ip ${argv.join(' ')}" printed output that is not JSON: ${stdout.slice(0, 200)}`,
      { argv },
      { cause: error },
    );
  }
  if (!Array.isArray(value)) {
    throw new AcvpnError('ENV_COMMAND_FAILED', `"ip ${argv.join(' ')}" printed JSON that is not a list of routes`, {
      argv,
    });
  }
  return value.filter((item): item is JsonRoute => typeof item === 'object' && item !== null);
}

/** Returns the path the kernel uses for `headendIp` now, from `ip -json route get`. */
export async function routeToHeadend(run: IpRunner, headendIp: string): Promise<HeadendPath> {
  if (parseIp(headendIp) === undefined) {
    throw new AcvpnError('INTERNAL', `headend address ${JSON.stringify(headendIp)} is not an IP literal`);
  }
  const argv = ['-json', 'route', 'get', headendIp];
  const [route] = parseRouteList((await run(argv)).stdout, argv);
  if (route?.dev === undefined) {
    throw new AcvpnError('NETWORK_UNREACHABLE', `the host has no route to the headend ${headendIp}`, { headendIp });
  }
  return {
    gateway: route.gateway,
    dev: route.dev,
    src: route.prefsrc,
    local: route.type === 'local',
  };
}

/**
 * Returns the default route of one family (the lowest metric, first next hop of a multipath
 * route), or undefined when the host has none.
 */
export async function defaultPath(run: IpRunner, family: 4 | 6): Promise<OriginalPath | undefined> {
  const argv = [`-${family}`, '-json', 'route', 'show', 'table', 'main', 'default'];
  const routes = parseRouteList((await run(argv)).stdout, argv)
    .filter((route) => route.type === undefined || route.type === 'unicast')
    .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0));
  for (const route of routes) {
    // NOTE: only the first next hop of a multipath default route is used, so traffic that the
    // host spread over several uplinks leaves through one of them.
    const hop = route.dev !== undefined ? route : route.nexthops?.[0];
    if (hop?.dev !== undefined) return { gateway: hop.gateway, dev: hop.dev };
  }
  return undefined;
}

/**
 * Returns the networks of the main table that are reached through a device without a router:
 * the kernel's routes for interface addresses (the LAN), and on-link routes that DHCP clients or
 * administrators added. Routes on `lo` and on the devices in `excludeDevices` (the TUN device)
 * are left out, and so are default routes, because a device default route is an uplink, not a LAN.
 */
export async function connectedNetworks(
  run: IpRunner,
  options: { excludeDevices?: string[] } = {},
): Promise<IpNetwork[]> {
  const excluded = new Set(['lo', ...(options.excludeDevices ?? [])]);
  const networks: IpNetwork[] = [];
  for (const family of [4, 6] as const) {
    const argv = [`-${family}`, '-json', 'route', 'show', 'table', 'main'];
    for (const route of parseRouteList((await run(argv)).stdout, argv)) {
      if (route.type !== undefined && route.type !== 'unicast') continue;
      if (route.gateway !== undefined || route.nexthops !== undefined) continue;
      if (route.dev === undefined || excluded.has(route.dev)) continue;
      if (route.dst === undefined || route.dst === 'default') continue;
      const network = parseDestination(route.dst, family);
      if (network !== undefined && network.prefixLength > 0) networks.push(network);
    }
  }
  return networks;
}

/** Parses a `dst` value of ip's JSON output: "10.0.0.0/8", or a bare address for a host route. */
export function parseDestination(dst: string, family: 4 | 6): IpNetwork | undefined {
  const [address = '', prefix] = dst.split('/');
  const hostPrefixLength = family === 4 ? 32 : 128;
  const prefixLength = prefix === undefined ? hostPrefixLength : Number(prefix);
  const network = normalizeNetwork(address, prefixLength);
  return network?.family === family ? network : undefined;
}

/** Raw `ip -json route show table main` output of both families, as text to compare. */
export interface RouteSnapshot {
  ipv4: string;
  ipv6: string;
}

/** Takes a byte-exact copy of the main routing table, for tests that check a restore. */
export async function snapshotRoutes(run: IpRunner): Promise<RouteSnapshot> {
  const ipv4 = (await run(['-4', '-json', 'route', 'show', 'table', 'main'])).stdout;
  const ipv6 = (await run(['-6', '-json', 'route', 'show', 'table', 'main'])).stdout;
  return { ipv4, ipv6 };
}

/** True when the main table has a route for exactly `address` (/32 or /128). */
async function hostRouteExists(run: IpRunner, address: string, family: 4 | 6): Promise<boolean> {
  const argv = [`-${family}`, '-json', 'route', 'show', 'table', 'main', `${address}/${family === 4 ? 32 : 128}`];
  const routes = parseRouteList((await run(argv)).stdout, argv);
  return routes.length > 0;
}

/** Collects everything planRoutes needs about the host, for a tunnel on `tunName`. */
export async function readHostRouting(
  run: IpRunner,
  target: { tunName: string; headendIp: string },
): Promise<HostRouting> {
  const pathToHeadend = await routeToHeadend(run, target.headendIp);
  const family = parseIp(target.headendIp)?.family === 6 ? 6 : 4;
  const otherFamily = family === 6 ? 4 : 6;
  return {
    tunName: target.tunName,
    headendIp: target.headendIp,
    pathToHeadend,
    headendHostRouteExists: await hostRouteExists(run, target.headendIp, family),
    sameFamilyPath: await defaultPath(run, family),
    otherFamilyPath: await defaultPath(run, otherFamily),
    connectedNetworks: await connectedNetworks(run, { excludeDevices: [target.tunName] }),
  };
}
