import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../../src/auth/cookie-jar.js';

const now = Date.parse('2026-12-04T19:43:16Z');

describe('CookieJar', () => {
  it('starts empty', () => {
    expect(new CookieJar().header()).toBeUndefined();
  });

  it('stores cookies in order and ignores attributes', () => {
    const jar = new CookieJar();
    jar.apply('webvpncontext=SCRUBBED-COOKIE; Max-Age=300; Secure; HttpOnly', now);
    jar.apply('webvpnc=bu:/&p:t&iu:1/&sh:SCRUBBED-HASH; path=/; Secure; HttpOnly', now);
    expect(jar.header()).toBe('webvpncontext=SCRUBBED-COOKIE; webvpnc=bu:/&p:t&iu:1/&sh:SCRUBBED-HASH');
  });

  it('replaces a cookie of the same name', () => {
    const jar = new CookieJar();
    jar.apply('webvpn=first; Secure', now);
    jar.apply('webvpn=second; Secure', now);
    expect(jar.get('webvpn')).toBe('second');
    expect(jar.header()).toBe('webvpn=second');
  });

  it('deletes on an empty value with a 1970 expiry', () => {
    const jar = new CookieJar();
    jar.apply('webvpncontext=abcd1234', now);
    jar.apply('webvpncontext=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly', now);
    expect(jar.header()).toBeUndefined();
  });

  it('deletes on a past expiry with a value', () => {
    const jar = new CookieJar();
    jar.apply('webvpnc=abcd1234', now);
    jar.apply('webvpnc=stale; expires=Thu, 01 Jan 1970 22:00:00 GMT', now);
    expect(jar.get('webvpnc')).toBeUndefined();
  });

  it('keeps a cookie whose expiry lies ahead', () => {
    const jar = new CookieJar();
    jar.apply('webvpn=abcd1234; expires=Fri, 01 Jan 2100 00:00:00 GMT', now);
    expect(jar.get('webvpn')).toBe('abcd1234');
  });

  it('deletes on Max-Age=0', () => {
    const jar = new CookieJar();
    jar.apply('webvpn=abcd1234', now);
    jar.apply('webvpn=abcd1234; Max-Age=0', now);
    expect(jar.get('webvpn')).toBeUndefined();
  });

  it('keeps "=" inside a value and skips malformed pairs', () => {
    const jar = new CookieJar();
    jar.apply('token=a=b==; Secure', now);
    jar.apply('no-equals-sign', now);
    jar.apply('=value-without-name', now);
    expect(jar.header()).toBe('token=a=b==');
  });
});
