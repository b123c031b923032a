// The cookies a headend sets during login, sent back on every later request to that headend.
//
// ocserv 1.1 sets `webvpncontext` (resumes a half-finished login on a new TLS connection),
// `webvpn` (the session cookie for CONNECT) and `webvpnc`, and deletes cookies by sending an empty
// value with `expires=Thu, 01 Jan 1970 …`. One jar serves one headend, so Domain and Path are
// ignored.

import { registerSecret } from '../core/redact.js';

export class CookieJar {
  private readonly cookies = new Map<string, string>();

  /**
   * Applies one Set-Cookie header value. An empty value, a `Max-Age` of zero or less, or an
   * `Expires` date before `nowMs` deletes the cookie. Every stored value is registered as a secret.
   */
  apply(setCookie: string, nowMs: number): void {
    const [pair = '', ...attributes] = setCookie.split(';');
    const equals = pair.indexOf('=');
    if (equals <= 0) return;
    const name = pair.slice(0, equals).trim();
    const value = pair.slice(equals + 1).trim();
    if (name === '') return;

    if (value === '' || isExpired(attributes, nowMs)) {
      this.cookies.delete(name);
      return;
    }
    registerSecret(value);
    this.cookies.set(name, value);
  }

  get(name: string): string | undefined {
    return this.cookies.get(name);
  }

  /** Returns the Cookie request header value ("a=1; b=2"), or undefined when the jar is empty. */
  header(): string | undefined {
    if (this.cookies.size === 0) return undefined;
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

function isExpired(attributes: string[], nowMs: number): boolean {
  for (const attribute of attributes) {
    const equals = attribute.indexOf('=');
    if (equals < 0) continue;
    const key = attribute.slice(0, equals).trim().toLowerCase();
    const value = attribute.slice(equals + 1).trim();

    if (key === 'max-age' && /^-?\d+$/.test(value) && Number(value) <= 0) return true;
    if (key === 'expires') {
      const expires = Date.parse(value);
      if (!Number.isNaN(expires) && expires <= nowMs) return true;
    }
  }
  return false;
}
