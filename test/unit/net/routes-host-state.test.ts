import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import type { IpRunner } from '../../../src/net/ip-command.js';
import {
  connectedNetworks,
  defaultPath,
  parseDestination,
  readHostRouting,
  routeToHeadend,
  snapshotRoutes,
} from '../../../src/net/routes/host-state.js';

// ip output captured from iproute2 6.1 in a test namespace (veth v0 to a router, tunrt0 a TUN).
const ipv4Table =
  '[{"dst":"default","gateway":"198.18.70.1","dev":"v0","flags":[]},' +
  '{"dst":"10.1.0.0/16","dev":"tunrt0","scope":"link","flags":["linkdown"]},' +
  '{"dst":"10.8.2.0/24","dev":"tunrt0","protocol":"kernel","scope":"link","prefsrc":"10.8.2.27","flags":["linkdown"]},' +
  '{"dst":"172.20.0.0/16","gateway":"198.18.70.9","dev":"v0","flags":[]},' +
  '{"dst":"198.18.70.0/24","dev":"v0","protocol":"kernel","scope":"link","prefsrc":"198.18.70.2","flags":[]},' +
  '{"dst":"198.18.70.1","dev":"v0","protocol":"dhcp","scope":"link","flags":[]},' +
  '{"type":"blackhole","dst":"203.0.113.0/24","flags":[]}]\n';
const ipv6Table =
  '[{"dst":"fd00:70::/64","dev":"v0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},' +
  '{"dst":"fd00:99::/64","dev":"tunrt0","protocol":"kernel","metric":256,"flags":["linkdown"],"pref":"medium"},' +
  '{"dst":"fe80::/64","dev":"v0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},' +
  '{"dst":"default","gateway":"fd00:70::1","dev":"v0","metric":1024,"flags":[],"pref":"medium"}]\n';

function fakeIp(outputs: Record<string, string>): { run: IpRunner; calls: string[] } {
  const calls: string[] = [];
  const run: IpRunner = async (args) => {
    const key = args.join(' ');
    calls.push(key);
    const stdout = outputs[key];
    if (stdout === undefined) throw new AcvpnError('ENV_COMMAND_FAILED', `unexpected ip ${key}`, { stderr: '' });
    return { stdout };
  };
  return { run, calls };
}

describe('routeToHeadend', () => {
  it('returns the gateway path', async () => {
    const { run } = fakeIp({
      '-json route get 203.0.113.10':
        '[{"dst":"203.0.113.10","gateway":"198.18.70.1","dev":"v0","prefsrc":"198.18.70.2","flags":[],"uid":0,"cache":[]}]\n',
    });

    expect(await routeToHeadend(run, '203.0.113.10')).toEqual({ gateway: '198.18.70.1', dev: 'v0', src: '198.18.70.2', local: false });
  });

  it('returns an IPv6 path', async () => {
    const { run } = fakeIp({
      '-json route get 2001:db8::5':
        '[{"dst":"2001:db8::5","from":"::","gateway":"fd00:70::1","dev":"v0","prefsrc":"fd00:70::2","metric":1024,"flags":[],"pref":"medium"}]\n',
    });

    expect(await routeToHeadend(run, '2001:db8::5')).toEqual({ gateway: 'fd00:70::1', dev: 'v0', src: 'fd00:70::2', local: false });
  });

  it('marks a local headend', async () => {
    const { run } = fakeIp({
      '-json route get 127.0.0.1': '[{"type":"local","dst":"127.0.0.1","dev":"lo","prefsrc":"127.0.0.1","flags":[],"uid":0,"cache":["local"]}]\n',
    });

    expect(await routeToHeadend(run, '127.0.0.1')).toMatchObject({ dev: 'lo', local: true });
  });

  it('rejects a name instead of an address', async () => {
    const { run, calls } = fakeIp({});

    await expect(routeToHeadend(run, 'vpn.example.com')).rejects.toThrow(/not an IP literal/);
    expect(calls).toEqual([]);
  });

  it('rejects output that is not JSON', async () => {
    const { run } = fakeIp({ '-json route get 203.0.113.10': '203.0.113.10 via 198.18.70.1 dev v0\n' });

    await expect(routeToHeadend(run, '203.0.113.10')).rejects.toThrow(/printed output that is not JSON/);
  });

  it('reports an empty answer as unreachable', async () => {
    const { run } = fakeIp({ '-json route get 203.0.113.10': '[]\n' });

    await expect(routeToHeadend(run, '203.0.113.10')).rejects.toMatchObject({ code: 'NETWORK_UNREACHABLE' });
  });
});

