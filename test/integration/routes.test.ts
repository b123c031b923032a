// Route plans applied to a real kernel routing table, in a network namespace this file creates.
//
// Layout: namespace "client" contains the veth end v0 (198.18.70.2/24, fd00:70::2/64) with default
// routes through the "router" namespace (198.18.70.1, fd00:70::1), which is the original path,
// and a TUN device made with `ip tuntap add` that has no process attached (its routes show
// "linkdown", which the kernel accepts). Nothing sends a packet: `ip route get` only asks the
// kernel which route it would use.

import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/log.js';
import type { IpNetwork, TunnelConfig } from '../../src/cstp/tunnel-config.js';
import { runIp, type IpRunner } from '../../src/net/ip-command.js';
import { configureTunLink, setTunMtu } from '../../src/net/link.js';
import { RouteManager } from '../../src/net/routes/apply.js';
import { readHostRouting, snapshotRoutes, type RouteSnapshot } from '../../src/net/routes/host-state.js';
import { planRoutes, type RoutePlan } from '../../src/net/routes/plan.js';

const prefix = 'acvpn-rt-';
const clientNs = `${prefix}${process.pid}-c`;
const routerNs = `${prefix}${process.pid}-r`;
const tunName = 'tunrt0';
const headendIp = '203.0.113.10';
const silent = createLogger({ level: 'silent', json: true });

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sweepNamespaces(): void {
  const names = ip('netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
  for (const name of names) ip('netns', 'del', name);
}

// Every ip command of the code under test runs inside the client namespace.
const run: IpRunner = (args, options) => runIp(['-n', clientNs, ...args], options);

function net(text: string): IpNetwork {
  const [address = '', length = ''] = text.split('/');
  return { family: address.includes(':') ? 6 : 4, address, prefixLength: Number(length) };
}

function tunnelConfig(overrides: Partial<TunnelConfig>): TunnelConfig {
  return {
    ipv4: { address: '10.8.2.27', prefixLength: 24, netmask: '255.255.255.0' },
    ipv6: { address: 'fd00:99::5', prefixLength: 64 },
    dnsServers: [],
    nbnsServers: [],
    defaultDomains: [],
    splitDnsDomains: [],
    tunnelAllDns: false,
    splitInclude: [],
    splitExclude: [],
    localLanAllowed: false,
    clientBypassProtocol: false,
    mtu: 1400,
    rekeyMethod: 'ssl',
    rawHeaders: [],
    warnings: [],
    ...overrides,
  };
}

// "DST [via GW] dev DEV" for every route of both families, as ip prints them.
function routeKeys(snapshot: RouteSnapshot): Set<string> {
  const keys = new Set<string>();
  for (const text of [snapshot.ipv4, snapshot.ipv6]) {
    for (const route of JSON.parse(text) as Array<{ dst: string; gateway?: string; dev?: string; type?: string }>) {
      const via = route.gateway === undefined ? '' : ` via ${route.gateway}`;
      keys.add(`${route.type ? `${route.type} ` : ''}${route.dst}${via} dev ${route.dev ?? '-'}`);
    }
  }
  return keys;
}

async function addedRoutes(before: RouteSnapshot): Promise<string[]> {
  const after = routeKeys(await snapshotRoutes(run));
  const removed = [...routeKeys(before)].filter((key) => !after.has(key));
  expect(removed).toEqual([]);
  const original = routeKeys(before);
  return [...after].filter((key) => !original.has(key)).sort();
}

async function routeDevice(address: string): Promise<string> {
  const [route] = JSON.parse((await run(['-json', 'route', 'get', address])).stdout) as Array<{ dev: string }>;
  return route?.dev ?? '';
}

async function plan(config: TunnelConfig): Promise<RoutePlan> {
  return planRoutes(config, await readHostRouting(run, { tunName, headendIp }));
}

describe('routes in a network namespace', () => {
  let empty: RouteSnapshot;
  let withLink: RouteSnapshot;
  let directory: string;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test creates network namespaces and needs root');
    sweepNamespaces();
    directory = await mkdtemp(join(tmpdir(), 'acvpn-rt-'));

    ip('netns', 'add', clientNs);
    ip('netns', 'add', routerNs);
    ip('-n', clientNs, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', routerNs);
    ip('-n', clientNs, 'link', 'set', 'lo', 'up');
    ip('-n', clientNs, 'addr', 'add', '198.18.70.2/24', 'dev', 'v0');
    ip('-n', clientNs, '-6', 'addr', 'add', 'fd00:70::2/64', 'dev', 'v0', 'nodad');
    ip('-n', clientNs, 'link', 'set', 'v0', 'up');
    ip('-n', routerNs, 'addr', 'add', '198.18.70.1/24', 'dev', 'v1');
    ip('-n', routerNs, '-6', 'addr', 'add', 'fd00:70::1/64', 'dev', 'v1', 'nodad');
    ip('-n', routerNs, 'link', 'set', 'v1', 'up');
    ip('-n', clientNs, 'route', 'add', 'default', 'via', '198.18.70.1');
    ip('-n', clientNs, '-6', 'route', 'add', 'default', 'via', 'fd00:70::1');
    ip('-n', clientNs, 'tuntap', 'add', 'mode', 'tun', 'name', tunName);

    // The veth link comes up asynchronously; its IPv6 routes appear once it has.
    for (let attempt = 0; attempt < 50 && !ip('-n', clientNs, '-6', 'route', 'show').includes('fe80::/64'); attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    empty = await snapshotRoutes(run);
  });

  afterAll(async () => {
    for (const name of [clientNs, routerNs]) {
      try {
        ip('netns', 'del', name);
      } catch {
        // Not created, because setup failed before it.
      }
    }
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  it('configures the TUN link', async () => {
    await configureTunLink(run, {
      name: tunName,
      ipv4: { address: '10.8.2.27', prefixLength: 24 },
      ipv6: { address: 'fd00:99::5', prefixLength: 64 },
      mtu: 1400,
    });

    expect(await addedRoutes(empty)).toEqual([`10.8.2.0/24 dev ${tunName}`, `fd00:99::/64 dev ${tunName}`]);
    const [link] = JSON.parse(ip('-n', clientNs, '-json', 'addr', 'show', 'dev', tunName)) as Array<{
      mtu: number;
      flags: string[];
      addr_info: Array<{ local: string; prefixlen: number; scope: string }>;
    }>;
    expect(link?.mtu).toBe(1400);
    expect(link?.flags).toContain('UP');
    const addresses = link?.addr_info.filter((entry) => entry.scope === 'global').map((entry) => `${entry.local}/${entry.prefixlen}`);
    expect(addresses).toEqual(['10.8.2.27/24', 'fd00:99::5/64']);
    withLink = await snapshotRoutes(run);
  });

  it('reads the original path', async () => {
    const host = await readHostRouting(run, { tunName, headendIp });

    expect(host.pathToHeadend).toEqual({ gateway: '198.18.70.1', dev: 'v0', src: '198.18.70.2', local: false });
    expect(host.otherFamilyPath).toEqual({ gateway: 'fd00:70::1', dev: 'v0' });
    const connected = host.connectedNetworks.map((network) => `${network.address}/${network.prefixLength}`).sort();
    expect(connected).toEqual(['198.18.70.0/24', 'fd00:70::/64', 'fe80::/64']);
  });

  it('applies and restores a split plan', async () => {
    const splitPlan = await plan(
      tunnelConfig({
        splitInclude: [net('10.1.0.0/16'), net('10.1.2.30/32'), net('10.8.2.0/24'), net('198.18.70.128/25'), net('2001:db8::/32')],
        splitExclude: [net('10.1.5.0/24'), net('2001:db8:1::/48'), net('0.0.0.0/32')],
        dnsServers: ['10.1.0.53', '172.16.0.53', 'fd00:53::1'],
      }),
    );
    const manager = new RouteManager(run, silent);

    await manager.apply(splitPlan);

    expect(await addedRoutes(withLink)).toEqual(
      [
        `10.1.0.0/16 dev ${tunName}`,
        `10.1.2.30 dev ${tunName}`,
        '10.1.5.0/24 via 198.18.70.1 dev v0',
        `172.16.0.53 dev ${tunName}`,
        `2001:db8::/32 dev ${tunName}`,
        '2001:db8:1::/48 via fd00:70::1 dev v0',
        `fd00:53::1 dev ${tunName}`,
      ].sort(),
    );
    expect(ip('-n', clientNs, 'route', 'show', 'dev', tunName)).not.toContain('via');
    expect(await routeDevice('10.1.9.9')).toBe(tunName);
    expect(await routeDevice('10.1.5.9')).toBe('v0');
    expect(await routeDevice('198.18.70.200')).toBe('v0');
    expect(await routeDevice(headendIp)).toBe('v0');

    await manager.restore();

    expect(await snapshotRoutes(run)).toEqual(withLink);
  });

  it('applies and restores a full-tunnel plan', async () => {
    const fullPlan = await plan(tunnelConfig({ splitExclude: [net('198.51.100.0/24')], dnsServers: ['10.8.0.53'] }));
    const manager = new RouteManager(run, silent);

    await manager.apply(fullPlan);

    expect(await addedRoutes(withLink)).toEqual(
      [
        `0.0.0.0/1 dev ${tunName}`,
        `128.0.0.0/1 dev ${tunName}`,
        `::/1 dev ${tunName}`,
        `8000::/1 dev ${tunName}`,
        '198.51.100.0/24 via 198.18.70.1 dev v0',
        `${headendIp} via 198.18.70.1 dev v0`,
      ].sort(),
    );
    expect(await routeDevice('192.0.2.77')).toBe(tunName);
    expect(await routeDevice('2001:db8::77')).toBe(tunName);
    expect(await routeDevice(headendIp)).toBe('v0');
    expect(await routeDevice('198.51.100.5')).toBe('v0');
    expect(await routeDevice('198.18.70.200')).toBe('v0');
    expect(await routeDevice('fd00:70::9')).toBe('v0');

    await manager.restore();
    await manager.restore();

    expect(await snapshotRoutes(run)).toEqual(withLink);
  });

  it('rolls back a plan with a failing route', async () => {
    const broken: RoutePlan = {
      tunName,
      routes: [
        { network: net('10.1.0.0/16'), via: 'tunnel', role: 'include' },
        // No router at 198.18.99.1 is on-link, so the kernel rejects this next hop.
        { network: net('10.2.0.0/16'), via: 'original', gateway: '198.18.99.1', dev: 'v0', role: 'exclude' },
        { network: net('10.3.0.0/16'), via: 'tunnel', role: 'include' },
      ],
      warnings: [],
    };
    const manager = new RouteManager(run, silent);

    await expect(manager.apply(broken)).rejects.toThrow(/could not install 1 of 3 routes.*route add 10\.2\.0\.0\/16 via 198\.18\.99\.1 dev v0/);

    expect(manager.routes).toEqual([]);
    expect(await snapshotRoutes(run)).toEqual(withLink);
  });

  it('undo file removes leftover routes', async () => {
    const path = join(directory, 'run', 'routes.json');
    const fullPlan = await plan(tunnelConfig({ splitExclude: [net('198.51.100.0/24')] }));
    await new RouteManager(run, silent, { undoFile: path }).apply(fullPlan);
    expect(await addedRoutes(withLink)).toHaveLength(6);

    const removed = await RouteManager.undoFromFile(run, path);

    expect(removed).toBe(6);
    expect(await snapshotRoutes(run)).toEqual(withLink);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reconnect changes MTU and addresses', async () => {
    await setTunMtu(run, tunName, 1300);
    await configureTunLink(run, { name: tunName, ipv4: { address: '10.8.3.5', prefixLength: 24 }, mtu: 1300 });

    expect(await addedRoutes(empty)).toEqual([`10.8.3.0/24 dev ${tunName}`]);
    const [link] = JSON.parse(ip('-n', clientNs, '-json', 'addr', 'show', 'dev', tunName)) as Array<{
      mtu: number;
      addr_info: Array<{ local: string; scope: string }>;
    }>;
    expect(link?.mtu).toBe(1300);
    expect(link?.addr_info.filter((entry) => entry.scope === 'global').map((entry) => entry.local)).toEqual(['10.8.3.5']);

    await configureTunLink(run, {
      name: tunName,
      ipv4: { address: '10.8.2.27', prefixLength: 24 },
      ipv6: { address: 'fd00:99::5', prefixLength: 64 },
      mtu: 1400,
    });
    expect(await snapshotRoutes(run)).toEqual(withLink);
  });

  it('restore after TUN device vanished', async () => {
    const fullPlan = await plan(tunnelConfig({ splitExclude: [net('198.51.100.0/24')] }));
    const manager = new RouteManager(run, silent);
    await manager.apply(fullPlan);

    ip('-n', clientNs, 'link', 'del', tunName);
    await manager.restore();

    expect(manager.routes).toEqual([]);
    expect(await snapshotRoutes(run)).toEqual(empty);
  });
});
