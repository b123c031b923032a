// The CSTP CONNECT request that turns the authenticated HTTPS connection into the tunnel.
//
// ocserv matches request header names case-sensitively, so every name below is written exactly
// as ocserv expects it: "x-cstp-base-mtu" would be ignored without any error.
// No X-CSTP-Accept-Encoding is sent, because acvpn does not implement compression and the
// headend must never send COMPRESSED frames.

import { AcvpnError } from '../core/errors.js';
import { parseIp } from '../core/ip.js';
import type { Posture } from '../posture/posture.js';

/** Smallest base (link) MTU acvpn requests, because IPv6 needs a link MTU of at least 1280. */
export const MIN_BASE_MTU = 1280;

/**
 * Worst-case DTLS overhead per packet used when sizing the tunnel MTU: 1 type byte, 13 bytes of
 * record header, 20 of MAC, 32 of IV and 16 of padding.
 */
const dtlsWorstCaseOverhead = 1 + 13 + 20 + 32 + 16;
const udpHeaderLength = 8;

/**
 * Computes the tunnel (inner) MTU to request for a base MTU, the MTU of the path to the headend.
 * The tunnel packet must still fit in one DTLS datagram, so the result subtracts the DTLS
 * overhead, UDP and the outer IP header (20 for IPv4, 40 for IPv6). Base 1406 over IPv4 gives
 * 1296. A base below 1280 is raised to 1280.
 */
export function mtuForBase(baseMtu: number, ipv6Path: boolean): number {
  if (!Number.isInteger(baseMtu) || baseMtu <= 0 || baseMtu > 0xffff) {
    throw new AcvpnError(
      'CONFIG_INVALID',
      `base MTU ${baseMtu} is not a whole number from 1 to 65535; check the base MTU setting`,
      { baseMtu },
    );
  }
  const base = Math.max(baseMtu, MIN_BASE_MTU);
  const ipHeaderLength = ipv6Path ? 40 : 20;
  return base - dtlsWorstCaseOverhead - udpHeaderLength - ipHeaderLength;
}

export interface ConnectRequestOptions {
  /** Host header value: the headend's name, plus ":port" when the port is not 443. */
  host: string;
  userAgent: string;
  /** The webvpn cookie from the auth reply (secret: never logged, never in an error). */
  cookie: string;
  /** Local host name, sent as X-CSTP-Hostname. */
  hostname: string;
  posture: Posture;
  /** Path MTU estimate towards the headend (X-CSTP-Base-MTU); a value below 1280 is sent as 1280. */
  baseMtu: number;
  /** Requested tunnel MTU (X-CSTP-MTU), usually mtuForBase(baseMtu, ...). */
  mtu: number;
  /** "IPv4" alone makes ocserv drop IPv6 from the tunnel configuration. */
  addressTypes: 'IPv6,IPv4' | 'IPv4';
  /** Addresses of the previous session, sent on reconnect to ask for the same ones again. */
  previousAddresses?: string[];
  /** DTLS offer. Without it no X-DTLS-* header is sent and ocserv leaves DTLS off. */
  dtls?: {
    /** 96 hex digits (48 random bytes) for legacy DTLS; ocserv enables DTLS only with this or PSK-NEGOTIATE. */
    masterSecretHex?: string;
    /** Colon-separated cipher list; containing PSK-NEGOTIATE selects the PSK mode. */
    cipherSuites?: string;
  };
}

