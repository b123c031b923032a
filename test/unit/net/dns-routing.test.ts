import { describe, expect, it } from 'vitest';
import type { TunnelConfig } from '../../../src/cstp/tunnel-config.js';
import { chooseUpstream, decideDnsRouting, isNameInDomain, normalizeDomain, type DnsRouting } from '../../../src/net/dns/routing.js';

function tunnelConfig(overrides: Partial<TunnelConfig> = {}): TunnelConfig {
  return {
    ipv4: { address: '10.8.2.27', prefixLength: 24, netmask: '255.255.255.0' },
    dnsServers: ['10.20.0.53'],
    nbnsServers: [],
    defaultDomains: [],
    splitDnsDomains: [],
    tunnelAllDns: false,
    splitInclude: [{ family: 4, address: '10.20.0.0', prefixLength: 16 }],
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

describe('decideDnsRouting', () => {
  it.each([
    {
      case: 'split-DNS list and default domain',
      config: { splitDnsDomains: ['corp.example', 'Lab.Internal.'], defaultDomains: ['corp.example'] },
      fullTunnel: false,
      expected: { mode: 'split', tunnelDomains: ['corp.example', 'lab.internal'], searchDomains: ['corp.example'] },
    },
    {
      case: 'split-DNS list, default domain outside it',
      config: { splitDnsDomains: ['lab.internal'], defaultDomains: ['corp.example'] },
      fullTunnel: false,
      expected: { mode: 'split', tunnelDomains: ['lab.internal'], searchDomains: ['corp.example'] },
    },
    {
      case: 'no split-DNS list, default domain',
      config: { defaultDomains: ['corp.example'] },
      fullTunnel: false,
      expected: { mode: 'split', tunnelDomains: ['corp.example'], searchDomains: ['corp.example'] },
    },
    {
      case: 'neither split-DNS list nor default domain',
      config: {},
      fullTunnel: false,
      expected: { mode: 'none', tunnelDomains: [], searchDomains: [] },
    },
    {
      case: 'Tunnel-All-DNS with a split-DNS list',
      config: { tunnelAllDns: true, splitDnsDomains: ['corp.example'], defaultDomains: ['corp.example'] },
      fullTunnel: false,
      expected: { mode: 'all-tunnel', tunnelDomains: [], searchDomains: ['corp.example'] },
    },
    {
      case: 'full tunnel with a split-DNS list',
      config: { splitDnsDomains: ['corp.example'], splitInclude: [] },
      fullTunnel: true,
      expected: { mode: 'all-tunnel', tunnelDomains: [], searchDomains: [] },
    },
    {
      case: 'full tunnel without any domain',
      config: { splitInclude: [] },
      fullTunnel: true,
      expected: { mode: 'all-tunnel', tunnelDomains: [], searchDomains: [] },
    },
  ])('$case', ({ config, fullTunnel, expected }) => {
    const routing = decideDnsRouting(tunnelConfig(config as Partial<TunnelConfig>), fullTunnel);

    expect(routing.mode).toBe(expected.mode);
    expect(routing.tunnelDomains).toEqual(expected.tunnelDomains);
    expect(routing.searchDomains).toEqual(expected.searchDomains);
    expect(routing.warnings).toEqual([]);
  });

  it('keeps every query local without a tunnel DNS server', () => {
    const routing = decideDnsRouting(tunnelConfig({ dnsServers: [], tunnelAllDns: true, defaultDomains: ['corp.example'] }), true);

    expect(routing.mode).toBe('none');
    expect(routing.searchDomains).toEqual(['corp.example']);
    expect(routing.warnings).toHaveLength(1);
    expect(routing.warnings[0]).toContain('X-CSTP-DNS');
  });

  it('drops invalid domains with a warning', () => {
    const routing = decideDnsRouting(
      tunnelConfig({ splitDnsDomains: ['corp.example', 'bad domain', 'x\nnameserver 6.6.6.6', '.', 'CORP.example'] }),
      false,
    );

    expect(routing.tunnelDomains).toEqual(['corp.example']);
    expect(routing.warnings).toHaveLength(3);
    expect(routing.warnings[0]).toContain('"bad domain"');
  });
});

describe('domain matching', () => {
  it.each([
    ['corp.example', 'corp.example', true],
    ['a.corp.example', 'corp.example', true],
    ['x.y.a.corp.example', 'corp.example', true],
    ['CORP.example.', 'corp.example', true],
    ['A.Corp.Example', 'corp.example', true],
    ['notcorp.example', 'corp.example', false],
    ['corp.example.com', 'corp.example', false],
    ['example', 'corp.example', false],
    ['', 'corp.example', false],
    ['corp', 'corp', true],
    ['a.corp', 'corp', true],
    ['acorp', 'corp', false],
  ])('%s in %s is %s', (name, domain, expected) => {
    expect(isNameInDomain(name, domain)).toBe(expected);
  });

  it.each([
    ['Corp.Example.', 'corp.example'],
    [' corp.example ', 'corp.example'],
    ['_ldap._tcp.corp.example', '_ldap._tcp.corp.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['', undefined],
    ['.', undefined],
    ['a..b', undefined],
    ['a b', undefined],
    ['a#b', undefined],
    [`${'a'.repeat(64)}.example`, undefined],
    [`${'a.'.repeat(127)}ab`, undefined],
  ])('normalizeDomain(%j) is %j', (domain, expected) => {
    expect(normalizeDomain(domain)).toBe(expected);
  });

  it('chooses the upstream by mode', () => {
    const split: DnsRouting = { mode: 'split', tunnelDomains: ['corp.example', 'lab.internal'], searchDomains: [], warnings: [] };
    const all: DnsRouting = { ...split, mode: 'all-tunnel', tunnelDomains: [] };
    const none: DnsRouting = { ...split, mode: 'none', tunnelDomains: [] };

    expect(chooseUpstream(split, 'host.lab.internal')).toBe('tunnel');
    expect(chooseUpstream(split, 'WWW.CORP.EXAMPLE.')).toBe('tunnel');
    expect(chooseUpstream(split, 'www.public.test')).toBe('host');
    expect(chooseUpstream(split, 'notcorp.example')).toBe('host');
    expect(chooseUpstream(all, 'www.public.test')).toBe('tunnel');
    expect(chooseUpstream(none, 'a.corp.example')).toBe('host');
  });
});
