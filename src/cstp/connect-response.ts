// Parsing of the headend's response to CONNECT /CSCOSSLC/tunnel into a TunnelConfig.
//
// Rules that come from real headends:
// - Header names are matched case-insensitively: ocserv writes X-CSTP-MSIE-Proxy-Pac-URL where
//   others write ...-PAC-URL.
// - Many headers repeat (addresses, DNS, routes, split DNS), and order carries no meaning except
//   for DNS servers, which keep the order sent.
// - A timeout of "none" or 0 means "not set".
// - A single bad route or DNS entry is skipped with a warning and the rest is used. A bad value
//   the tunnel cannot work without (address, MTU, DPD, keepalive, rekey time) throws
//   CSTP_HEADER_INVALID naming the header and the value. Bad DTLS parameters only turn DTLS off.
// - X-CSTP-Post-Auth-XML (ASA) contains the whole auth reply, cookie included: it is never read,
//   copied into rawHeaders, or quoted in a message.

import { AcvpnError } from '../core/errors.js';
import { formatIp, formatNetwork, netmaskFromPrefix, parseIp, prefixFromNetmask } from '../core/ip.js';
import { isLocalLanMarker, parsePrefix, parseSplitNetwork } from './split-network.js';
import type { IpNetwork, TunnelConfig } from './tunnel-config.js';

/** MTU used when the headend sends neither X-CSTP-MTU nor X-DTLS-MTU: the IPv6 minimum. */
export const FALLBACK_MTU = 1280;

// A tunnel MTU below the IPv4 minimum reassembly size carries no useful traffic, so a smaller
// value means a broken headend configuration rather than a tight path.
const minimumMtu = 576;

/**
 * Builds the tunnel configuration from the CONNECT response status and headers ([name, value]
 * pairs in the order received, one pair per header line).
 *
 * Throws COOKIE_REJECTED for 401 (log in again), CONNECT_REFUSED for any other non-200 status,
 * CSTP_CONFIG_MISSING when no address was assigned and CSTP_HEADER_INVALID for a value the tunnel
 * cannot work without.
 */
export function parseConnectResponse(status: number, reason: string, headers: Array<[string, string]>): TunnelConfig {
  const response = new ResponseHeaders(headers);
  if (status !== 200) throw refusalError(status, reason, response);

  try {
    return parseTunnelConfig(response);
  } catch (error) {
    if (error instanceof InvalidHeaderValue) {
      throw new AcvpnError(
        'CSTP_HEADER_INVALID',
        `${error.message}; the headend sent an unusable tunnel configuration, report this to its administrator`,
        { header: error.header, value: error.value },
      );
    }
    throw error;
  }
}

// ---- Status ----

function refusalError(status: number, reason: string, response: ResponseHeaders): AcvpnError {
  const statusLine = `HTTP ${status} ${printable(reason)}`.trimEnd();
  if (status === 401) {
    return new AcvpnError('COOKIE_REJECTED', `the headend rejected the session cookie (${statusLine}); log in again`, {
      status,
    });
  }

  if (status === 503) {
    const headendReason = response.first('X-Reason');
    const because = headendReason === undefined ? statusLine : `${statusLine}, X-Reason: ${printable(headendReason)}`;
    return new AcvpnError('CONNECT_REFUSED', `the headend rejected the CONNECT request (${because}); try again later`, {
      status,
      reason: headendReason ?? reason,
    });
  }

  const hint =
    status === 404
      ? 'the headend does not serve /CSCOSSLC/tunnel; check that the server is an AnyConnect-compatible headend'
      : 'check the server address, or try again later';
  return new AcvpnError('CONNECT_REFUSED', `the headend rejected the CONNECT request (${statusLine}); ${hint}`, {
    status,
    reason,
  });
}

/** Replaces control characters and cuts the text to a length that fits one log line. */
function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 200);
}

// ---- Header access ----

/** Case-insensitive view of the header list; values are trimmed. */
class ResponseHeaders {
  readonly entries: ReadonlyArray<{ name: string; key: string; value: string }>;

