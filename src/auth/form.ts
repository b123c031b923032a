// Parsing of the headend's `<config-auth>` documents: login forms (`type="auth-request"`) and the
// final success document (`type="complete"`).
//
// Shape of what the headend sends (ocserv 1.1 sends only <version> and <auth>; ASA adds the rest):
//
//   <config-auth client="vpn" type="auth-request">
//     <version who="sg">0.1(1)</version>
//     <opaque is-for="sg">…</opaque>                 state to echo back verbatim (ASA)
//     <auth id="main">                               "main", "challenge", "success", "failure"
//       <title/> <message/> <banner/> <error/>        error and message may carry param1/param2
//       <form method="post" action="/auth">
//         <input type="text|password|hidden|sso|submit|reset" name="…" label="…" value="…"/>
//         <select name="group_list" label="GROUP:"><option value="…" selected="true">label</option></select>
//       </form>
//     </auth>
//     <client-cert-request/>                         the headend wants a TLS client certificate
//   </config-auth>

import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { AcvpnError } from '../core/errors.js';

export interface FormInput {
  type: 'text' | 'password' | 'hidden' | 'sso' | 'submit' | 'reset' | string;
  name: string;
  label?: string;
  value?: string;
  /** Input that applies only to groups whose option carries second-auth="1" (ASA double authentication). */
  secondAuth?: boolean;
}

export interface FormOption {
  /** The `value` attribute, or the element text when the attribute is absent. */
  value: string;
  /** The element text (the friendly name). */
  label: string;
  selected: boolean;
  secondAuth?: boolean;
  /** Group that needs no credentials (ASA `noaaa="1"`). */
  noAaa?: boolean;
}

export interface FormSelect {
  name: string;
  label?: string;
  options: FormOption[];
}

export interface AuthForm {
  /** The `<auth id>`: "main" for ordinary prompts, "challenge" for OTP rounds on ASA. */
  id: string;
  title?: string;
  message?: string;
  banner?: string;
  /** Error text, present when the headend rejected the previous answer and asks again. */
  error?: string;
  /** Path or URL for the next POST; absent means "post to the current URL again". */
  action?: string;
  inputs: FormInput[];
  selects: FormSelect[];
}

export interface ProfileManifestEntry {
  uri: string;
  sha1: string;
}

export type ConfigAuth =
  | { type: 'auth-request'; form: AuthForm; opaqueRaw?: string; clientCertRequested: boolean }
  | {
      type: 'complete';
      banner?: string;
      title?: string;
      message?: string;
      sessionToken?: string;
      profileManifest?: ProfileManifestEntry[];
    };

/** Largest auth document accepted. Real forms are a few KiB; this bounds parse time and memory. */
export const MAX_CONFIG_AUTH_BYTES = 1024 * 1024;

// Elements that may repeat and must always parse as arrays, so one and many look the same.
const repeatedElements = new Set(['input', 'option', 'select', 'file']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  allowBooleanAttributes: true,
  // Without this, a password-looking value such as "0168179266" would become a number.
  parseTagValue: false,
  parseAttributeValue: false,
  // Decodes numeric character references (&#233;) as well as the five XML entities.
  htmlEntities: true,
  trimValues: true,
  isArray: (tagName) => repeatedElements.has(tagName),
});

type XmlNode = Record<string, unknown>;

/**
 * Parses one `<config-auth>` document from the headend.
 * Throws AcvpnError AUTH_XML_INVALID for malformed XML, a document type declaration, a reserved
 * element name such as `__proto__`, a root other than `<config-auth>` or an unknown `type`.
 */
export function parseConfigAuth(xml: string): ConfigAuth {
  const root = parseRoot(xml);
  const type = attribute(root, 'type');

  if (type === 'auth-request') {
    const auth = firstChild(root, 'auth');
    if (auth === undefined) throw invalid('an auth-request without an <auth> element', xml);
    const opaqueRaw = root['opaque'] === undefined ? undefined : extractOpaque(xml);
    return {
      type: 'auth-request',
      form: parseForm(auth, xml),
      ...(opaqueRaw === undefined ? {} : { opaqueRaw }),
      clientCertRequested: root['client-cert-request'] !== undefined,
    };
  }

  if (type === 'complete') return parseComplete(root);

  throw invalid(`a <config-auth> of unknown type ${JSON.stringify(type ?? '(none)')}`, xml);
}

