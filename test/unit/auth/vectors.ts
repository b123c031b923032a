// Loads the headend responses stored in test/vectors/auth/ (see the README there).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HttpResponse } from '../../../src/auth/flow.js';
import type { Posture } from '../../../src/posture/posture.js';

const vectorDirectory = fileURLToPath(new URL('../../vectors/auth/', import.meta.url));

export function readVector(name: string): string {
  return readFileSync(vectorDirectory + name, 'utf8');
}

/** Parses a stored `.http` response; checks the body against Content-Length when present. */
export function readHttpVector(name: string): HttpResponse {
  const text = readVector(name);
  const split = text.indexOf('\n\n');
  if (split < 0) throw new Error(`${name}: no blank line between headers and body`);
  const [statusLine = '', ...headerLines] = text.slice(0, split).split('\n');
  const body = text.slice(split + 2);

  const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
  if (match === null) throw new Error(`${name}: bad status line ${JSON.stringify(statusLine)}`);
  const headers = headerLines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });

  const contentLength = headers.find(([header]) => header.toLowerCase() === 'content-length')?.[1];
  if (contentLength !== undefined && Number(contentLength) !== Buffer.byteLength(body, 'utf8')) {
    throw new Error(`${name}: body has ${Buffer.byteLength(body, 'utf8')} bytes, Content-Length says ${contentLength}`);
  }
  return { status: Number(match[1]), reason: match[2] ?? '', headers, body };
}

/** Builds a 200 response carrying `xml`, as ocserv 1.1 sends a form. */
export function xmlResponse(xml: string, headers: Array<[string, string]> = []): HttpResponse {
  return { status: 200, reason: 'OK', headers: [['Content-Type', 'text/xml'], ...headers], body: xml };
}

export const testPosture: Posture = {
  clientVersion: 'v0.1.0',
  platform: 'linux-64',
  platformVersion: '6.1.0-28-amd64',
  deviceType: 'x86_64',
  deviceUniqueId: '3F2504E04F8911D39A0C0305E82C33013F2504E04F8911D39A0C0305E82C3301',
};

export const testUserAgent = 'AnyConnect-compatible acvpn VPN Agent v0.1.0';