  constructor(headers: Array<[string, string]>) {
    this.entries = headers.map(([name, value]) => ({ name, key: name.toLowerCase(), value: value.trim() }));
  }

  /** Returns every entry with one of the names, in the order received. */
  all(...names: string[]): Array<{ name: string; value: string }> {
    const keys = names.map((name) => name.toLowerCase());
    return this.entries.filter((entry) => keys.includes(entry.key));
  }

  first(name: string): string | undefined {
    const key = name.toLowerCase();
    return this.entries.find((entry) => entry.key === key)?.value;
  }
}

/** A header value the parser cannot use; callers turn it into CSTP_HEADER_INVALID or a warning. */
class InvalidHeaderValue extends Error {
  constructor(
    readonly header: string,
    readonly value: string,
    readonly expected: string,
  ) {
    super(`${header} value ${JSON.stringify(value)} is not ${expected}`);
  }
}

// ---- The whole configuration ----

function parseTunnelConfig(response: ResponseHeaders): TunnelConfig {
  const warnings: string[] = [];

  const { ipv4, ipv6 } = parseAddresses(response, warnings);
  const routes = parseSplitNetworks(response, warnings);
  const timers = parseTimers(response, warnings);
  const cstpMtu = readMtu(response, 'X-CSTP-MTU');
  const dtlsMtu = readMtu(response, 'X-DTLS-MTU');

  const config: TunnelConfig = {
    ipv4,
    ipv6,
    dnsServers: parseAddressList(response, ['X-CSTP-DNS', 'X-CSTP-DNS-IP6'], warnings),
    nbnsServers: parseAddressList(response, ['X-CSTP-NBNS'], warnings).filter((address) => address !== '0.0.0.0'),
    defaultDomains: parseDomainList(response, 'X-CSTP-Default-Domain', warnings),
    splitDnsDomains: parseDomainList(response, 'X-CSTP-Split-DNS', warnings),
    tunnelAllDns: readBoolean(response, 'X-CSTP-Tunnel-All-DNS'),
    splitInclude: routes.include,
    splitExclude: routes.exclude,
    localLanAllowed: routes.localLanAllowed,
    clientBypassProtocol: readBoolean(response, 'X-CSTP-Client-Bypass-Protocol'),
    mtu: chooseMtu(cstpMtu, dtlsMtu, warnings),
    baseMtu: readMtu(response, 'X-CSTP-Base-MTU'),
    ...timers,
    banner: parseBanner(response),
    serverName: response.first('X-CSTP-Server-Name'),
    hostname: response.first('X-CSTP-Hostname'),
    proxyPacUrl: response.first('X-CSTP-MSIE-Proxy-PAC-URL'),
    dtls: parseDtls(response, dtlsMtu, warnings),
    rawHeaders: collectRawHeaders(response),
    warnings,
  };
  return config;
}

// ---- Addresses ----

type Ipv4Assignment = NonNullable<TunnelConfig['ipv4']>;
type Ipv6Assignment = NonNullable<TunnelConfig['ipv6']>;

/**
 * Reads the assigned addresses. X-CSTP-Address normally contains IPv4, and X-CSTP-Address-IP6
 * contains "address/prefix-length". Headends that do not use the full-IPv6 style put an IPv6
 * literal in X-CSTP-Address and "address/prefix-length" in X-CSTP-Netmask. So the family is taken
 * from the value, never from the header name.
 */