function parseRoot(xml: string): XmlNode {
  const size = Buffer.byteLength(xml, 'utf8');
  if (size > MAX_CONFIG_AUTH_BYTES) {
    throw new AcvpnError(
      'AUTH_XML_INVALID',
      `the headend sent an auth document of ${size} bytes, more than the limit of ${MAX_CONFIG_AUTH_BYTES}; ` +
        'check that the URL points at an AnyConnect headend',
      { size, limit: MAX_CONFIG_AUTH_BYTES },
    );
  }
  if (xml.trim() === '') throw invalid('an empty body where an XML auth document was expected', xml);

  // AnyConnect documents never declare entities, and a DOCTYPE is the door to entity expansion.
  if (/<!DOCTYPE/i.test(xml)) throw invalid('an XML document type declaration, which is not allowed', xml);

  const validation = XMLValidator.validate(xml, { allowBooleanAttributes: true });
  if (validation !== true) {
    const { msg, line, col } = validation.err;
    throw invalid(`malformed XML (line ${line}, column ${col}: ${msg})`, xml);
  }

  let document: XmlNode;
  try {
    document = parser.parse(xml) as XmlNode;
  } catch (error) {
    // fast-xml-parser throws on element names such as __proto__ or constructor.
    const reason = error instanceof Error ? error.message : String(error);
    throw invalid(`XML the parser rejected (${reason})`, xml, error);
  }

  const rootNames = Object.keys(document).filter((key) => key !== '?xml');
  if (rootNames.length !== 1 || rootNames[0] !== 'config-auth') {
    throw invalid(`a document whose root is ${rootNames.map((name) => `<${name}>`).join(', ') || 'missing'} instead of <config-auth>`, xml);
  }
  const root = document['config-auth'];
  if (Array.isArray(root)) throw invalid('a document with more than one <config-auth> root', xml);
  // <config-auth/> parses as an empty string; treat it as an element without attributes.
  return isNode(root) ? root : {};
}

function parseForm(auth: XmlNode, xml: string): AuthForm {
  const formNode = firstChild(auth, 'form');
  const inputs = childArray(formNode, 'input').map((node) => parseInput(node, xml));
  const selects = childArray(formNode, 'select').map((node) => parseSelect(node, xml));
  const action = formNode === undefined ? undefined : attribute(formNode, 'action');

  return {
    id: attribute(auth, 'id') ?? '',
    ...optional('title', textWithParams(auth['title'])),
    ...optional('message', textWithParams(auth['message'])),
    ...optional('banner', textWithParams(auth['banner'])),
    ...optional('error', textWithParams(auth['error'])),
    ...optional('action', action === '' ? undefined : action),
    inputs,
    selects,
  };
}

function parseInput(node: unknown, xml: string): FormInput {
  const element = isNode(node) ? node : {};
  const name = attribute(element, 'name') ?? '';
  const type = (attribute(element, 'type') ?? 'text').toLowerCase();

  // Input names become element names in the reply, and a name such as `a><b` would inject markup.
  if (isSubmittable(type) && !isXmlName(name)) {
    throw invalid(`a form input named ${JSON.stringify(name)}, which is not a valid XML element name`, xml);
  }

  return {
    type,
    name,
    ...optional('label', attribute(element, 'label')),
    ...optional('value', attribute(element, 'value')),
    ...(attribute(element, 'second-auth') === '1' ? { secondAuth: true } : {}),
  };
}

function parseSelect(node: unknown, xml: string): FormSelect {
  const element = isNode(node) ? node : {};
  const name = attribute(element, 'name') ?? '';
  if (name !== 'group_list' && !isXmlName(name)) {
    throw invalid(`a form select named ${JSON.stringify(name)}, which is not a valid XML element name`, xml);
  }
  const options = childArray(element, 'option').map((option): FormOption => {
    const label = textOf(option) ?? '';
    const attributes = isNode(option) ? option : {};
    return {
      value: attribute(attributes, 'value') ?? label,
      label,
      // ASA writes selected="true"; an HTML-style bare `selected` means the same.
      selected: attribute(attributes, 'selected') !== undefined && attribute(attributes, 'selected') !== 'false',
      ...(attribute(attributes, 'second-auth') === '1' ? { secondAuth: true } : {}),
      ...(attribute(attributes, 'noaaa') === '1' ? { noAaa: true } : {}),
    };
  });
  return { name, ...optional('label', attribute(element, 'label')), options };
}