/** Builds the full CONNECT request text, from the request line to the blank line that ends it. */
export function buildConnectRequest(options: ConnectRequestOptions): string {
  validateCookie(options.cookie);
  const headers: Array<[string, string]> = [
    ['Host', options.host],
    ['User-Agent', options.userAgent],
    ['Cookie', `webvpn=${options.cookie}`],
    ['X-CSTP-Version', '1'],
    ['X-CSTP-Hostname', options.hostname],
    // Some ASAs reportedly reject a CONNECT without this exact text.
    ['X-CSTP-Protocol', 'Copyright (c) 2004 Cisco Systems, Inc.'],
    ['X-AnyConnect-Identifier-ClientVersion', options.posture.clientVersion],
    ['X-AnyConnect-Identifier-Platform', options.posture.platform],
    ['X-AnyConnect-Identifier-PlatformVersion', options.posture.platformVersion],
    ['X-AnyConnect-Identifier-DeviceType', options.posture.deviceType],
    ['X-AnyConnect-Identifier-Device-UniqueID', options.posture.deviceUniqueId],
    ['X-CSTP-Base-MTU', String(Math.max(validateMtu('X-CSTP-Base-MTU', options.baseMtu, 1), MIN_BASE_MTU))],
    ['X-CSTP-MTU', String(validateMtu('X-CSTP-MTU', options.mtu, 576))],
    ['X-CSTP-Address-Type', options.addressTypes],
  ];

  for (const address of options.previousAddresses ?? []) {
    if (parseIp(address) === undefined) {
      throw new AcvpnError('INTERNAL', `previous tunnel address "${address}" is not an IP address`, { address });
    }
    headers.push(['X-CSTP-Address', address]);
  }

  // ocserv 1.1 sends IPv6 routes, IPv6 DNS and the -IP6 header forms only to clients that send this.
  headers.push(['X-CSTP-Full-IPv6-Capability', 'true']);

  const masterSecret = options.dtls?.masterSecretHex;
  if (masterSecret !== undefined) {
    if (!/^[0-9a-fA-F]{96}$/.test(masterSecret)) {
      // The value is a key: report its length only.
      throw new AcvpnError(
        'INTERNAL',
        `X-DTLS-Master-Secret must be 96 hex digits (48 bytes), received ${masterSecret.length} characters`,
      );
    }
    headers.push(['X-DTLS-Master-Secret', masterSecret]);
  }
  const cipherSuites = options.dtls?.cipherSuites;
  if (cipherSuites !== undefined) {
    if (!/^[A-Za-z0-9_+-]+(:[A-Za-z0-9_+-]+)*$/.test(cipherSuites)) {
      throw new AcvpnError(
        'CONFIG_INVALID',
        `X-DTLS-CipherSuite value ${JSON.stringify(cipherSuites)} is not a colon-separated cipher list`,
        { header: 'X-DTLS-CipherSuite' },
      );
    }
    headers.push(['X-DTLS-CipherSuite', cipherSuites]);
  }

  let request = 'CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n';
  for (const [name, value] of headers) {
    if (name !== 'Cookie') validateHeaderValue(name, value);
    request += `${name}: ${value}\r\n`;
  }
  return `${request}\r\n`;
}

function validateMtu(header: string, value: number, minimum: number): number {
  if (!Number.isInteger(value) || value < minimum || value > 0xffff) {
    throw new AcvpnError(
      'CONFIG_INVALID',
      `${header} value ${value} is not a whole number from ${minimum} to 65535; check the MTU settings`,
      { header, value },
    );
  }
  return value;
}

// Headers without which the request cannot work; other values may be empty.
const requiredHeaders = new Set(['Host', 'User-Agent']);

/**
 * Throws unless the value is safe on one header line: a line break would end the header early or
 * inject another header. The values come from configuration and the local system.
 */
function validateHeaderValue(name: string, value: string): void {
  // Tab is the one control character HTTP allows inside a field value.
  const hasControl = /[\x00-\x08\x0a-\x1f\x7f]/.test(value);
  if (!hasControl && !(value === '' && requiredHeaders.has(name))) return;

  throw new AcvpnError(
    'CONFIG_INVALID',
    `${name} value ${JSON.stringify(value)} is empty or contains control characters such as line breaks; fix the setting`,
    { header: name },
  );
}

/** Throws unless the cookie can be sent; the message never contains the cookie itself. */
function validateCookie(cookie: string): void {
  if (cookie !== '' && !/[\x00-\x1f\x7f;]/.test(cookie)) return;
  throw new AcvpnError(
    'AUTH_UNEXPECTED_REPLY',
    'the session cookie from the headend is empty or contains control characters or ";"; log in again',
    { header: 'Cookie' },
  );
}