function parseAddresses(response: ResponseHeaders, warnings: string[]): { ipv4?: Ipv4Assignment; ipv6?: Ipv6Assignment } {
  let ipv4: Ipv4Assignment | undefined;
  let ipv6FromAddress: string | undefined;

  const ipv4Netmask = response.all('X-CSTP-Netmask').find((entry) => !entry.value.includes(':'));
  const ipv6Netmask = response.all('X-CSTP-Netmask').find((entry) => entry.value.includes(':'));

  for (const { name, value } of response.all('X-CSTP-Address')) {
    if (value.includes(':')) {
      if (parseIp(value)?.family !== 6) throw new InvalidHeaderValue(name, value, 'an IPv6 address');
      if (ipv6FromAddress === undefined) ipv6FromAddress = value;
      else warnings.push(`${name}: extra IPv6 address ${printable(value)} ignored, using ${ipv6FromAddress}`);
      continue;
    }
    if (ipv4 !== undefined) {
      warnings.push(`${name}: extra IPv4 address ${printable(value)} ignored, using ${ipv4.address}`);
      continue;
    }
    ipv4 = parseIpv4Assignment(name, value, ipv4Netmask);
  }

  const addressIp6 = response.all('X-CSTP-Address-IP6')[0];
  let ipv6: Ipv6Assignment | undefined;
  if (addressIp6 !== undefined) {
    ipv6 = parseIpv6Assignment(addressIp6.name, addressIp6.value);
  } else if (ipv6FromAddress !== undefined) {
    ipv6 = { address: canonicalAddress(ipv6FromAddress), prefixLength: readIpv6NetmaskPrefix(ipv6Netmask) };
  }

  if (ipv4 === undefined && ipv6 === undefined) {
    throw new AcvpnError(
      'CSTP_CONFIG_MISSING',
      'the headend assigned no tunnel address (no X-CSTP-Address or X-CSTP-Address-IP6 in the CONNECT response); ' +
        'check the address pool on the headend',
    );
  }
  return { ipv4, ipv6 };
}

/** IPv4 address, with the prefix from "/len" on the address, else X-CSTP-Netmask, else /32. */
function parseIpv4Assignment(
  name: string,
  value: string,
  netmask: { name: string; value: string } | undefined,
): Ipv4Assignment {
  const [addressText, suffix] = splitAtSlash(value);
  if (parseIp(addressText)?.family !== 4) throw new InvalidHeaderValue(name, value, 'an IPv4 address');

  let prefixLength = 32;
  if (suffix !== undefined) {
    const fromSuffix = parsePrefix(suffix, 4);
    if (fromSuffix === undefined) throw new InvalidHeaderValue(name, value, 'an IPv4 address with a valid prefix');
    prefixLength = fromSuffix;
  } else if (netmask !== undefined) {
    const maskText = netmask.value.startsWith('/') ? netmask.value.slice(1) : netmask.value;
    const fromMask = /^\d+$/.test(maskText) ? parsePrefix(maskText, 4) : prefixFromNetmask(maskText);
    if (fromMask === undefined) {
      throw new InvalidHeaderValue(netmask.name, netmask.value, 'a contiguous dotted netmask or "/prefix-length"');
    }
    prefixLength = fromMask;
  }
  return { address: addressText, prefixLength, netmask: netmaskFromPrefix(prefixLength) };
}

/** Prefix length from an IPv6 X-CSTP-Netmask ("address/prefix-length"); 128 when there is none. */
function readIpv6NetmaskPrefix(netmask: { name: string; value: string } | undefined): number {
  if (netmask === undefined) return 128;
  const [, prefixText] = splitAtSlash(netmask.value);
  const prefixLength = prefixText === undefined ? undefined : parsePrefix(prefixText, 6);
  if (prefixLength === undefined) {
    throw new InvalidHeaderValue(netmask.name, netmask.value, 'an IPv6 "address/prefix-length"');
  }
  return prefixLength;
}

/** "address/prefix-length", or a bare address (prefix 128). */
function parseIpv6Assignment(name: string, value: string): Ipv6Assignment {
  const [addressText, suffix] = splitAtSlash(value);
  const prefixLength = parsePrefix(suffix, 6);
  if (parseIp(addressText)?.family !== 6 || prefixLength === undefined) {
    throw new InvalidHeaderValue(name, value, 'an IPv6 "address/prefix-length"');
  }
  return { address: canonicalAddress(addressText), prefixLength };
}

/** Splits at the first '/': "a/b/c" gives ["a", "b/c"], which then fails as a prefix. */
function splitAtSlash(value: string): [string, string | undefined] {
  const slash = value.indexOf('/');
  return slash < 0 ? [value, undefined] : [value.slice(0, slash), value.slice(slash + 1)];
}

function canonicalAddress(text: string): string {
  const parsed = parseIp(text)!;
  return formatIp(parsed.family, parsed.bytes);
}

