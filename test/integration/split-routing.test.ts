// Split tunneling against a real ocserv 1.1 in network namespaces. For each headend configuration
// the tests check the exact set of routes acvpn adds to the client namespace, and which hosts are
// reached through the tunnel and which are not. They also check that the routing tables and
// resolv.conf return to their exact earlier bytes after SIGINT, and after SIGKILL followed by
// `acvpn cleanup`.
//
// Route sets are compared as "DST [via GW] dev DEV [proto PROTO]" strings, taken from
// `ip -json route` before and after connecting. The kernel adds its own routes for the TUN
// address (proto kernel), which are part of the expected sets because acvpn assigns that address.

import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAcvpn, startAcvpn, type AcvpnRun } from './helpers/acvpn.js';
import { describeResult, nsExec, nsExecOk, type NsExecResult, sleep, startHeadend, type Headend, type HeadendOptions } from './helpers/headend.js';

const tunName = 'acvpn-sr0';
const tunnelPool = '198.19.0.0/24';
const clientLink = 'to-hub';
/** The client namespace's default router under the headend's `routedClient` option. */
const routerIp = '198.18.1.1';

interface JsonRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  type?: string;
}

interface Snapshot {
  ipv4: string;
  ipv6: string;
  resolvConf: Buffer;
}

/** Addresses the headend assigned, from the "CSTP tunnel established" log line. */
interface Assigned {
  address: string;
  address6?: string;
}

interface RouteCase {
  name: string;
  prefix: string;
  options: Omit<HeadendOptions, 'prefix'>;
  /** The routes acvpn's connection adds, both families, sorted. */
  expectedRoutes(headend: Headend, assigned: Assigned): string[];
  /** Addresses that must route into the TUN device and reply to a ping through it. */
  throughTunnel(headend: Headend): string[];
  /** Addresses that must route into the TUN device, without a host to ping. */
  routedIntoTunnel?: string[];
  /** Addresses that must route through the original path (device and gateway as given). */
  outsideTunnel(headend: Headend): Array<{ address: string; gateway?: string }>;
  /** Addresses of lan hosts that must not reply at all, because only the tunnel reaches the lan. */
  unreachable(headend: Headend): string[];
}

// ---------------------------------------------------------------------------------------------
// Configurations

const splitIncludes = [`198.18.10.0/24 dev ${tunName}`, `198.18.20.0/24 dev ${tunName}`];
const tunnelPoolRoute = `${tunnelPool} dev ${tunName} proto kernel`;
// The kernel gives the TUN device a link-local route whether or not the headend assigned IPv6.
const tunLinkLocal = `fe80::/64 dev ${tunName} proto kernel`;

