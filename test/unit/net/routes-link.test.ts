import { describe, expect, it } from 'vitest';
import type { IpRunner } from '../../../src/net/ip-command.js';
import { configureTunLink, setTunMtu } from '../../../src/net/link.js';

// Records each ip call. `addr show` returns the addresses given.
function fakeIp(addrShow = '[]'): { run: IpRunner; calls: string[] } {
  const calls: string[] = [];
  const run: IpRunner = async (args) => {
    calls.push(args.join(' '));
    return { stdout: args.includes('show') ? addrShow : '' };
  };
  return { run, calls };
}

// `ip -json addr show dev tun0` on a TUN device left with the addresses of an earlier session.
const earlierSession = JSON.stringify([
  {
    ifindex: 3,
    ifname: 'tun0',
    mtu: 1400,
    addr_info: [
      { family: 'inet', local: '10.8.2.27', prefixlen: 24, scope: 'global' },
      { family: 'inet', local: '10.8.2.99', prefixlen: 24, scope: 'global' },
      { family: 'inet6', local: '2001:db8:8f0:82:8000::b', prefixlen: 64, scope: 'global' },
      { family: 'inet6', local: 'fe80::1234', prefixlen: 64, scope: 'link' },
    ],
  },
]);

describe('configureTunLink', () => {
  it('sets the MTU, brings the link up, adds addresses', async () => {
    const { run, calls } = fakeIp();

    await configureTunLink(run, {
      name: 'tun0',
      ipv4: { address: '10.8.2.27', prefixLength: 24 },
      ipv6: { address: '2001:DB8:8f0:82:8000:0:0:b', prefixLength: 64 },
      mtu: 1400,
    });

    expect(calls).toEqual([
      'link set dev tun0 mtu 1400 up',
      '-json addr show dev tun0',
      'addr replace 10.8.2.27/24 dev tun0',
      'addr replace 2001:db8:8f0:82:8000::b/64 dev tun0',
    ]);
  });

  it('removes addresses of an earlier session', async () => {
    const { run, calls } = fakeIp(earlierSession);

    await configureTunLink(run, { name: 'tun0', ipv4: { address: '10.8.2.27', prefixLength: 24 }, mtu: 1300 });

    // Old addresses go first: deleting an old primary after adding the new address as its
    // secondary would make the kernel delete both.
    expect(calls.slice(2)).toEqual(['addr del 10.8.2.99/24 dev tun0', 'addr del 2001:db8:8f0:82:8000::b/64 dev tun0', 'addr replace 10.8.2.27/24 dev tun0']);
  });

  it('rejects IPv6 below 1280 bytes', async () => {
    const { run, calls } = fakeIp();

    const attempt = configureTunLink(run, { name: 'tun0', ipv6: { address: '2001:db8::b', prefixLength: 64 }, mtu: 1200 });

    await expect(attempt).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(attempt).rejects.toThrow('the tunnel MTU is 1200 bytes, but IPv6 needs at least 1280');
    expect(calls).toEqual([]);
  });

  it.each([
    ['a bad name', { name: 'tun 0', mtu: 1400 }, /invalid network interface name "tun 0"/],
    ['a long name', { name: 'tun0123456789abc', mtu: 1400 }, /invalid network interface name/],
    ['a bad MTU', { name: 'tun0', mtu: 67 }, /invalid tunnel MTU 67/],
    ['a bad address', { name: 'tun0', ipv4: { address: '10.8.2', prefixLength: 24 }, mtu: 1400 }, /invalid address 10\.8\.2\/24/],
    ['a bad prefix', { name: 'tun0', ipv4: { address: '10.8.2.27', prefixLength: 33 }, mtu: 1400 }, /invalid address 10\.8\.2\.27\/33/],
  ])('rejects %s', async (_name, settings, pattern) => {
    const { run, calls } = fakeIp();

    await expect(configureTunLink(run, settings)).rejects.toThrow(pattern);
    expect(calls).toEqual([]);
  });
});

describe('setTunMtu', () => {
  it('sets the MTU only', async () => {
    const { run, calls } = fakeIp();

    await setTunMtu(run, 'tun0', 1350);

    expect(calls).toEqual(['link set dev tun0 mtu 1350']);
  });

  it('rejects an MTU above 65535', async () => {
    const { run } = fakeIp();

    await expect(setTunMtu(run, 'tun0', 65536)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