// ---- DNS, WINS and domains ----

/**
 * Addresses from every header of the given names, in the order received, deduplicated. A value
 * may hold a comma- or space-separated list. Invalid entries are skipped with a warning.
 */
function parseAddressList(response: ResponseHeaders, names: string[], warnings: string[]): string[] {
  const addresses: string[] = [];
  for (const { name, value } of response.all(...names)) {
    for (const item of splitList(value, /[\s,]+/)) {
      const parsed = parseIp(item);
      if (parsed === undefined) {
        warnings.push(`${name}: ${JSON.stringify(item)} is not an IP address; skipped`);
        continue;
      }
      const address = formatIp(parsed.family, parsed.bytes);
      if (!addresses.includes(address)) addresses.push(address);
    }
  }
  return addresses;
}

// Letters, digits, '-', '_' and '.' only: these names end up in resolv.conf and resolver
// configuration, where anything else could inject directives.
const domainPattern = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/;

/** Domains from every header of the name, split on spaces, commas and semicolons, deduplicated. */
function parseDomainList(response: ResponseHeaders, name: string, warnings: string[]): string[] {
  const domains: string[] = [];
  for (const entry of response.all(name)) {
    for (const item of splitList(entry.value, /[\s,;]+/)) {
      if (!domainPattern.test(item)) {
        warnings.push(`${entry.name}: ${JSON.stringify(item)} is not a domain name; skipped`);
        continue;
      }
      if (!domains.includes(item)) domains.push(item);
    }
  }
  return domains;
}

function splitList(value: string, separator: RegExp): string[] {
  return value.split(separator).filter((item) => item !== '');
}

// ---- Split networks ----

interface SplitNetworks {
  include: IpNetwork[];
  exclude: IpNetwork[];
  localLanAllowed: boolean;
}

const includeHeaders = ['X-CSTP-Split-Include', 'X-CSTP-Split-Include-IP6'];
const excludeHeaders = ['X-CSTP-Split-Exclude', 'X-CSTP-Split-Exclude-IP6'];

/**
 * Reads split-include and split-exclude routes. Host bits are cleared with a warning naming the
 * original text, an unparsable entry is skipped with a warning, and the exclude 0.0.0.0/32 (or
 * ::/128) sets localLanAllowed instead of becoming a route.
 */
function parseSplitNetworks(response: ResponseHeaders, warnings: string[]): SplitNetworks {
  const result: SplitNetworks = { include: [], exclude: [], localLanAllowed: false };
  const excludeKeys = new Set(excludeHeaders.map((name) => name.toLowerCase()));

  for (const { name, value } of response.all(...includeHeaders, ...excludeHeaders)) {
    const isExclude = excludeKeys.has(name.toLowerCase());
    const parsed = parseSplitNetwork(value);
    if (parsed === undefined) {
      warnings.push(
        `${name}: ${JSON.stringify(value)} is not a network (expected address/netmask, address/prefix-length or address); skipped`,
      );
      continue;
    }

    const { network } = parsed;
    if (isExclude && isLocalLanMarker(network)) {
      result.localLanAllowed = true;
      continue;
    }
    if (parsed.hostBitsCleared) {
      warnings.push(`${name}: ${value} has host bits set; using ${formatNetwork(network)}`);
    }

    const list = isExclude ? result.exclude : result.include;
    const key = formatNetwork(network);
    if (!list.some((existing) => formatNetwork(existing) === key)) list.push(network);
  }
  return result;
}

// ---- Numbers: MTU and timers ----

function readMtu(response: ResponseHeaders, name: string): number | undefined {
  const entry = response.all(name)[0];
  if (entry === undefined) return undefined;
  const value = readInteger(entry.name, entry.value, `a whole number from ${minimumMtu} to 65535`);
  if (value < minimumMtu || value > 0xffff) {
    throw new InvalidHeaderValue(entry.name, entry.value, `a whole number from ${minimumMtu} to 65535`);
  }
  return value;
}