const cases: RouteCase[] = [
  {
    name: 'split-include only',
    prefix: 'acvpn-sr1',
    options: { splitExclude: false },
    expectedRoutes: () => [...splitIncludes, tunnelPoolRoute, tunLinkLocal],
    throughTunnel: (headend) => [headend.targetHost, '198.18.20.20', headend.dnsServer],
    outsideTunnel: (headend) => [{ address: headend.headendIp }],
    unreachable: () => [],
  },
  {
    name: 'split-include with an exclude inside it',
    prefix: 'acvpn-sr2',
    options: {},
    expectedRoutes: (headend) => [
      ...splitIncludes,
      `198.18.10.192/26 via ${headend.headendIp} dev ${clientLink}`,
      tunnelPoolRoute,
      tunLinkLocal,
    ],
    throughTunnel: (headend) => [headend.targetHost, '198.18.20.20'],
    // The last address before the exclude: only its route is checked, no host has it.
    routedIntoTunnel: ['198.18.10.191'],
    outsideTunnel: (headend) => [
      { address: headend.excludedHost, gateway: headend.headendIp },
      { address: '198.18.10.192', gateway: headend.headendIp },
      { address: headend.headendIp },
    ],
    unreachable: (headend) => [headend.excludedHost],
  },
  {
    // The headend lies in the client's directly connected 198.18.0.0/24, which beats the /1
    // halves by prefix length, so acvpn needs no host route for it here.
    name: 'full tunnel with IPv6',
    prefix: 'acvpn-sr3',
    options: { fullTunnel: true, ipv6: true },
    expectedRoutes: (_headend, assigned) => [
      `0.0.0.0/1 dev ${tunName}`,
      `128.0.0.0/1 dev ${tunName}`,
      tunnelPoolRoute,
      `::/1 dev ${tunName}`,
      `8000::/1 dev ${tunName}`,
      `${assigned.address6 ?? 'no IPv6 address assigned'} dev ${tunName} proto kernel`,
      tunLinkLocal,
    ],
    throughTunnel: (headend) => [headend.targetHost, headend.excludedHost, headend.ipv6?.targetHost ?? 'no IPv6'],
    // Addresses outside the rig: only their routes are asked for, nothing is sent to them.
    routedIntoTunnel: ['192.0.2.99', '2001:db8::99'],
    outsideTunnel: (headend) => [{ address: headend.headendIp }, { address: headend.ipv6?.hubClientIp ?? 'no IPv6' }],
    unreachable: () => [],
  },
  {
    name: 'full tunnel, headend behind a router',
    prefix: 'acvpn-sr6',
    options: { fullTunnel: true, routedClient: true },
    expectedRoutes: (headend) => [
      `0.0.0.0/1 dev ${tunName}`,
      `128.0.0.0/1 dev ${tunName}`,
      `${headend.headendIp} via ${routerIp} dev ${clientLink}`,
      tunnelPoolRoute,
      tunLinkLocal,
    ],
    throughTunnel: (headend) => [headend.targetHost, headend.excludedHost],
    routedIntoTunnel: ['192.0.2.99'],
    outsideTunnel: (headend) => [{ address: headend.headendIp, gateway: routerIp }, { address: routerIp }],
    unreachable: () => [],
  },
  {
    name: 'IPv6 split routes',
    prefix: 'acvpn-sr4',
    options: { ipv6: true },
    expectedRoutes: (headend, assigned) => [
      ...splitIncludes,
      `198.18.10.192/26 via ${headend.headendIp} dev ${clientLink}`,
      tunnelPoolRoute,
      `fd00:10::/64 dev ${tunName}`,
      `fd00:10::c0/122 via ${headend.ipv6?.hubClientIp ?? 'no IPv6'} dev ${clientLink}`,
      `${assigned.address6 ?? 'no IPv6 address assigned'} dev ${tunName} proto kernel`,
      tunLinkLocal,
    ],
    throughTunnel: (headend) => [headend.targetHost, headend.ipv6?.targetHost ?? 'no IPv6'],
    outsideTunnel: (headend) => [
      { address: headend.excludedHost, gateway: headend.headendIp },
      { address: headend.ipv6?.excludedHost ?? 'no IPv6', gateway: headend.ipv6?.hubClientIp ?? 'no IPv6' },
      { address: headend.headendIp },
    ],
    unreachable: (headend) => [headend.excludedHost, headend.ipv6?.excludedHost ?? 'no IPv6'],
  },
  {
    name: 'DNS server outside every include',
    prefix: 'acvpn-sr5',
    options: { dnsOutside: true },
    expectedRoutes: (headend) => [
      ...splitIncludes,
      `198.18.10.192/26 via ${headend.headendIp} dev ${clientLink}`,
      `198.18.30.10 dev ${tunName}`,
      tunnelPoolRoute,
      tunLinkLocal,
    ],
    throughTunnel: (headend) => [headend.dnsServer, headend.targetHost],
    // The rest of the DNS server's network stays outside: only the server's own address is routed.
    outsideTunnel: (headend) => [{ address: '198.18.30.11', gateway: headend.headendIp }],
    unreachable: () => [],
  },
];

// ---------------------------------------------------------------------------------------------
// Helpers

function routeKey(route: JsonRoute): string {
  const type = route.type === undefined || route.type === 'unicast' ? '' : `${route.type} `;
  const via = route.gateway === undefined ? '' : ` via ${route.gateway}`;
  const proto = route.protocol === undefined || route.protocol === 'boot' ? '' : ` proto ${route.protocol}`;
  return `${type}${route.dst}${via} dev ${route.dev ?? '-'}${proto}`;
}

async function takeSnapshot(headend: Headend): Promise<Snapshot> {
  const ipv4 = await nsExecOk(headend.clientNs, ['ip', '-json', 'route']);
  const ipv6 = await nsExecOk(headend.clientNs, ['ip', '-6', '-json', 'route']);
  const resolvConf = await readFile(`/etc/netns/${headend.clientNs}/resolv.conf`);
  return { ipv4: ipv4.stdout, ipv6: ipv6.stdout, resolvConf };
}

function routeKeys(snapshot: Snapshot): string[] {
  return [snapshot.ipv4, snapshot.ipv6].flatMap((text) => (JSON.parse(text) as JsonRoute[]).map(routeKey));
}

