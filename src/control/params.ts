// Parameter checks for the control methods. Pure: each function takes the `params` object of a
// request and returns typed values or raises invalid params (-32602). Messages name the parameter
// and the type received, never the value, because a value may be a password.

import { parsePin } from '../trust/pin.js';
import type { TrustAnswer } from '../trust/policy.js';
import { AcvpnError } from '../core/errors.js';
import { describeType, invalidParams } from './jsonrpc.js';

/** Maximum length of any one string parameter, in characters. */
const MAX_STRING_LENGTH = 4096;
const MAX_LIST_ITEMS = 32;

export interface TrustSettingsPatch {
  blockUntrustedServers?: boolean;
  strictCertificateTrust?: boolean;
  ocsp?: boolean;
  fips?: boolean;
}

export interface ConnectParams {
  /** A saved entry supplying url, group and user where the request leaves them out. */
  entry?: string;
  url?: URL;
  user?: string;
  password?: string;
  group?: string;
  formEntries: Map<string, string>;
  cafile?: string;
  /** Already normalized "pin-sha256:BASE64" values. */
  pins: string[];
  trust: TrustSettingsPatch;
  /** A fixed answer to a trust decision; without one, the decision becomes a trust-decision event. */
  trustAnswer?: TrustAnswer;
  netroam?: boolean;
  dtls?: boolean;
  dns?: boolean;
  interfaceName?: string;
  /** False fails at once on a form field nobody answered, instead of emitting a prompt event. */
  interactive: boolean;
  /** True delays the response until the tunnel is up or the session fails. */
  wait: boolean;
}

export interface SettingsPatch {
  trust?: TrustSettingsPatch;
  netroam?: boolean;
  dtls?: boolean;
  dns?: boolean;
}

export interface EntryParams {
  name: string;
  url: string;
  group?: string;
  user?: string;
}

export interface AnswerParams {
  id: string;
  value: string;
}

const CONNECT_KEYS = [
  'entry',
  'url',
  'user',
  'password',
  'group',
  'formEntries',
  'cafile',
  'servercert',
  'trust',
  'trustAnswer',
  'netroam',
  'dtls',
  'dns',
  'interface',
  'interactive',
  'wait',
] as const;

export function parseConnectParams(params: Record<string, unknown>): ConnectParams {
  rejectUnknownKeys('connect', params, CONNECT_KEYS);
  const url = optionalString(params, 'url');
  const entry = optionalString(params, 'entry');
  if (url === undefined && entry === undefined) throw invalidParams('connect needs "url" (https://host[/group]) or the name of a saved "entry"');

  const interfaceName = optionalString(params, 'interface');
  if (interfaceName !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(interfaceName)) {
    throw invalidParams(`"interface" must be 1 to 15 letters, digits, '_', '.' or '-', received ${JSON.stringify(interfaceName.slice(0, 40))}`);
  }

  return {
    entry,
    url: url === undefined ? undefined : parseHeadendUrlParam(url),
    user: optionalString(params, 'user'),
    password: optionalString(params, 'password'),
    group: optionalString(params, 'group'),
    formEntries: optionalStringMap(params, 'formEntries'),
    cafile: optionalString(params, 'cafile'),
    pins: optionalStringList(params, 'servercert').map(parsePinParam),
    trust: params.trust === undefined ? {} : parseTrustPatch(params.trust, 'trust'),
    trustAnswer: parseTrustAnswer(optionalString(params, 'trustAnswer')),
    netroam: optionalBoolean(params, 'netroam'),
    dtls: optionalBoolean(params, 'dtls'),
    dns: optionalBoolean(params, 'dns'),
    interfaceName,
    interactive: optionalBoolean(params, 'interactive') ?? true,
    wait: optionalBoolean(params, 'wait') ?? false,
  };
}

export function parseSettingsPatch(params: Record<string, unknown>): SettingsPatch {
  rejectUnknownKeys('settings.set', params, ['trust', 'netroam', 'dtls', 'dns']);
  const patch: SettingsPatch = {};
  if (params.trust !== undefined) patch.trust = parseTrustPatch(params.trust, 'trust');
  const netroam = optionalBoolean(params, 'netroam');
  const dtls = optionalBoolean(params, 'dtls');
  const dns = optionalBoolean(params, 'dns');
  if (netroam !== undefined) patch.netroam = netroam;
  if (dtls !== undefined) patch.dtls = dtls;
  if (dns !== undefined) patch.dns = dns;
  return patch;
}

export function parseEntryParams(params: Record<string, unknown>): EntryParams {
  rejectUnknownKeys('entries.create', params, ['name', 'url', 'group', 'user']);
  const name = requiredString(params, 'name');
  if (!/^[\p{L}\p{N} _.@-]{1,64}$/u.test(name)) {
    throw invalidParams(`"name" must be 1 to 64 letters, digits, spaces, '_', '.', '@' or '-', received ${JSON.stringify(name.slice(0, 80))}`);
  }
  const url = parseHeadendUrlParam(requiredString(params, 'url'));
  const entry: EntryParams = { name, url: url.href };
  const group = optionalString(params, 'group');
  const user = optionalString(params, 'user');
  if (group !== undefined) entry.group = group;
  if (user !== undefined) entry.user = user;
  return entry;
}

