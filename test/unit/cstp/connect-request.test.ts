import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { buildConnectRequest, mtuForBase, type ConnectRequestOptions } from '../../../src/cstp/connect-request.js';

function captureError(action: () => unknown): AcvpnError {
  try {
    action();
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected an AcvpnError, but nothing was thrown');
}

const cookie = '7A3F9C21B0E4D8F5A6C1E9B2D7F4A3C8@4096@1234@ABCDEF0123456789=';

const options: ConnectRequestOptions = {
  host: 'vpn.rig.test:4443',
  userAgent: 'AnyConnect-compatible acvpn VPN Agent v0.1.0',
  cookie,
  hostname: 'vm',
  posture: {
    clientVersion: 'v0.1.0',
    platform: 'linux-64',
    platformVersion: '6.1.0-18-amd64',
    deviceType: 'x86_64',
    deviceUniqueId: 'C0FFEE00112233445566778899AABBCCDDEEFF00112233445566778899AABBCC',
  },
  baseMtu: 1500,
  mtu: 1390,
  addressTypes: 'IPv6,IPv4',
};

const expectedHead = [
  'CONNECT /CSCOSSLC/tunnel HTTP/1.1',
  'Host: vpn.rig.test:4443',
  'User-Agent: AnyConnect-compatible acvpn VPN Agent v0.1.0',
  `Cookie: webvpn=${cookie}`,
  'X-CSTP-Version: 1',
  'X-CSTP-Hostname: vm',
  'X-CSTP-Protocol: Copyright (c) 2004 Cisco Systems, Inc.',
  'X-AnyConnect-Identifier-ClientVersion: v0.1.0',
  'X-AnyConnect-Identifier-Platform: linux-64',
  'X-AnyConnect-Identifier-PlatformVersion: 6.1.0-18-amd64',
  'X-AnyConnect-Identifier-DeviceType: x86_64',
  'X-AnyConnect-Identifier-Device-UniqueID: C0FFEE00112233445566778899AABBCCDDEEFF00112233445566778899AABBCC',
  'X-CSTP-Base-MTU: 1500',
  'X-CSTP-MTU: 1390',
  'X-CSTP-Address-Type: IPv6,IPv4',
];

describe('buildConnectRequest', () => {
  it('builds the exact request without DTLS', () => {
    const expected = [...expectedHead, 'X-CSTP-Full-IPv6-Capability: true', '', ''].join('\r\n');
    expect(buildConnectRequest(options)).toBe(expected);
  });

  it('adds previous addresses and the DTLS offer', () => {
    const secret = '0123456789abcdef'.repeat(6);
    const request = buildConnectRequest({
      ...options,
      addressTypes: 'IPv4',
      previousAddresses: ['10.20.0.7', '2001:db8::7'],
      dtls: { masterSecretHex: secret, cipherSuites: 'PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:AES128-SHA' },
    });
    const expected = [
      ...expectedHead.slice(0, -1),
      'X-CSTP-Address-Type: IPv4',
      'X-CSTP-Address: 10.20.0.7',
      'X-CSTP-Address: 2001:db8::7',
      'X-CSTP-Full-IPv6-Capability: true',
      `X-DTLS-Master-Secret: ${secret}`,
      'X-DTLS-CipherSuite: PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:AES128-SHA',
      '',
      '',
    ].join('\r\n');
    expect(request).toBe(expected);
  });

  it('sends no compression offer', () => {
    expect(buildConnectRequest(options)).not.toMatch(/Accept-Encoding/i);
  });

  it('empty DTLS object sends no X-DTLS header', () => {
    expect(buildConnectRequest({ ...options, dtls: {} })).not.toContain('X-DTLS');
  });

  it('raises a base MTU below 1280', () => {
    expect(buildConnectRequest({ ...options, baseMtu: 1000 })).toContain('\r\nX-CSTP-Base-MTU: 1280\r\n');
  });

  it.each([
    ['Host', { host: 'vpn.example\r\nX-Evil: 1' }],
    ['User-Agent', { userAgent: 'agent\n' }],
    ['X-CSTP-Hostname', { hostname: 'host\x00name' }],
    ['Host', { host: '' }],
  ])('rejects a bad %s value', (header, override) => {
    const error = captureError(() => buildConnectRequest({ ...options, ...override }));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain(header);
  });

  it.each([
    ['line break', 'abc\r\nX-Evil: 1'],
    ['semicolon', 'abc; other=1'],
    ['empty', ''],
  ])('rejects a cookie with %s without quoting it', (_name, badCookie) => {
    const error = captureError(() => buildConnectRequest({ ...options, cookie: badCookie }));
    expect(error.code).toBe('AUTH_UNEXPECTED_REPLY');
    if (badCookie !== '') expect(error.message).not.toContain(badCookie);
    expect(error.message).toContain('log in again');
  });

  it('rejects a master secret of the wrong length without quoting it', () => {
    const secret = 'ab'.repeat(20);
    const error = captureError(() => buildConnectRequest({ ...options, dtls: { masterSecretHex: secret } }));
    expect(error.message).toContain('96 hex digits');
    expect(error.message).not.toContain(secret);
  });

  it('rejects a cipher list with a line break', () => {
    const error = captureError(() => buildConnectRequest({ ...options, dtls: { cipherSuites: 'PSK-NEGOTIATE\r\nX: y' } }));
    expect(error.code).toBe('CONFIG_INVALID');
  });

  it('rejects a previous address that is not an IP', () => {
    expect(captureError(() => buildConnectRequest({ ...options, previousAddresses: ['vpn.example'] })).code).toBe('INTERNAL');
  });

  it.each([
    ['MTU fractional', { mtu: 1300.5 }],
    ['MTU below 576', { mtu: 500 }],
    ['base MTU zero', { baseMtu: 0 }],
    ['base MTU too large', { baseMtu: 70000 }],
  ])('rejects %s', (_name, override) => {
    expect(captureError(() => buildConnectRequest({ ...options, ...override })).code).toBe('CONFIG_INVALID');
  });
});

describe('buildConnectRequest against openconnect', () => {
  /** Header names in order from a request text, skipping the request line and comments. */
  function headerNames(text: string, lineBreak: string): string[] {
    return text
      .split(lineBreak)
      .filter((line) => line.includes(': ') && !line.startsWith('#'))
      .map((line) => line.slice(0, line.indexOf(':')));
  }

  it('spells and orders shared header names as openconnect does', () => {
    const captured = readFileSync(new URL('../../vectors/cstp/ocserv-1.1.6-password-dtls.connect-request.txt', import.meta.url), 'utf8');
    const capturedNames = headerNames(captured, '\n');
    const ourNames = headerNames(
      buildConnectRequest({ ...options, dtls: { masterSecretHex: 'ab'.repeat(48), cipherSuites: 'PSK-NEGOTIATE' } }),
      '\r\n',
    );

    const capturedLower = new Set(capturedNames.map((name) => name.toLowerCase()));
    const shared = ourNames.filter((name) => capturedLower.has(name.toLowerCase()));
    expect(shared).toEqual(capturedNames.filter((name) => shared.includes(name)));
    expect(shared).toHaveLength(11);
  });
});

describe('mtuForBase', () => {
  it.each([
    [1406, false, 1296],
    [1500, false, 1390],
    [1500, true, 1370],
    [1280, false, 1170],
    [1000, false, 1170],
    [1000, true, 1150],
    [9000, false, 8890],
  ])('base %i over IPv6 %s gives %i', (base, ipv6Path, expected) => {
    expect(mtuForBase(base, ipv6Path)).toBe(expected);
  });

  it('rejects a base MTU that is not a whole number', () => {
    expect(captureError(() => mtuForBase(1400.5, false)).code).toBe('CONFIG_INVALID');
  });
});