/** Routes in `after` that `before` lacks, and routes of `before` that are gone, each sorted. */
function routeDifference(before: Snapshot, after: Snapshot): { added: string[]; removed: string[] } {
  const old = new Set(routeKeys(before));
  const current = new Set(routeKeys(after));
  return {
    added: [...current].filter((key) => !old.has(key)).sort(),
    removed: [...old].filter((key) => !current.has(key)).sort(),
  };
}

async function routeGet(headend: Headend, address: string): Promise<JsonRoute> {
  const result = await nsExecOk(headend.clientNs, ['ip', '-json', 'route', 'get', address]);
  const [route] = JSON.parse(result.stdout) as JsonRoute[];
  if (route === undefined) throw new Error(`ip route get ${address} printed no route: ${result.stdout}`);
  return route;
}

/**
 * Sends up to ATTEMPTS pings, one at a time, and stops at the first reply. Returns "reply" or
 * "no reply: OUTPUT", so a failed check shows ping's output.
 */
async function ping(headend: Headend, address: string, attempts = 1): Promise<string> {
  let result: NsExecResult | undefined;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    result = await nsExec(headend.clientNs, ['ping', '-n', '-c', '1', '-W', '1', address], { timeoutMs: 5_000 });
    if (result.exitCode === 0) return 'reply';
  }
  return `no reply: ${result === undefined ? 'no attempt' : describeResult(result)}`;
}

// NOTE: the first IPv6 ping right after the login sometimes gets no reply, and the hub's
// Ip6InNoRoutes counter rises when it happens. That points at ocserv 1.1.6 installing the route
// to the client's IPv6 address on its vpns device a moment after the CONNECT reply. Pings through
// the tunnel therefore get a few attempts, so a first packet lost on the client side would go
// unnoticed here.
const tunnelPingAttempts = 3;

async function linkExists(headend: Headend, name: string): Promise<boolean> {
  return (await nsExec(headend.clientNs, ['ip', 'link', 'show', 'dev', name])).exitCode === 0;
}

// The kernel deletes a TUN device when its last file descriptor closes, which can trail the
// process's exit by a moment.
async function waitForLinkGone(headend: Headend, name: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    if (!(await linkExists(headend, name))) return;
    await sleep(100);
  }
  throw new Error(`${name} still exists 5 s after acvpn ended`);
}

function connectArgs(headend: Headend, runDir: string): string[] {
  return [
    'connect',
    '--user',
    headend.user,
    '--passwd-on-stdin',
    '--non-interactive',
    '--authgroup',
    'staff',
    '--cafile',
    headend.caFile,
    '--interface',
    tunName,
    '--run-dir',
    runDir,
    '--log-level',
    'debug',
    headend.url,
  ];
}

async function connect(headend: Headend, runDir: string): Promise<{ run: AcvpnRun; assigned: Assigned }> {
  const run = startAcvpn(headend.clientNs, connectArgs(headend, runDir), `${headend.password}\n`);
  try {
    await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
  } catch (error) {
    await run.stop();
    throw error;
  }
  const established = run.records().find((record) => record.msg === 'CSTP tunnel established');
  const address = String(established?.address);
  const address6 = typeof established?.address6 === 'string' ? established.address6 : undefined;
  return { run, assigned: { address, address6 } };
}

// ---------------------------------------------------------------------------------------------
// Tests