describe('defaultPath', () => {
  it('picks the lowest metric', async () => {
    const { run } = fakeIp({
      '-6 -json route show table main default':
        '[{"dst":"default","gateway":"fd00:70::9","dev":"v1","metric":2048,"flags":[]},' +
        '{"dst":"default","gateway":"fd00:70::1","dev":"v0","metric":1024,"flags":[]}]\n',
    });

    expect(await defaultPath(run, 6)).toEqual({ gateway: 'fd00:70::1', dev: 'v0' });
  });

  it('takes the first next hop of a multipath route', async () => {
    const { run } = fakeIp({
      '-4 -json route show table main default':
        '[{"dst":"default","flags":[],"nexthops":[{"gateway":"198.18.70.1","dev":"v0","weight":1,"flags":[]},{"gateway":"198.18.71.1","dev":"v1","weight":1,"flags":[]}]}]\n',
    });

    expect(await defaultPath(run, 4)).toEqual({ gateway: '198.18.70.1', dev: 'v0' });
  });

  it('returns undefined without a default route', async () => {
    const { run } = fakeIp({ '-6 -json route show table main default': '[]\n' });

    expect(await defaultPath(run, 6)).toBeUndefined();
  });
});

describe('connectedNetworks', () => {
  it('returns device routes except the TUN device', async () => {
    const { run } = fakeIp({
      '-4 -json route show table main': ipv4Table,
      '-6 -json route show table main': ipv6Table,
    });

    const networks = await connectedNetworks(run, { excludeDevices: ['tunrt0'] });

    expect(networks).toEqual([
      { family: 4, address: '198.18.70.0', prefixLength: 24 },
      { family: 4, address: '198.18.70.1', prefixLength: 32 },
      { family: 6, address: 'fd00:70::', prefixLength: 64 },
      { family: 6, address: 'fe80::', prefixLength: 64 },
    ]);
  });
});

describe('readHostRouting', () => {
  it('collects the planner input', async () => {
    const { run } = fakeIp({
      '-json route get 203.0.113.10': '[{"dst":"203.0.113.10","gateway":"198.18.70.1","dev":"v0","prefsrc":"198.18.70.2","flags":[]}]',
      '-6 -json route show table main default': '[{"dst":"default","gateway":"fd00:70::1","dev":"v0","metric":1024,"flags":[]}]',
      '-4 -json route show table main default': '[{"dst":"default","gateway":"198.18.70.1","dev":"v0","flags":[]}]',
      '-4 -json route show table main 203.0.113.10/32': '[]',
      '-4 -json route show table main': ipv4Table,
      '-6 -json route show table main': ipv6Table,
    });

    const host = await readHostRouting(run, { tunName: 'tunrt0', headendIp: '203.0.113.10' });

    expect(host.tunName).toBe('tunrt0');
    expect(host.pathToHeadend).toEqual({ gateway: '198.18.70.1', dev: 'v0', src: '198.18.70.2', local: false });
    expect(host.otherFamilyPath).toEqual({ gateway: 'fd00:70::1', dev: 'v0' });
    expect(host.sameFamilyPath).toEqual({ gateway: '198.18.70.1', dev: 'v0' });
    expect(host.headendHostRouteExists).toBe(false);
    expect(host.connectedNetworks).toHaveLength(4);
  });
});

describe('snapshotRoutes', () => {
  it('keeps ip output byte for byte', async () => {
    const { run } = fakeIp({ '-4 -json route show table main': ipv4Table, '-6 -json route show table main': ipv6Table });

    expect(await snapshotRoutes(run)).toEqual({ ipv4: ipv4Table, ipv6: ipv6Table });
  });
});

describe('parseDestination', () => {
  it.each([
    ['10.1.0.0/16', 4, '10.1.0.0/16'],
    ['198.18.70.1', 4, '198.18.70.1/32'],
    ['2001:db8::/32', 6, '2001:db8::/32'],
    ['fd00::1', 6, 'fd00::1/128'],
  ] as const)('parses %s', (dst, family, expected) => {
    const network = parseDestination(dst, family);

    expect(network).toBeDefined();
    expect(`${network?.address}/${network?.prefixLength}`).toBe(expected);
  });

  it.each([
    ['10.1.0.0/16', 6],
    ['10.1.0.0/33', 4],
    ['default', 4],
  ] as const)('rejects %s as IPv%s', (dst, family) => {
    expect(parseDestination(dst, family)).toBeUndefined();
  });
});