/** Returns the larger of the CSTP and DTLS MTUs, else the fallback with a warning. */
function chooseMtu(cstpMtu: number | undefined, dtlsMtu: number | undefined, warnings: string[]): number {
  if (cstpMtu === undefined && dtlsMtu === undefined) {
    warnings.push(`the headend sent neither X-CSTP-MTU nor X-DTLS-MTU; using MTU ${FALLBACK_MTU}`);
    return FALLBACK_MTU;
  }
  return Math.max(cstpMtu ?? 0, dtlsMtu ?? 0);
}

interface Timers {
  dpdSeconds?: number;
  keepaliveSeconds?: number;
  idleTimeoutSeconds?: number;
  sessionTimeoutSeconds?: number;
  rekeySeconds?: number;
  rekeyMethod: TunnelConfig['rekeyMethod'];
}

function parseTimers(response: ResponseHeaders, warnings: string[]): Timers {
  // The expiry headers are hints: X-CSTP-Idle-Timeout is informational, and headends disagree on
  // which session expiry header is right, so the smallest non-zero one wins and a bad one is skipped.
  const idleTimeoutSeconds = readSecondsOrWarn(response, 'X-CSTP-Idle-Timeout', warnings);
  const expiries = ['X-CSTP-Session-Timeout', 'X-CSTP-Session-Timeout-Remaining', 'X-CSTP-Lease-Duration']
    .map((name) => readSecondsOrWarn(response, name, warnings))
    .filter((value): value is number => value !== undefined);

  return {
    dpdSeconds: readSeconds(response, 'X-CSTP-DPD'),
    keepaliveSeconds: readSeconds(response, 'X-CSTP-Keepalive'),
    idleTimeoutSeconds,
    sessionTimeoutSeconds: expiries.length === 0 ? undefined : Math.min(...expiries),
    rekeySeconds: readSeconds(response, 'X-CSTP-Rekey-Time'),
    rekeyMethod: parseRekeyMethod(response, warnings),
  };
}

/** Seconds from the first header of the name; undefined when absent, "none" or 0. */
function readSeconds(response: ResponseHeaders, name: string): number | undefined {
  const entry = response.all(name)[0];
  if (entry === undefined || entry.value.toLowerCase() === 'none') return undefined;
  const value = readInteger(entry.name, entry.value, 'a number of seconds or "none"');
  return value === 0 ? undefined : value;
}

function readSecondsOrWarn(response: ResponseHeaders, name: string, warnings: string[]): number | undefined {
  try {
    return readSeconds(response, name);
  } catch (error) {
    if (!(error instanceof InvalidHeaderValue)) throw error;
    warnings.push(`${error.message}; ignored`);
    return undefined;
  }
}

function readInteger(name: string, value: string, expected: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidHeaderValue(name, value, expected);
  return Number(value);
}

function parseRekeyMethod(response: ResponseHeaders, warnings: string[]): TunnelConfig['rekeyMethod'] {
  const value = response.first('X-CSTP-Rekey-Method');
  if (value === undefined) return 'none';
  const method = value.toLowerCase();
  if (method === 'ssl' || method === 'new-tunnel' || method === 'none') return method;
  warnings.push(`X-CSTP-Rekey-Method: unknown method ${JSON.stringify(value)}; no rekey is done`);
  return 'none';
}

function readBoolean(response: ResponseHeaders, name: string): boolean {
  return response.first(name)?.toLowerCase() === 'true';
}

// ---- Banner ----

/**
 * Decodes the banner's %XX sequences (ASA encodes the banner, ocserv sends it raw, so a lone '%'
 * stays as it is). Repeated headers are joined by newlines. Control characters other than newline and
 * tab are removed, because the banner is printed on the user's terminal.
 */
