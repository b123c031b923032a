import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { formatNetwork } from '../../../src/core/ip.js';
import type { IpNetwork, TunnelConfig } from '../../../src/cstp/tunnel-config.js';
import { planRoutes, type HostRouting, type RouteEntry } from '../../../src/net/routes/plan.js';

function net(text: string): IpNetwork {
  const [address = '', prefix = ''] = text.split('/');
  return { family: address.includes(':') ? 6 : 4, address, prefixLength: Number(prefix) };
}

function tunnelConfig(overrides: Partial<TunnelConfig> = {}): TunnelConfig {
  return {
    ipv4: { address: '10.8.2.27', prefixLength: 24, netmask: '255.255.255.0' },
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

function hostRouting(overrides: Partial<HostRouting> = {}): HostRouting {
  return {
    tunName: 'tun0',
    headendIp: '198.51.100.7',
    pathToHeadend: { gateway: '192.0.2.1', dev: 'eth0' },
    otherFamilyPath: { gateway: 'fe80::1', dev: 'eth0' },
    connectedNetworks: [net('192.0.2.0/24'), net('fe80::/64')],
    ...overrides,
  };
}

// One line per route, in plan order: "10.1.0.0/16 tunnel include" or "10.5.0.0/16 via 192.0.2.1 dev eth0 exclude".
function render(routes: RouteEntry[]): string[] {
  return routes.map((entry) => {
    const network = formatNetwork(entry.network);
    if (entry.via === 'tunnel') return `${network} tunnel ${entry.role}`;
    const via = entry.gateway === undefined ? '' : ` via ${entry.gateway}`;
    return `${network}${via} dev ${entry.dev} ${entry.role}`;
  });
}

interface PlanCase {
  name: string;
  config: Partial<TunnelConfig>;
  host?: Partial<HostRouting>;
  routes: string[];
  warnings: RegExp[];
}

const cases: PlanCase[] = [
  {
    name: 'split-include only',
    config: { splitInclude: [net('192.168.50.0/24'), net('10.1.0.0/16')], dnsServers: ['10.1.0.53'] },
    routes: ['10.1.0.0/16 tunnel include', '192.168.50.0/24 tunnel include'],
    warnings: [],
  },
  {
    name: 'include with exclude inside',
    config: { splitInclude: [net('10.0.0.0/8')], splitExclude: [net('10.5.0.0/16')] },
    routes: ['10.5.0.0/16 via 192.0.2.1 dev eth0 exclude', '10.0.0.0/8 tunnel include'],
    warnings: [],
  },
  {
    name: 'exclude outside includes',
    config: { splitInclude: [net('10.0.0.0/8')], splitExclude: [net('172.16.0.0/12')] },
    routes: ['172.16.0.0/12 via 192.0.2.1 dev eth0 exclude', '10.0.0.0/8 tunnel include'],
    warnings: [],
  },
  {
    name: 'full tunnel',
    config: { dnsServers: ['10.8.0.53'], splitExclude: [net('203.0.113.0/24')] },
    routes: [
      '198.51.100.7/32 via 192.0.2.1 dev eth0 headend',
      '203.0.113.0/24 via 192.0.2.1 dev eth0 exclude',
      '0.0.0.0/1 tunnel full-tunnel',
      '128.0.0.0/1 tunnel full-tunnel',
    ],
    warnings: [/without an IPv6 address and without client bypass/],
  },
  {
    name: 'full tunnel with client bypass',
    config: { clientBypassProtocol: true },
    routes: ['198.51.100.7/32 via 192.0.2.1 dev eth0 headend', '0.0.0.0/1 tunnel full-tunnel', '128.0.0.0/1 tunnel full-tunnel'],
    warnings: [],
  },
  {
    name: 'include of 0.0.0.0/0',
    config: { splitInclude: [net('0.0.0.0/0')] },
    routes: ['198.51.100.7/32 via 192.0.2.1 dev eth0 headend', '0.0.0.0/1 tunnel full-tunnel', '128.0.0.0/1 tunnel full-tunnel'],
    warnings: [],
  },
  {
    name: 'DNS outside includes',
    config: {
      splitInclude: [net('10.0.0.0/8')],
      dnsServers: ['10.0.0.53', '172.16.0.53', '2001:db8::53'],
    },
    routes: ['10.0.0.0/8 tunnel include', '172.16.0.53/32 tunnel dns'],
    warnings: [],
  },
  {
    name: 'C04 host bits and device routes',
    config: {
      ipv4: { address: '10.8.2.27', prefixLength: 32, netmask: '255.255.255.255' },
      splitInclude: [net('10.1.2.3/16'), net('10.1.2.30/32')],
      splitExclude: [net('172.16.5.9/24')],
    },
    routes: ['172.16.5.0/24 via 192.0.2.1 dev eth0 exclude', '10.1.0.0/16 tunnel include', '10.1.2.30/32 tunnel include'],
    warnings: [
      /^split-include 10\.1\.2\.3\/16 has host bits set: using 10\.1\.0\.0\/16$/,
      /^split-exclude 172\.16\.5\.9\/24 has host bits set: using 172\.16\.5\.0\/24$/,
    ],
  },
  {
    name: 'headend inside an include',
    config: { splitInclude: [net('198.51.100.0/24'), net('10.0.0.0/8')] },
    routes: [
      '198.51.100.7/32 via 192.0.2.1 dev eth0 headend',
      '10.0.0.0/8 tunnel include',
      '198.51.100.0/24 tunnel include',
    ],
    warnings: [],
  },
  {
    name: 'headend inside an exclude inside an include',
    config: { splitInclude: [net('198.51.0.0/16')], splitExclude: [net('198.51.100.0/24')] },
    routes: ['198.51.100.0/24 via 192.0.2.1 dev eth0 exclude', '198.51.0.0/16 tunnel include'],
    warnings: [],
  },
  {
    name: 'headend is an include',
    config: { splitInclude: [net('198.51.100.7/32')] },
    routes: ['198.51.100.7/32 via 192.0.2.1 dev eth0 headend'],
    warnings: [/198\.51\.100\.7\/32 is the headend itself/],
  },
  {
    name: 'headend on the local host',
    config: {},
    host: { headendIp: '127.0.0.1', pathToHeadend: { dev: 'lo', local: true } },
    routes: ['0.0.0.0/1 tunnel full-tunnel', '128.0.0.0/1 tunnel full-tunnel'],
    warnings: [/IPv6/],
  },
  {
    name: 'headend on the LAN',
    config: { splitInclude: [net('192.0.0.0/8')] },
    host: { headendIp: '192.0.2.50', pathToHeadend: { dev: 'eth0' } },
    routes: ['192.0.0.0/8 tunnel include'],
    warnings: [],
  },
  {
    name: 'connected network overlapping includes',
    config: {
      splitInclude: [net('192.168.0.0/16'), net('192.168.1.128/25'), net('192.168.1.0/24')],
      splitExclude: [net('192.168.1.0/24'), net('192.168.1.64/26')],
      dnsServers: ['192.168.1.1'],
    },
    host: { connectedNetworks: [net('192.0.2.0/24'), net('192.168.1.0/24')] },
    routes: ['192.168.0.0/16 tunnel include'],
    warnings: [
      /^include 192\.168\.1\.128\/25 is not routed into the tunnel: it lies in the directly connected network 192\.168\.1\.0\/24/,
      /^include 192\.168\.1\.0\/24 is not routed into the tunnel: it lies in the directly connected network 192\.168\.1\.0\/24/,
    ],
  },
  {
    name: 'DNS server on the LAN',
    config: { splitInclude: [net('10.0.0.0/8')], dnsServers: ['192.0.2.53'] },
    routes: ['10.0.0.0/8 tunnel include'],
    warnings: [/^tunnel DNS server 192\.0\.2\.53\/32 is not routed into the tunnel/],
  },
  {
    name: 'full tunnel keeps connected networks',
    config: {},
    host: { connectedNetworks: [net('192.0.2.0/24'), net('10.0.0.0/8')] },
    routes: ['198.51.100.7/32 via 192.0.2.1 dev eth0 headend', '0.0.0.0/1 tunnel full-tunnel', '128.0.0.0/1 tunnel full-tunnel'],
    warnings: [/IPv6/],
  },
  {
    name: 'include inside the address pool',
    config: { splitInclude: [net('10.8.2.0/24'), net('10.8.2.128/25'), net('10.8.0.0/16')] },
    routes: ['10.8.0.0/16 tunnel include'],
    warnings: [],
  },
  {
    name: 'local-LAN exclude form',
    config: { splitInclude: [net('10.0.0.0/8')], splitExclude: [net('0.0.0.0/32'), net('::/128')], localLanAllowed: true },
    routes: ['10.0.0.0/8 tunnel include'],
    warnings: [],
  },
  {
    name: 'duplicates collapsed',
    config: {
      splitInclude: [net('10.0.0.0/8'), net('10.0.0.0/8'), net('10.9.9.9/8'), net('172.16.0.0/12')],
      splitExclude: [net('172.16.0.0/12'), net('203.0.113.0/24'), net('203.0.113.0/24')],
      dnsServers: ['198.18.0.53', '198.18.0.53'],
    },
    routes: [
      '172.16.0.0/12 via 192.0.2.1 dev eth0 exclude',
      '203.0.113.0/24 via 192.0.2.1 dev eth0 exclude',
      '10.0.0.0/8 tunnel include',
      '198.18.0.53/32 tunnel dns',
    ],
    warnings: [/host bits set/, /^172\.16\.0\.0\/12 is a split-exclude and also a tunnel route \(include\)/],
  },
  {
    name: 'IPv6 include without IPv6 address',
    config: { splitInclude: [net('10.0.0.0/8'), net('2001:db8::/32')], splitExclude: [net('2001:db8:1::/48')] },
    routes: ['10.0.0.0/8 tunnel include'],
    warnings: [/^split-include 2001:db8::\/32 skipped: the headend assigned no IPv6 address$/],
  },
  {
    name: 'IPv6 assigned with IPv6 includes',
    config: {
      ipv6: { address: '2001:db8:8f0:82:8000::b', prefixLength: 64 },
      splitInclude: [net('10.0.0.0/8'), net('2001:db8::/32'), net('2001:db8:8f0:82::/64')],
      splitExclude: [net('2001:db8:1::/48')],
      dnsServers: ['10.0.0.53', '2001:db8:53::c', 'fd00:53::1'],
    },
    routes: [
      '2001:db8:1::/48 via fe80::1 dev eth0 exclude',
      '10.0.0.0/8 tunnel include',
      '2001:db8::/32 tunnel include',
      'fd00:53::1/128 tunnel dns',
    ],
    warnings: [],
  },
  {
    name: 'IPv6 assigned with full tunnel',
    config: {
      ipv6: { address: '2001:db8:8f0:82:8000::b', prefixLength: 64 },
      splitExclude: [net('2001:db8:1::/48'), net('203.0.113.0/24')],
      dnsServers: ['2001:db8:53::c'],
    },
    routes: [
      '198.51.100.7/32 via 192.0.2.1 dev eth0 headend',
      '203.0.113.0/24 via 192.0.2.1 dev eth0 exclude',
      '2001:db8:1::/48 via fe80::1 dev eth0 exclude',
      '0.0.0.0/1 tunnel full-tunnel',
      '128.0.0.0/1 tunnel full-tunnel',
      '::/1 tunnel full-tunnel',
      '8000::/1 tunnel full-tunnel',
    ],
    warnings: [],
  },
  {
    name: 'IPv6 headend with full tunnel',
    config: { ipv6: { address: '2001:db8:8f0:82:8000::b', prefixLength: 64 }, splitExclude: [net('203.0.113.0/24')] },
    host: {
      headendIp: '2001:db8:ffff::7',
      pathToHeadend: { gateway: 'fe80::1', dev: 'eth0' },
      otherFamilyPath: { gateway: '192.0.2.1', dev: 'eth0' },
    },
    routes: [
      '203.0.113.0/24 via 192.0.2.1 dev eth0 exclude',
      '2001:db8:ffff::7/128 via fe80::1 dev eth0 headend',
      '0.0.0.0/1 tunnel full-tunnel',
      '128.0.0.0/1 tunnel full-tunnel',
      '::/1 tunnel full-tunnel',
      '8000::/1 tunnel full-tunnel',
    ],
    warnings: [],
  },
  {
    name: 'existing host route to the headend kept',
    config: {},
    host: { headendHostRouteExists: true },
    routes: ['0.0.0.0/1 tunnel full-tunnel', '128.0.0.0/1 tunnel full-tunnel'],
    warnings: [/without an IPv6 address and without client bypass/],
  },
  {
    name: 'on-link headend, exclude via default router',
    config: { splitInclude: [net('198.18.10.0/24')], splitExclude: [net('198.18.10.192/26')] },
    host: {
      headendIp: '198.18.0.1',
      pathToHeadend: { dev: 'to-hub' },
      sameFamilyPath: { gateway: '198.18.0.1', dev: 'to-hub' },
      connectedNetworks: [net('198.18.0.0/24')],
    },
    routes: ['198.18.10.192/26 via 198.18.0.1 dev to-hub exclude', '198.18.10.0/24 tunnel include'],
    warnings: [],
  },
  {
    name: 'exclude without a path for its family',
    config: { ipv6: { address: '2001:db8:8f0:82:8000::b', prefixLength: 64 }, splitExclude: [net('2001:db8:1::/48')] },
    host: { otherFamilyPath: undefined },
    routes: [
      '198.51.100.7/32 via 192.0.2.1 dev eth0 headend',
      '0.0.0.0/1 tunnel full-tunnel',
      '128.0.0.0/1 tunnel full-tunnel',
      '::/1 tunnel full-tunnel',
      '8000::/1 tunnel full-tunnel',
    ],
    warnings: [/^split-exclude 2001:db8:1::\/48 skipped: the host has no IPv6 route/],
  },
];

describe('planRoutes', () => {
  it.each(cases)('$name', ({ config, host, routes, warnings }) => {
    const plan = planRoutes(tunnelConfig(config), hostRouting(host));

    expect(render(plan.routes)).toEqual(routes);
    expect(plan.warnings).toHaveLength(warnings.length);
    warnings.forEach((pattern, index) => expect(plan.warnings[index]).toMatch(pattern));
    expect(plan.tunName).toBe('tun0');
  });

  it('never gives a tunnel route a next hop', () => {
    const plan = planRoutes(
      tunnelConfig({ splitInclude: [net('10.1.2.3/16'), net('10.1.2.30/32')], dnsServers: ['172.16.0.53'] }),
      hostRouting(),
    );

    const tunnelRoutes = plan.routes.filter((entry) => entry.via === 'tunnel');
    expect(tunnelRoutes).toHaveLength(3);
    for (const entry of tunnelRoutes) expect(Object.keys(entry).sort()).toEqual(['network', 'role', 'via']);
  });

  it('does not depend on input order', () => {
    const includes = [net('10.0.0.0/8'), net('172.16.0.0/12'), net('192.168.50.0/24'), net('2001:db8::/32')];
    const excludes = [net('10.5.0.0/16'), net('2001:db8:1::/48')];
    const config = { ipv6: { address: '2001:db8:8f0:82:8000::b', prefixLength: 64 }, dnsServers: ['198.18.0.53', 'fd00::53'] };

    const forward = planRoutes(tunnelConfig({ ...config, splitInclude: includes, splitExclude: excludes }), hostRouting());
    const backward = planRoutes(
      tunnelConfig({ ...config, splitInclude: [...includes].reverse(), splitExclude: [...excludes].reverse(), dnsServers: ['fd00::53', '198.18.0.53'] }),
      hostRouting({ connectedNetworks: [...hostRouting().connectedNetworks].reverse() }),
    );

    expect(render(backward.routes)).toEqual(render(forward.routes));
  });

  it('rejects a headend path through the TUN device', () => {
    const attempt = () => planRoutes(tunnelConfig(), hostRouting({ pathToHeadend: { dev: 'tun0' } }));

    expect(attempt).toThrow(AcvpnError);
    expect(attempt).toThrow(/already goes through tun0/);
  });

  it('rejects a headend that is not an IP literal', () => {
    expect(() => planRoutes(tunnelConfig(), hostRouting({ headendIp: 'vpn.example.com' }))).toThrow(/not an IP literal/);
  });
});
