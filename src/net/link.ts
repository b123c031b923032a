// Link-level setup of the TUN device: MTU, state and the addresses the headend assigned.
//
// Addresses are added with their prefix length, as `ip addr add 10.8.2.27/24 dev tun0`, not as a
// /32 with a peer. ocserv sends its pool netmask (for example 255.255.255.0), so the kernel then
// installs the pool network as an on-link route through the TUN device and other clients of the
// same pool are reached through the tunnel without an extra route. planRoutes relies on this: it
// plans no route for an include at or inside that network, because the kernel's route already
// covers it and a second one would fail with "File exists". A /32 netmask (as some headends send)
// adds no on-link route, and the TUN device still works because every tunnel route is a device
// route that needs no next hop.

import { AcvpnError } from '../core/errors.js';
import { formatIp, parseIp } from '../core/ip.js';
import { assertInterfaceName, type IpRunner } from './ip-command.js';

export interface TunAddress {
  address: string;
  prefixLength: number;
}

export interface TunLinkSettings {
  name: string;
  ipv4?: TunAddress;
  ipv6?: TunAddress;
  /** Bytes; the largest IP packet the tunnel carries. */
  mtu: number;
}

// The kernel detaches IPv4 from a device below 68 bytes (RFC 791) and IPv6 below 1280
// (RFC 8200); 65535 is the largest MTU a TUN device accepts.
const minimumMtu = 68;
const minimumIpv6Mtu = 1280;
const maximumMtu = 65535;

/**
 * Sets the MTU, brings the link up and gives it the assigned addresses. Safe to call again on a
 * reconnect: addresses of an earlier session that the new configuration no longer has are removed,
 * then the new ones are added with `replace`. Routes through the device must be applied afterwards.
 */
export async function configureTunLink(run: IpRunner, settings: TunLinkSettings): Promise<void> {
  assertInterfaceName(settings.name);
  assertMtu(settings.mtu);
  if (settings.ipv6 !== undefined && settings.mtu < minimumIpv6Mtu) {
    throw new AcvpnError(
      'CONFIG_INVALID',
      `the tunnel MTU is ${settings.mtu} bytes, but IPv6 needs at least ${minimumIpv6Mtu}: use a larger MTU or connect without IPv6`,
      { mtu: settings.mtu },
    );
  }
  const requested = [settings.ipv4, settings.ipv6]
    .filter((entry): entry is TunAddress => entry !== undefined)
    .map((entry) => canonicalAddress(entry, settings.name));

  // MTU before addresses: while a device's MTU is below 1280 the kernel rejects IPv6 addresses.
  await run(['link', 'set', 'dev', settings.name, 'mtu', String(settings.mtu), 'up']);

  // Remove addresses of an earlier session first. Added next to an old address of the same
  // subnet, the new one would be a secondary, and deleting the old primary afterwards makes the
  // kernel delete its secondaries too (promote_secondaries is off by default), leaving the device
  // without an IPv4 address. Removing the last IPv4 address also deletes every IPv4 route through
  // the device, which is why callers apply routes after this function.
  for (const stale of await globalAddresses(run, settings.name)) {
    const keep = requested.some((entry) => entry.address === stale.address && entry.prefixLength === stale.prefixLength);
    if (!keep) await run(['addr', 'del', `${stale.address}/${stale.prefixLength}`, 'dev', settings.name]);
  }

  // The kernel skips duplicate address detection on NOARP devices such as TUN, so an IPv6
  // address is usable as a source at once (checked on Linux 6.18: no "tentative" flag).
  for (const entry of requested) {
    await run(['addr', 'replace', `${entry.address}/${entry.prefixLength}`, 'dev', settings.name]);
  }
}

/**
 * Changes the MTU of a configured TUN device, for example when the session switches between
 * DTLS and CSTP.
 */
export async function setTunMtu(run: IpRunner, name: string, mtu: number): Promise<void> {
  assertInterfaceName(name);
  assertMtu(mtu);
  // NOTE: below 1280 bytes the kernel removes every IPv6 address from the device; a later
  // increase does not bring them back, only configureTunLink does.
  await run(['link', 'set', 'dev', name, 'mtu', String(mtu)]);
}

function assertMtu(mtu: number): void {
  if (Number.isInteger(mtu) && mtu >= minimumMtu && mtu <= maximumMtu) return;
  throw new AcvpnError(
    'CONFIG_INVALID',
    `invalid tunnel MTU ${mtu}: use a whole number of bytes from ${minimumMtu} to ${maximumMtu}`,
    { mtu },
  );
}

// ip prints addresses in canonical form, so comparing with its output needs the same form.
function canonicalAddress(entry: TunAddress, name: string): TunAddress {
  const parsed = parseIp(entry.address);
  const maximum = parsed?.family === 6 ? 128 : 32;
  if (
    parsed === undefined ||
    !Number.isInteger(entry.prefixLength) ||
    entry.prefixLength < 0 ||
    entry.prefixLength > maximum
  ) {
    throw new AcvpnError(
      'CONFIG_INVALID',
      `invalid address ${entry.address}/${entry.prefixLength} for ${name}: expected an IP address and a prefix length up to ${maximum}`,
      { address: entry.address, prefixLength: entry.prefixLength },
    );
  }
  return { address: formatIp(parsed.family, parsed.bytes), prefixLength: entry.prefixLength };
}

/** Addresses of global scope on the device: what a session configures (link-local ones stay). */
async function globalAddresses(run: IpRunner, name: string): Promise<TunAddress[]> {
  const argv = ['-json', 'addr', 'show', 'dev', name];
  const { stdout } = await run(argv);
  let links: unknown;
  try {
    links = JSON.parse(stdout === '' ? '[]' : stdout);
  } catch (error) {
    throw new AcvpnError('ENV_COMMAND_FAILED', `"ip ${argv.join(' ')}" printed output that is not JSON`, { argv }, { cause: error });
  }

  const addresses: TunAddress[] = [];
  for (const link of Array.isArray(links) ? links : []) {
    const info = (link as { addr_info?: unknown }).addr_info;
    for (const item of Array.isArray(info) ? info : []) {
      const { family, local, prefixlen, scope } = item as { family?: string; local?: string; prefixlen?: number; scope?: string };
      if ((family !== 'inet' && family !== 'inet6') || scope !== 'global') continue;
      if (typeof local !== 'string' || typeof prefixlen !== 'number') continue;
      addresses.push({ address: local, prefixLength: prefixlen });
    }
  }
  return addresses;
}