function parseComplete(root: XmlNode): ConfigAuth {
  const auth = firstChild(root, 'auth') ?? {};
  const manifest = parseProfileManifest(firstChild(root, 'config'));
  return {
    type: 'complete',
    ...optional('banner', textWithParams(auth['banner'])),
    ...optional('title', textWithParams(auth['title'])),
    ...optional('message', textWithParams(auth['message'])),
    ...optional('sessionToken', textOf(first(root['session-token']))),
    ...(manifest.length > 0 ? { profileManifest: manifest } : {}),
  };
}

// <config><vpn-profile-manifest><vpn rev="1.0"><file type="profile"><uri/><hash type="sha1"/></file>
function parseProfileManifest(config: XmlNode | undefined): ProfileManifestEntry[] {
  const vpn = firstChild(firstChild(config, 'vpn-profile-manifest'), 'vpn');
  const entries: ProfileManifestEntry[] = [];
  for (const file of childArray(vpn, 'file')) {
    if (!isNode(file)) continue;
    const uri = textOf(first(file['uri']));
    const sha1 = textOf(first(file['hash']));
    if (uri !== undefined && uri !== '' && sha1 !== undefined && sha1 !== '') entries.push({ uri, sha1 });
  }
  return entries;
}

// Returns the top-level <opaque> element exactly as the headend wrote it, because the parsed
// object loses attribute order and the headend may compare the echo byte for byte.
// NOTE: this takes the first <opaque> in the text. A document with a nested <opaque> before the
// top-level one would echo the wrong element; no headend is known to send that.
function extractOpaque(xml: string): string {
  const start = xml.search(/<opaque[\s/>]/);
  if (start < 0) throw invalid('an <opaque> element that could not be located in the text', xml);
  const openEnd = xml.indexOf('>', start);
  let raw: string;
  if (openEnd > 0 && xml[openEnd - 1] === '/') {
    raw = xml.slice(start, openEnd + 1);
  } else {
    const close = xml.indexOf('</opaque>', start);
    if (close < 0) throw invalid('an <opaque> element without its end tag', xml);
    raw = xml.slice(start, close + '</opaque>'.length);
  }
  // A comment or CDATA section containing "</opaque>" would cut the element short.
  if (XMLValidator.validate(raw, { allowBooleanAttributes: true }) !== true) {
    throw invalid('an <opaque> element that cannot be echoed as well-formed XML', xml);
  }
  return raw;
}

// --- small helpers over fast-xml-parser's object shape ---

function isNode(value: unknown): value is XmlNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function first(value: unknown): unknown {
  return Array.isArray(value) ? value[0] : value;
}

function firstChild(node: XmlNode | undefined, name: string): XmlNode | undefined {
  if (node === undefined) return undefined;
  const child = first(node[name]);
  if (isNode(child)) return child;
  // An empty element such as <auth/> parses as "".
  return child === undefined ? undefined : {};
}

function childArray(node: XmlNode | undefined, name: string): unknown[] {
  if (node === undefined) return [];
  const value = node[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function attribute(node: XmlNode, name: string): string | undefined {
  const value = node[`@_${name}`];
  if (value === true) return '';
  return typeof value === 'string' ? value : undefined;
}

function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isNode(value)) {
    const text = value['#text'];
    return typeof text === 'string' ? text : '';
  }
  return undefined;
}

// ASA puts placeholders in <error> and <message>: "Login failed: %s" with param1="…".
function textWithParams(value: unknown): string | undefined {
  const node = first(value);
  const text = textOf(node);
  if (text === undefined || !isNode(node)) return text;
  let result = text;
  for (const name of ['param1', 'param2']) {
    const parameter = attribute(node, name);
    if (parameter !== undefined) result = result.replace('%s', parameter);
  }
  return result;
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

function isSubmittable(type: string): boolean {
  return type === 'text' || type === 'password' || type === 'hidden';
}

/** True when `name` can be used as an XML element name in a reply. */
export function isXmlName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name) && !/^xml/i.test(name);
}

function invalid(problem: string, xml: string, cause?: unknown): AcvpnError {
  return new AcvpnError(
    'AUTH_XML_INVALID',
    `the headend sent ${problem}; the reply began with ${describeStart(xml)}; check that the URL points at an AnyConnect headend`,
    {},
    cause === undefined ? undefined : { cause },
  );
}

// The first 80 characters, with line breaks and control characters made visible by JSON quoting.
function describeStart(xml: string): string {
  const start = xml.trimStart().slice(0, 80);
  return JSON.stringify(start) + (xml.trimStart().length > 80 ? '…' : '');
}
