// Parsing of one split-include or split-exclude entry from a CONNECT response.
//
// Headends write these as "a.b.c.d/m.m.m.m" (ocserv rewrites every IPv4 route to a dotted mask),
// "address/prefix-length" (IPv6 always, some headends for IPv4 too) or a bare address (one host).
// Some headends send addresses with host bits set ("10.1.2.3/255.255.0.0"). Routing tools reject
// such a route, so the network is normalised and the caller warns with the original text.

import type { IpNetwork } from './tunnel-config.js';
import { formatIp, normalizeNetwork, parseIp, prefixFromNetmask } from '../core/ip.js';

export interface ParsedSplitNetwork {
  network: IpNetwork;
  /** True when the text had host bits set and `network` is the masked form. */
  hostBitsCleared: boolean;
}

/** Parses "address[/netmask|/prefix-length]"; undefined when the text is not a network. */
export function parseSplitNetwork(text: string): ParsedSplitNetwork | undefined {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const maskText = slash < 0 ? undefined : text.slice(slash + 1);

  const address = parseIp(addressText);
  if (address === undefined) return undefined;
  const prefixLength = parsePrefix(maskText, address.family);
  if (prefixLength === undefined) return undefined;

  const network = normalizeNetwork(addressText, prefixLength);
  if (network === undefined) return undefined;
  return { network, hostBitsCleared: network.address !== formatIp(address.family, address.bytes) };
}

/**
 * Prefix length from the text after "/": digits, or (IPv4 only) a contiguous dotted netmask.
 * No mask means a single host.
 */
export function parsePrefix(maskText: string | undefined, family: 4 | 6): number | undefined {
  const maximum = family === 4 ? 32 : 128;
  if (maskText === undefined) return maximum;
  if (/^\d{1,3}$/.test(maskText)) {
    const prefix = Number(maskText);
    return prefix <= maximum ? prefix : undefined;
  }
  return family === 4 ? prefixFromNetmask(maskText) : undefined;
}

/** True for the "allow local LAN" marker networks 0.0.0.0/32 and ::/128, which are flags, not routes. */
export function isLocalLanMarker(network: IpNetwork): boolean {
  const full = network.family === 4 ? 32 : 128;
  return network.prefixLength === full && (network.address === '0.0.0.0' || network.address === '::');
}