describe.each(cases)('split routing: $name', (routeCase) => {
  let headend: Headend;
  let runDir: string;
  let before: Snapshot;

  beforeAll(async () => {
    headend = await startHeadend({ prefix: routeCase.prefix, ...routeCase.options });
    runDir = await mkdtemp(join(tmpdir(), `${routeCase.prefix}-run-`));
    before = await takeSnapshot(headend);
  });

  afterAll(async () => {
    await headend?.stop();
    if (runDir !== undefined) await rm(runDir, { recursive: true, force: true });
  });

  it('exact routes, restored on SIGINT', async () => {
    const { run, assigned } = await connect(headend, runDir);
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      expect(assigned.address).toMatch(/^198\.19\.0\.\d+$/);
      if (routeCase.options.ipv6 === true) expect(assigned.address6).toMatch(/^fd00:acf::/);

      const difference = routeDifference(before, await takeSnapshot(headend));
      expect(difference.removed).toEqual([]);
      expect(difference.added).toEqual(routeCase.expectedRoutes(headend, assigned).sort());

      for (const address of routeCase.throughTunnel(headend)) {
        expect((await routeGet(headend, address)).dev, `route to ${address}`).toBe(tunName);
        expect(await ping(headend, address, tunnelPingAttempts), `ping ${address} through the tunnel`).toBe('reply');
      }
      for (const address of routeCase.routedIntoTunnel ?? []) {
        expect((await routeGet(headend, address)).dev, `route to ${address}`).toBe(tunName);
      }
      for (const { address, gateway } of routeCase.outsideTunnel(headend)) {
        const route = await routeGet(headend, address);
        expect(route.dev, `route to ${address}`).toBe(clientLink);
        expect(route.gateway, `gateway to ${address}`).toBe(gateway);
      }
      // The hub drops traffic between the client link and the lan, so an excluded lan host that
      // replied would prove its packets went through the tunnel.
      for (const address of routeCase.unreachable(headend)) {
        expect(await ping(headend, address), `ping ${address} outside the tunnel`).toMatch(/^no reply/);
      }
    } finally {
      exit = await run.stop();
    }
    expect(exit.code, run.output()).toBe(0);

    expect(await linkExists(headend, tunName)).toBe(false);
    const after = await takeSnapshot(headend);
    expect(after.ipv4).toBe(before.ipv4);
    expect(after.ipv6).toBe(before.ipv6);
    expect(after.resolvConf.equals(before.resolvConf), after.resolvConf.toString('utf8')).toBe(true);
  });

  it('restored after SIGKILL and cleanup', async () => {
    const { run, assigned } = await connect(headend, runDir);
    const expected = routeCase.expectedRoutes(headend, assigned);
    try {
      run.child.kill('SIGKILL');
      expect((await run.exited).signal).toBe('SIGKILL');
    } finally {
      await run.stop();
    }
    await waitForLinkGone(headend, tunName);

    // The kernel took the TUN device's routes along with the device. What is left is exactly
    // the original-path routes, which only the undo file can remove, and the forwarder's
    // resolv.conf.
    const leftover = routeDifference(before, await takeSnapshot(headend));
    expect(leftover.removed).toEqual([]);
    expect(leftover.added).toEqual(expected.filter((route) => !route.includes(` dev ${tunName}`)).sort());
    expect(await readFile(`/etc/netns/${headend.clientNs}/resolv.conf`, 'utf8')).toMatch(/^# Managed by acvpn/);

    const cleanup = await runAcvpn(headend.clientNs, ['cleanup', '--run-dir', runDir]);
    expect(cleanup.code, cleanup.output).toBe(0);

    const after = await takeSnapshot(headend);
    expect(after.ipv4).toBe(before.ipv4);
    expect(after.ipv6).toBe(before.ipv6);
    expect(after.resolvConf.equals(before.resolvConf), after.resolvConf.toString('utf8')).toBe(true);
    expect(await readdir(runDir)).toEqual([]);
  });
});

// NOTE: this test fails against acvpn as of this writing. The headend's host route is installed
// with `ip route replace`, and restore() deletes it instead of putting back the route it
// replaced, so a host route to the headend that the administrator set up is gone after logoff.
describe('split routing: existing host route to the headend', () => {
  let headend: Headend;
  let runDir: string;

  beforeAll(async () => {
    headend = await startHeadend({ prefix: 'acvpn-sr7', fullTunnel: true, routedClient: true });
    runDir = await mkdtemp(join(tmpdir(), 'acvpn-sr7-run-'));
  });

  afterAll(async () => {
    await headend?.stop();
    if (runDir !== undefined) await rm(runDir, { recursive: true, force: true });
  });

  it('keeps the route after SIGINT', async () => {
    const hostRoute = `${headend.headendIp} via ${routerIp} dev ${clientLink}`;
    await nsExecOk(headend.clientNs, ['ip', 'route', 'add', headend.headendIp, 'via', routerIp, 'dev', clientLink]);
    const before = await takeSnapshot(headend);
    expect(routeKeys(before)).toContain(hostRoute);

    const { run } = await connect(headend, runDir);
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      expect((await routeGet(headend, headend.headendIp)).dev).toBe(clientLink);
      expect(await ping(headend, headend.targetHost, tunnelPingAttempts)).toBe('reply');
    } finally {
      exit = await run.stop();
    }
    expect(exit.code, run.output()).toBe(0);

    const after = await takeSnapshot(headend);
    expect(routeKeys(after)).toContain(hostRoute);
    expect(after.ipv4).toBe(before.ipv4);
    expect(after.ipv6).toBe(before.ipv6);
  });
});