function parseBanner(response: ResponseHeaders): string | undefined {
  const parts = response.all('X-CSTP-Banner').map((entry) => decodePercent(entry.value));
  if (parts.length === 0) return undefined;
  return parts.join('\n').replace(/\r\n?/g, '\n').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

/**
 * Decodes %XX sequences as UTF-8 bytes, keeping the literal text as it is. When the escaped bytes
 * are not valid UTF-8 (a headend that escapes latin1), each %XX becomes the latin1 character.
 */
function decodePercent(text: string): string {
  const parts: Buffer[] = [];
  let literalStart = 0;
  for (const match of text.matchAll(/%[0-9A-Fa-f]{2}/g)) {
    parts.push(Buffer.from(text.slice(literalStart, match.index), 'utf8'));
    parts.push(Buffer.from([parseInt(match[0].slice(1), 16)]));
    literalStart = match.index + 3;
  }
  parts.push(Buffer.from(text.slice(literalStart), 'utf8'));

  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(parts));
  } catch {
    return text.replace(/%([0-9A-Fa-f]{2})/g, (_sequence, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
}

// ---- DTLS ----

/**
 * Reads the DTLS offer, present when the headend sent X-DTLS-Port, X-DTLS-App-ID or X-DTLS-Session-ID, and
 * X-DTLS-CipherSuite. A missing or invalid parameter leaves DTLS off with a warning: CSTP alone
 * carries the tunnel.
 */
function parseDtls(response: ResponseHeaders, dtlsMtu: number | undefined, warnings: string[]): TunnelConfig['dtls'] {
  const portText = response.first('X-DTLS-Port');
  const appIdText = response.first('X-DTLS-App-ID');
  const sessionIdText = response.first('X-DTLS-Session-ID');
  const cipherSuite = response.first('X-DTLS-CipherSuite');
  if (portText === undefined && appIdText === undefined && sessionIdText === undefined && cipherSuite === undefined) {
    return undefined;
  }

  const missing = [
    portText === undefined ? 'X-DTLS-Port' : undefined,
    appIdText === undefined && sessionIdText === undefined ? 'X-DTLS-App-ID or X-DTLS-Session-ID' : undefined,
    cipherSuite === undefined ? 'X-DTLS-CipherSuite' : undefined,
  ].filter((name) => name !== undefined);
  if (missing.length > 0) {
    warnings.push(`DTLS disabled: the headend did not send ${missing.join(', ')}; the tunnel uses CSTP only`);
    return undefined;
  }

  try {
    const port = readInteger('X-DTLS-Port', portText!, 'a port number from 1 to 65535');
    if (port < 1 || port > 0xffff) throw new InvalidHeaderValue('X-DTLS-Port', portText!, 'a port number from 1 to 65535');
    // The App-ID travels as the ClientHello session id, which is at most 32 bytes long.
    if (appIdText !== undefined && !/^(?:[0-9A-Fa-f]{2}){1,32}$/.test(appIdText)) {
      throw new InvalidHeaderValue('X-DTLS-App-ID', appIdText, 'a hex string of 1 to 32 bytes');
    }
    if (sessionIdText !== undefined && !/^[0-9A-Fa-f]{64}$/.test(sessionIdText)) {
      throw new InvalidHeaderValue('X-DTLS-Session-ID', sessionIdText, 'exactly 64 hex digits');
    }

    return {
      port,
      appId: appIdText,
      sessionId: sessionIdText,
      cipherSuite: cipherSuite!,
      dpdSeconds: readSeconds(response, 'X-DTLS-DPD'),
      keepaliveSeconds: readSeconds(response, 'X-DTLS-Keepalive'),
      rekeySeconds: readSeconds(response, 'X-DTLS-Rekey-Time'),
      rekeyMethod: response.first('X-DTLS-Rekey-Method')?.toLowerCase(),
      mtu: dtlsMtu,
    };
  } catch (error) {
    if (!(error instanceof InvalidHeaderValue)) throw error;
    warnings.push(`DTLS disabled: ${error.message}; the tunnel uses CSTP only`);
    return undefined;
  }
}

// ---- Raw headers for scripts ----

/** Collects every X-CSTP-* and X-DTLS* header in the order received, except the secret X-CSTP-Post-Auth-XML. */
function collectRawHeaders(response: ResponseHeaders): Array<[string, string]> {
  const isTunnelHeader = (key: string): boolean => key.startsWith('x-cstp-') || key.startsWith('x-dtls');
  return response.entries
    .filter((entry) => isTunnelHeader(entry.key) && entry.key !== 'x-cstp-post-auth-xml')
    .map((entry) => [entry.name, entry.value]);
}
