// --script: Debian's vpnc-script configures the tunnel instead of acvpn, from the environment acvpn
// gives it, and ends up with the same split routes acvpn installs itself.

import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec, startHeadend, type Headend } from './helpers/headend.js';
import { startAcvpn } from './helpers/acvpn.js';

const vpncScript = '/usr/share/vpnc-scripts/vpnc-script';
const tunName = 'acvpn-sc0';
let headend: Headend;

interface JsonRoute {
  dst: string;
  dev?: string;
  gateway?: string;
}

async function routes(): Promise<JsonRoute[]> {
  return JSON.parse((await nsExec(headend.clientNs, ['ip', '-4', '-json', 'route', 'show'])).stdout) as JsonRoute[];
}

/** The split routes (includes and the exclude) in a comparable form: "dst dev [via gw]". */
function splitRoutes(table: JsonRoute[]): string[] {
  const split = new Set(['198.18.10.0/24', '198.18.20.0/24', '198.18.10.192/26']);
  return table
    .filter((route) => split.has(route.dst))
    .map((route) => `${route.dst} dev ${route.dev}${route.gateway ? ` via ${route.gateway}` : ''}`)
    .sort();
}

async function connectedRoutes(extra: string[]): Promise<{ split: string[]; resolvConf: string }> {
  const run = startAcvpn(
    headend.clientNs,
    ['connect', '--user', headend.user, '--passwd-on-stdin', '--non-interactive', '--authgroup', 'staff', '--cafile', headend.caFile, '--interface', tunName, ...extra, headend.url],
    `${headend.password}\n`,
  );
  try {
    await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
    const ping = await nsExec(headend.clientNs, ['ping', '-c', '1', '-W', '2', headend.targetHost]);
    expect(ping.exitCode, ping.stdout).toBe(0);
    return { split: splitRoutes(await routes()), resolvConf: await readFile(`/etc/netns/${headend.clientNs}/resolv.conf`, 'utf8') };
  } finally {
    const exit = await run.stop();
    expect(exit.code, run.output()).toBe(0);
  }
}

beforeAll(async () => {
  headend = await startHeadend({ prefix: 'acvpn-sc' });
});

afterAll(async () => {
  await headend?.stop();
});

describe('--script with vpnc-script', () => {
  it('installs the same split routes', async () => {
    const before = await routes();
    const resolvBefore = await readFile(`/etc/netns/${headend.clientNs}/resolv.conf`, 'utf8');

    const own = await connectedRoutes([]);
    const scripted = await connectedRoutes(['--script', vpncScript]);

    expect(own.split).toEqual([
      `198.18.10.0/24 dev ${tunName}`,
      '198.18.10.192/26 dev to-hub via 198.18.0.1',
      `198.18.20.0/24 dev ${tunName}`,
    ]);
    expect(scripted.split).toEqual(own.split);
    // vpnc-script points resolv.conf at the tunnel DNS server itself.
    expect(scripted.resolvConf).toMatch(/nameserver 198\.18\.10\.10/);

    // Both runs leave the host as it was.
    expect(splitRoutes(await routes())).toEqual([]);
    expect((await routes()).length).toBe(before.length);
    expect(await readFile(`/etc/netns/${headend.clientNs}/resolv.conf`, 'utf8')).toBe(resolvBefore);
  });
});