export function parseEntryName(params: Record<string, unknown>): string {
  rejectUnknownKeys('entries.delete', params, ['name']);
  return requiredString(params, 'name');
}

export function parseAnswerParams(params: Record<string, unknown>): AnswerParams {
  rejectUnknownKeys('answer', params, ['id', 'value']);
  return { id: requiredString(params, 'id'), value: requiredString(params, 'value', true) };
}

export function parseNoParams(method: string, params: Record<string, unknown>): void {
  rejectUnknownKeys(method, params, []);
}

// ── helpers ───────────────────────────────────────────────────────────────────────────────────

function rejectUnknownKeys(method: string, params: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(params)) {
    if (!known.includes(key)) {
      const expected = known.length === 0 ? 'it takes no parameters' : `expected ${known.join(', ')}`;
      throw invalidParams(`unknown parameter ${JSON.stringify(key.slice(0, 64))} for ${method}; ${expected}`);
    }
  }
}

function requiredString(params: Record<string, unknown>, key: string, allowEmpty = false): string {
  const value = optionalString(params, key, allowEmpty);
  if (value === undefined) throw invalidParams(`missing the string parameter "${key}"`);
  return value;
}

function optionalString(params: Record<string, unknown>, key: string, allowEmpty = false): string | undefined {
  const value = params[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidParams(`"${key}" must be a string, received ${describeType(value)}`);
  if (value.length > MAX_STRING_LENGTH) throw invalidParams(`"${key}" is longer than ${MAX_STRING_LENGTH} characters`);
  if (value === '' && !allowEmpty) throw invalidParams(`"${key}" must not be empty`);
  return value;
}

function optionalBoolean(params: Record<string, unknown>, key: string): boolean | undefined {
  const value = params[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalidParams(`"${key}" must be true or false, received ${describeType(value)}`);
  return value;
}

function optionalStringList(params: Record<string, unknown>, key: string): string[] {
  const value = params[key];
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_LIST_ITEMS || !value.every((item) => typeof item === 'string' && item.length <= MAX_STRING_LENGTH)) {
    throw invalidParams(`"${key}" must be an array of at most ${MAX_LIST_ITEMS} strings, received ${describeType(value)}`);
  }
  return value as string[];
}

function optionalStringMap(params: Record<string, unknown>, key: string): Map<string, string> {
  const value = params[key];
  const map = new Map<string, string>();
  if (value === undefined) return map;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidParams(`"${key}" must be an object of field names to string values, received ${describeType(value)}`);
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_LIST_ITEMS) throw invalidParams(`"${key}" has more than ${MAX_LIST_ITEMS} fields`);
  for (const [name, item] of entries) {
    if (typeof item !== 'string' || item.length > MAX_STRING_LENGTH) {
      throw invalidParams(`"${key}.${name.slice(0, 64)}" must be a string of at most ${MAX_STRING_LENGTH} characters, received ${describeType(item)}`);
    }
    map.set(name, item);
  }
  return map;
}

function parseTrustPatch(value: unknown, key: string): TrustSettingsPatch {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidParams(`"${key}" must be an object, received ${describeType(value)}`);
  }
  const object = value as Record<string, unknown>;
  const known = ['blockUntrustedServers', 'strictCertificateTrust', 'ocsp', 'fips'] as const;
  for (const name of Object.keys(object)) {
    if (!(known as readonly string[]).includes(name)) {
      throw invalidParams(`unknown setting ${JSON.stringify(`${key}.${name.slice(0, 64)}`)}; expected ${known.join(', ')}`);
    }
  }
  const patch: TrustSettingsPatch = {};
  for (const name of known) {
    const setting = optionalBoolean(object, name);
    if (setting !== undefined) patch[name] = setting;
  }
  return patch;
}

function parseTrustAnswer(text: string | undefined): TrustAnswer | undefined {
  if (text === undefined) return undefined;
  if (text === 'abort' || text === 'continue' || text === 'import-and-continue') return text;
  throw invalidParams(`"trustAnswer" must be abort, continue or import-and-continue, received ${JSON.stringify(text.slice(0, 40))}`);
}

function parsePinParam(text: string): string {
  try {
    return parsePin(text);
  } catch (error) {
    const message = AcvpnError.is(error) ? error.message : 'invalid pin';
    throw invalidParams(`"servercert": ${message}`);
  }
}

/**
 * Accepts https URLs and bare host names; rejects other schemes, credentials, queries and
 * fragments. The same rules as `acvpn connect` applies to its URL argument.
 */
export function parseHeadendUrlParam(text: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw invalidParams('"url" is not a valid URL; expected https://host[:port][/group]');
  }
  if (url.protocol !== 'https:') throw invalidParams(`"url" must use https, received ${JSON.stringify(url.protocol)}`);
  // The URL is not echoed here, because it contains the credentials.
  if (url.username !== '' || url.password !== '') throw invalidParams('"url" must not contain credentials; pass "user" and "password" instead');
  if (url.search !== '' || url.hash !== '') throw invalidParams(`"url" must not contain a query or fragment, received ${JSON.stringify(text.slice(0, 200))}`);
  return url;
}
