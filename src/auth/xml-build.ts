// Building the client's `<config-auth>` requests: `type="init"` opens the login and
// `type="auth-reply"` answers a form.
//
//   <?xml version="1.0" encoding="UTF-8"?>
//   <config-auth client="vpn" type="init" aggregate-auth-version="2">
//     <version who="vpn">v0.1.0</version>
//     <device-id platform-version="…" device-type="…" unique-id="…">linux-64</device-id>
//     <group-access>https://vpn.example.com/</group-access>      init only
//     <client-cert-fail/>                                         init only, after <client-cert-request>
//     <opaque …>…</opaque>                                        auth-reply only, echoed verbatim
//     <auth><username>…</username><password>…</password></auth>   auth-reply only
//     <group-select>…</group-select>                              top level, never inside <auth>
//   </config-auth>
//
// The root and its children are written on one line, and the body ends with a newline, as
// openconnect 9 writes it. ocserv 1.1 does not parse the XML: it substring-searches the body for
// "<?xml", "<username>", "<password", "_password>" and "<group-select>", so those elements
// never carry attributes.

import { AcvpnError } from '../core/errors.js';
import type { Posture } from '../posture/posture.js';
import { isXmlName } from './form.js';

const xmlDeclaration = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** Escapes `&`, `<` and `>` for element text. Quotes stay as they are, and so does UTF-8. */
export function escapeXmlText(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Escapes a value for a double-quoted attribute. */
export function escapeXmlAttribute(value: string): string {
  return escapeXmlText(value).replace(/"/g, '&quot;');
}

export function buildInitXml(args: {
  posture: Posture;
  groupAccess: string;
  groupSelect?: string;
  clientCertFail?: boolean;
}): string {
  let children = identityElements(args.posture);
  children += `<group-access>${escapeXmlText(args.groupAccess)}</group-access>`;
  if (args.clientCertFail === true) children += '<client-cert-fail/>';
  if (args.groupSelect !== undefined) children += `<group-select>${escapeXmlText(args.groupSelect)}</group-select>`;
  return document('init', children);
}

/**
 * Builds the answer to a form. `fields` are [input name, value] pairs in form order, and each
 * value is escaped exactly once here. `opaqueRaw` is copied unchanged.
 */
export function buildAuthReplyXml(args: {
  posture: Posture;
  opaqueRaw?: string;
  fields: Array<[string, string]>;
  groupSelect?: string;
}): string {
  let children = identityElements(args.posture);
  if (args.opaqueRaw !== undefined) children += args.opaqueRaw;

  let auth = '';
  for (const [name, value] of args.fields) {
    if (!isXmlName(name)) {
      throw new AcvpnError('AUTH_XML_INVALID', `the form field name ${JSON.stringify(name)} is not a valid XML element name`);
    }
    auth += `<${name}>${escapeXmlText(value)}</${name}>`;
  }
  children += `<auth>${auth}</auth>`;

  if (args.groupSelect !== undefined) children += `<group-select>${escapeXmlText(args.groupSelect)}</group-select>`;
  return document('auth-reply', children);
}

/**
 * Returns the X-Pad value for a body of `bodyLength` bytes: a run of "0" that makes body plus pad
 * a multiple of 64, so the request size does not reveal the password length. A body that is
 * already a multiple gets 64 characters, because an empty header value looks like a mistake.
 */
export function xPadFor(bodyLength: number): string {
  const remainder = bodyLength % 64;
  return '0'.repeat(remainder === 0 ? 64 : 64 - remainder);
}

function identityElements(posture: Posture): string {
  const version = `<version who="vpn">${escapeXmlText(posture.clientVersion)}</version>`;
  const deviceId =
    `<device-id platform-version="${escapeXmlAttribute(posture.platformVersion)}"` +
    ` device-type="${escapeXmlAttribute(posture.deviceType)}"` +
    ` unique-id="${escapeXmlAttribute(posture.deviceUniqueId)}">${escapeXmlText(posture.platform)}</device-id>`;
  return version + deviceId;
}

function document(type: 'init' | 'auth-reply', children: string): string {
  return `${xmlDeclaration}<config-auth client="vpn" type="${type}" aggregate-auth-version="2">${children}</config-auth>\n`;
}
