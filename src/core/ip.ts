// IPv4 and IPv6 address and network helpers: parsing, masking, containment.
//
// Addresses travel as strings in the tunnel configuration (that is what `ip` takes and what logs
// show); these helpers convert to bytes only to compute masks and containment.

import { isIPv4, isIPv6 } from 'node:net';
import type { IpNetwork } from '../cstp/tunnel-config.js';

export interface ParsedIp {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** Parses an IPv4 or IPv6 literal (no brackets, no zone); undefined when invalid. */
export function parseIp(text: string): ParsedIp | undefined {
  if (isIPv4(text)) {
    return { family: 4, bytes: Uint8Array.from(text.split('.').map(Number)) };
  }
  if (isIPv6(text)) {
    return { family: 6, bytes: parseIpv6(text) };
  }
  return undefined;
}

function parseIpv6(text: string): Uint8Array {
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups first.
  let source = text;
  const lastColon = source.lastIndexOf(':');
  const tail = source.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = tail.split('.').map(Number);
    const high = (((v4[0] ?? 0) << 8) | (v4[1] ?? 0)).toString(16);
    const low = (((v4[2] ?? 0) << 8) | (v4[3] ?? 0)).toString(16);
    source = `${source.slice(0, lastColon + 1)}${high}:${low}`;
  }

  const [head = '', rest] = source.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...tailGroups];

  const bytes = new Uint8Array(16);
  groups.forEach((group, index) => {
    const value = parseInt(group, 16);
    bytes[index * 2] = value >> 8;
    bytes[index * 2 + 1] = value & 0xff;
  });
  return bytes;
}

/** Formats address bytes; IPv6 in the canonical compressed form of RFC 5952. */
export function formatIp(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return Array.from(bytes.subarray(0, 4)).join('.');

  const groups: number[] = [];
  for (let index = 0; index < 16; index += 2) groups.push(((bytes[index] ?? 0) << 8) | (bytes[index + 1] ?? 0));

  // Find the longest run of zero groups (at least two) to compress as "::".
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; ) {
    if (groups[start] !== 0) {
      start += 1;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end += 1;
    if (end - start > bestLength && end - start >= 2) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }

  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLength).join(':');
  return `${left}::${right}`;
}

function maskBytes(bytes: Uint8Array, prefixLength: number): Uint8Array {
  const masked = new Uint8Array(bytes.length);
  for (let index = 0; index < bytes.length; index += 1) {
    const bits = Math.max(0, Math.min(8, prefixLength - index * 8));
    const mask = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
    masked[index] = (bytes[index] ?? 0) & mask;
  }
  return masked;
}

/**
 * Builds a network from an address and prefix length, clearing host bits.
 * Returns undefined for an invalid address or a prefix length out of range.
 */
export function normalizeNetwork(address: string, prefixLength: number): IpNetwork | undefined {
  const parsed = parseIp(address);
  if (parsed === undefined) return undefined;
  const maximum = parsed.family === 4 ? 32 : 128;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > maximum) return undefined;
  return {
    family: parsed.family,
    address: formatIp(parsed.family, maskBytes(parsed.bytes, prefixLength)),
    prefixLength,
  };
}

/** True when `address` (a literal of either family) lies inside `network`. */
export function networkContains(network: IpNetwork, address: string): boolean {
  const parsed = parseIp(address);
  if (parsed === undefined || parsed.family !== network.family) return false;
  const base = parseIp(network.address);
  if (base === undefined) return false;
  const masked = maskBytes(parsed.bytes, network.prefixLength);
  const baseMasked = maskBytes(base.bytes, network.prefixLength);
  return masked.every((byte, index) => byte === baseMasked[index]);
}

/** Prefix length of a dotted IPv4 netmask; undefined unless the mask is contiguous. */
export function prefixFromNetmask(mask: string): number | undefined {
  const parsed = parseIp(mask);
  if (parsed === undefined || parsed.family !== 4) return undefined;
  let value = 0;
  for (const byte of parsed.bytes) value = (value << 8) | byte;
  value >>>= 0;
  const inverted = ~value >>> 0;
  // A contiguous mask is ones followed by zeros, so its inverse plus one is a power of two.
  if ((inverted & (inverted + 1)) !== 0) return undefined;
  let prefix = 0;
  while (prefix < 32 && (value & (0x80000000 >>> prefix)) !== 0) prefix += 1;
  return prefix;
}

/** Dotted IPv4 netmask for a prefix length from 0 to 32. */
export function netmaskFromPrefix(prefixLength: number): string {
  const value = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.');
}

/** "10.1.0.0/16" */
export function formatNetwork(network: IpNetwork): string {
  return `${network.address}/${network.prefixLength}`;
}
