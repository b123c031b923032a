import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { normalizeNetwork, parseIp } from '../../../src/core/ip.js';
import { FALLBACK_MTU, parseConnectResponse } from '../../../src/cstp/connect-response.js';
import type { TunnelConfig } from '../../../src/cstp/tunnel-config.js';
import { TEST_APP_ID, loadResponseVector } from './vectors.js';

function parseVector(fileName: string): { config: TunnelConfig; headers: Array<[string, string]> } {
  const vector = loadResponseVector(fileName);
  return { config: parseConnectResponse(vector.status, vector.reason, vector.headers), headers: vector.headers };
}

/** Parses a 200 response built from "Name: value" lines. */
function parseLines(...lines: string[]): TunnelConfig {
  return parseConnectResponse(200, 'CONNECTED', toHeaders(lines));
}

function toHeaders(lines: string[]): Array<[string, string]> {
  return lines.map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
}

function captureError(action: () => unknown): AcvpnError {
  try {
    action();
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected an AcvpnError, but nothing was thrown');
}

const address = 'X-CSTP-Address: 10.0.0.2';
const mtu = 'X-CSTP-MTU: 1400';

// Fields shared by the three ocserv 1.1.6 captures (same headend configuration).
const ocservCommon = {
  ipv4: { address: '198.19.0.50', prefixLength: 24, netmask: '255.255.255.0' },
  ipv6: undefined,
  dnsServers: ['198.18.10.10'],
  nbnsServers: [],
  defaultDomains: ['corp.example'],
  splitDnsDomains: ['corp.example', 'lab.example'],
  tunnelAllDns: false,
  splitInclude: [
    { family: 4, address: '198.18.10.0', prefixLength: 24 },
    { family: 4, address: '198.18.20.0', prefixLength: 24 },
  ],
  splitExclude: [{ family: 4, address: '198.18.10.192', prefixLength: 26 }],
  localLanAllowed: false,
  clientBypassProtocol: false,
  baseMtu: 1400,
  dpdSeconds: 60,
  keepaliveSeconds: 30,
  idleTimeoutSeconds: undefined,
  sessionTimeoutSeconds: undefined,
  rekeyMethod: 'ssl',
  banner: 'rig test headend (ocserv)',
  serverName: 'ocserv 1.1.6',
  hostname: 'vm',
  proxyPacUrl: undefined,
  warnings: [],
} as const;

describe('parseConnectResponse with ocserv 1.1.6 captures', () => {
  it('password login with DTLS', () => {
    const { config, headers } = parseVector('ocserv-1.1.6-password-dtls.connect-response.txt');
    expect(config).toStrictEqual({
      ...ocservCommon,
      mtu: 1334,
      rekeySeconds: 172800,
      dtls: {
        port: 4443,
        appId: TEST_APP_ID,
        sessionId: undefined,
        cipherSuite: 'PSK-NEGOTIATE',
        dpdSeconds: 60,
        keepaliveSeconds: 30,
        rekeySeconds: 172810,
        rekeyMethod: 'ssl',
        mtu: undefined,
      },
      rawHeaders: headers,
    });
    expect(config.rawHeaders).toHaveLength(36);
  });

  it('password login over TLS only', () => {
    const { config, headers } = parseVector('ocserv-1.1.6-password-tls-only.connect-response.txt');
    expect(config).toStrictEqual({
      ...ocservCommon,
      mtu: 1372,
      rekeySeconds: 172829,
      dtls: undefined,
      rawHeaders: headers,
    });
    expect(config.rawHeaders).toHaveLength(29);
  });

  it('client certificate login', () => {
    const { config, headers } = parseVector('ocserv-1.1.6-client-cert.connect-response.txt');
    expect(config).toStrictEqual({
      ...ocservCommon,
      mtu: 1334,
      rekeySeconds: 172786,
      dtls: {
        port: 4443,
        appId: TEST_APP_ID,
        sessionId: undefined,
        cipherSuite: 'PSK-NEGOTIATE',
        dpdSeconds: 60,
        keepaliveSeconds: 30,
        rekeySeconds: 172796,
        rekeyMethod: 'ssl',
        mtu: undefined,
      },
      rawHeaders: headers,
    });
  });
});

describe('parseConnectResponse edge cases', () => {
  it('C04 split networks with host bits set', () => {
    const { config } = parseVector('c04-split-networks.connect-response.txt');
    expect(config.ipv4).toEqual({ address: '10.8.2.27', prefixLength: 32, netmask: '255.255.255.255' });
    expect(config.splitInclude).toEqual([
      { family: 4, address: '10.1.0.0', prefixLength: 16 },
      { family: 4, address: '10.1.2.30', prefixLength: 32 },
    ]);
    expect(config.splitExclude).toEqual([{ family: 4, address: '172.16.5.0', prefixLength: 24 }]);
    expect(config.warnings).toEqual([
      'X-CSTP-Split-Include: 10.1.2.3/255.255.0.0 has host bits set; using 10.1.0.0/16',
      'X-CSTP-Split-Exclude: 172.16.5.9/255.255.255.0 has host bits set; using 172.16.5.0/24',
      'X-CSTP-Split-Include: "not-a-network" is not a network (expected address/netmask, address/prefix-length or address); skipped',
      `the headend sent neither X-CSTP-MTU nor X-DTLS-MTU; using MTU ${FALLBACK_MTU}`,
    ]);
    expect(config.mtu).toBe(1280);
  });

  it('C05 IPv6 with prefix and mixed DNS', () => {
    const { config } = parseVector('c05-ipv6.connect-response.txt');
    expect(config.ipv4).toEqual({ address: '10.20.0.7', prefixLength: 24, netmask: '255.255.255.0' });
    expect(config.ipv6).toEqual({ address: '2001:db8:8f0:82:8000::b', prefixLength: 64 });
    expect(normalizeNetwork(config.ipv6!.address, config.ipv6!.prefixLength)).toEqual({
      family: 6,
      address: '2001:db8:8f0:82::',
      prefixLength: 64,
    });
    expect(config.dnsServers).toEqual(['10.20.0.53', '10.20.0.54', '2001:db8:53::c']);
    expect(config.dnsServers.map((server) => parseIp(server)?.family)).toEqual([4, 4, 6]);
    expect(config.splitInclude).toEqual([{ family: 6, address: '2001:db8::', prefixLength: 32 }]);
    expect(config.warnings).toEqual([]);
  });

  it('C05 variant IPv6 literal in X-CSTP-Address', () => {
    const { config } = parseVector('c05-ipv6-in-address.connect-response.txt');
    expect(config.ipv4).toEqual({ address: '10.20.0.7', prefixLength: 24, netmask: '255.255.255.0' });
    expect(config.ipv6).toEqual({ address: '2001:db8:8f0:82:8000::b', prefixLength: 64 });
    expect(config.warnings).toEqual([]);
  });

  it('IPv6-only X-CSTP-Address without netmask', () => {
    const config = parseLines('X-CSTP-Address: 2001:DB8:0:0::7', mtu);
    expect(config.ipv4).toBeUndefined();
    expect(config.ipv6).toEqual({ address: '2001:db8::7', prefixLength: 128 });
  });

  it('X-CSTP-Address-IP6 without prefix length', () => {
    const config = parseLines('X-CSTP-Address-IP6: fd00::5', mtu);
    expect(config.ipv6).toEqual({ address: 'fd00::5', prefixLength: 128 });
  });

  it('X-CSTP-Address-IP6 wins over IPv6 in X-CSTP-Address', () => {
    const config = parseLines('X-CSTP-Address: fd00::9', 'X-CSTP-Address-IP6: fd00::5/64', mtu);
    expect(config.ipv6).toEqual({ address: 'fd00::5', prefixLength: 64 });
  });
});

describe('parseConnectResponse IPv4 netmask forms', () => {
  it.each([
    ['dotted netmask', ['X-CSTP-Netmask: 255.255.240.0'], 20],
    ['netmask as /len', ['X-CSTP-Netmask: /22'], 22],
    ['netmask as bare length', ['X-CSTP-Netmask: 23'], 23],
    ['no netmask', [], 32],
  ])('%s', (_name, netmaskLines, prefixLength) => {
    const config = parseLines('X-CSTP-Address: 10.9.8.7', ...netmaskLines, mtu);
    expect(config.ipv4?.prefixLength).toBe(prefixLength);
  });

  it('prefix on the address itself', () => {
    const config = parseLines('X-CSTP-Address: 10.9.8.7/25', 'X-CSTP-Netmask: 255.255.0.0', mtu);
    expect(config.ipv4).toEqual({ address: '10.9.8.7', prefixLength: 25, netmask: '255.255.255.128' });
  });

  it('netmask derived from prefix', () => {
    const config = parseLines('X-CSTP-Address: 10.9.8.7', 'X-CSTP-Netmask: /20', mtu);
    expect(config.ipv4?.netmask).toBe('255.255.240.0');
  });

  it('second IPv4 address is ignored with a warning', () => {
    const config = parseLines('X-CSTP-Address: 10.9.8.7', 'X-CSTP-Address: 10.9.8.8', mtu);
    expect(config.ipv4?.address).toBe('10.9.8.7');
    expect(config.warnings).toEqual(['X-CSTP-Address: extra IPv4 address 10.9.8.8 ignored, using 10.9.8.7']);
  });
});

describe('parseConnectResponse repeated and list headers', () => {
  it('header names match case-insensitively', () => {
    const config = parseLines(
      'x-cstp-address: 10.0.0.2',
      'X-CSTP-MSIE-Proxy-Pac-URL: http://pac.example/proxy.pac',
      'x-cstp-mtu: 1300',
      'X-Cstp-Dpd: 20',
    );
    expect(config.ipv4?.address).toBe('10.0.0.2');
    expect(config.proxyPacUrl).toBe('http://pac.example/proxy.pac');
    expect(config.mtu).toBe(1300);
    expect(config.dpdSeconds).toBe(20);
  });

  it('DNS from both headers keeps order and drops duplicates', () => {
    const config = parseLines(
      address,
      mtu,
      'X-CSTP-DNS: 10.0.0.53',
      'X-CSTP-DNS-IP6: fd00::53',
      'X-CSTP-DNS: 10.0.0.54, 10.0.0.53',
      'X-CSTP-DNS: fd00:0::53',
    );
    expect(config.dnsServers).toEqual(['10.0.0.53', 'fd00::53', '10.0.0.54']);
  });

  it('invalid DNS entry is skipped with a warning', () => {
    const config = parseLines(address, mtu, 'X-CSTP-DNS: dns.example', 'X-CSTP-DNS: 10.0.0.53');
    expect(config.dnsServers).toEqual(['10.0.0.53']);
    expect(config.warnings).toEqual(['X-CSTP-DNS: "dns.example" is not an IP address; skipped']);
  });

  it('WINS servers without 0.0.0.0', () => {
    const config = parseLines(address, mtu, 'X-CSTP-NBNS: 0.0.0.0', 'X-CSTP-NBNS: 10.0.0.60');
    expect(config.nbnsServers).toEqual(['10.0.0.60']);
  });

  it('default domain split on space, comma and semicolon', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Default-Domain: a.example b.example,c.example; d.example');
    expect(config.defaultDomains).toEqual(['a.example', 'b.example', 'c.example', 'd.example']);
  });

  it('split DNS from repeated headers and comma lists', () => {
    const config = parseLines(
      address,
      mtu,
      'X-CSTP-Split-DNS: one.example',
      'X-CSTP-Split-DNS: two.example,three.example',
      'X-CSTP-Split-DNS: one.example',
    );
    expect(config.splitDnsDomains).toEqual(['one.example', 'two.example', 'three.example']);
  });

  it('domain with forbidden characters is skipped', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Split-DNS: good.example,bad"name');
    expect(config.splitDnsDomains).toEqual(['good.example']);
    expect(config.warnings).toEqual(['X-CSTP-Split-DNS: "bad\\"name" is not a domain name; skipped']);
  });

  it('split routes of all four headers and forms', () => {
    const config = parseLines(
      address,
      mtu,
      'X-CSTP-Split-Include: 10.1.0.0/16',
      'X-CSTP-Split-Include: 10.2.3.4',
      'X-CSTP-Split-Include-IP6: fd00:1::/48',
      'X-CSTP-Split-Exclude: 10.1.5.0/255.255.255.0',
      'X-CSTP-Split-Exclude-IP6: fd00:1:0:5::/64',
      'X-CSTP-Split-Include: 10.1.0.0/255.255.0.0',
    );
    expect(config.splitInclude).toEqual([
      { family: 4, address: '10.1.0.0', prefixLength: 16 },
      { family: 4, address: '10.2.3.4', prefixLength: 32 },
      { family: 6, address: 'fd00:1::', prefixLength: 48 },
    ]);
    expect(config.splitExclude).toEqual([
      { family: 4, address: '10.1.5.0', prefixLength: 24 },
      { family: 6, address: 'fd00:1:0:5::', prefixLength: 64 },
    ]);
    expect(config.warnings).toEqual([]);
  });

  it.each([
    ['non-contiguous netmask', '10.1.0.0/255.0.255.0'],
    ['prefix too long', '10.1.0.0/33'],
    ['dotted mask on IPv6', 'fd00::/255.255.0.0'],
    ['two slashes', '10.1.0.0/16/8'],
    ['empty prefix', '10.1.0.0/'],
  ])('rejects route with %s', (_name, value) => {
    const config = parseLines(address, mtu, `X-CSTP-Split-Include: ${value}`, 'X-CSTP-Split-Include: 10.3.0.0/16');
    expect(config.splitInclude).toEqual([{ family: 4, address: '10.3.0.0', prefixLength: 16 }]);
    expect(config.warnings).toHaveLength(1);
    expect(config.warnings[0]).toContain(JSON.stringify(value));
  });

  it('local LAN exclude is a flag, not a route', () => {
    const config = parseLines(
      address,
      mtu,
      'X-CSTP-Split-Exclude: 0.0.0.0/255.255.255.255',
      'X-CSTP-Split-Exclude: 192.168.7.0/24',
    );
    expect(config.localLanAllowed).toBe(true);
    expect(config.splitExclude).toEqual([{ family: 4, address: '192.168.7.0', prefixLength: 24 }]);
  });

  it('IPv6 local LAN exclude is a flag', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Split-Exclude-IP6: ::/128');
    expect(config.localLanAllowed).toBe(true);
    expect(config.splitExclude).toEqual([]);
  });

  it('0.0.0.0/32 as include stays a route', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Split-Include: 0.0.0.0/32');
    expect(config.localLanAllowed).toBe(false);
    expect(config.splitInclude).toEqual([{ family: 4, address: '0.0.0.0', prefixLength: 32 }]);
  });

  it('booleans are case-insensitive', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Tunnel-All-DNS: TRUE', 'X-CSTP-Client-Bypass-Protocol: true');
    expect(config.tunnelAllDns).toBe(true);
    expect(config.clientBypassProtocol).toBe(true);
  });
});

describe('parseConnectResponse MTU and timers', () => {
  it('takes the larger of CSTP and DTLS MTU', () => {
    const config = parseLines(address, 'X-CSTP-MTU: 1300', 'X-DTLS-MTU: 1350');
    expect(config.mtu).toBe(1350);
  });

  it('uses X-DTLS-MTU alone', () => {
    const config = parseLines(address, 'X-DTLS-MTU: 1350');
    expect(config.mtu).toBe(1350);
    expect(config.warnings).toEqual([]);
  });

  it('falls back to 1280 with a warning', () => {
    const config = parseLines(address);
    expect(config.mtu).toBe(1280);
    expect(config.warnings).toEqual(['the headend sent neither X-CSTP-MTU nor X-DTLS-MTU; using MTU 1280']);
  });

  it.each([
    ['none', undefined],
    ['NONE', undefined],
    ['0', undefined],
    ['45', 45],
  ])('DPD value %s', (value, expected) => {
    const config = parseLines(address, mtu, `X-CSTP-DPD: ${value}`);
    expect(config.dpdSeconds).toBe(expected);
  });

  it('session timeout is the smallest non-zero expiry', () => {
    const config = parseLines(
      address,
      mtu,
      'X-CSTP-Session-Timeout: 86400',
      'X-CSTP-Session-Timeout-Remaining: 0',
      'X-CSTP-Lease-Duration: 1209600',
    );
    expect(config.sessionTimeoutSeconds).toBe(86400);
  });

  it('session timeout from remaining time', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Session-Timeout: 86400', 'X-CSTP-Session-Timeout-Remaining: 3600');
    expect(config.sessionTimeoutSeconds).toBe(3600);
  });

  it('idle timeout is read', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Idle-Timeout: 1200');
    expect(config.idleTimeoutSeconds).toBe(1200);
  });

  it('bad expiry header is skipped with a warning', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Idle-Timeout: soon', 'X-CSTP-Session-Timeout: 600');
    expect(config.idleTimeoutSeconds).toBeUndefined();
    expect(config.sessionTimeoutSeconds).toBe(600);
    expect(config.warnings).toEqual(['X-CSTP-Idle-Timeout value "soon" is not a number of seconds or "none"; ignored']);
  });

  it.each([
    ['new-tunnel', 'new-tunnel'],
    ['SSL', 'ssl'],
    ['none', 'none'],
  ])('rekey method %s', (value, expected) => {
    const config = parseLines(address, mtu, `X-CSTP-Rekey-Method: ${value}`);
    expect(config.rekeyMethod).toBe(expected);
  });

  it('unknown rekey method means no rekey', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Rekey-Method: magic');
    expect(config.rekeyMethod).toBe('none');
    expect(config.warnings).toEqual(['X-CSTP-Rekey-Method: unknown method "magic"; no rekey is done']);
  });

  it('missing optional headers leave defaults', () => {
    const config = parseLines(address, mtu);
    expect(config).toStrictEqual({
      ipv4: { address: '10.0.0.2', prefixLength: 32, netmask: '255.255.255.255' },
      ipv6: undefined,
      dnsServers: [],
      nbnsServers: [],
      defaultDomains: [],
      splitDnsDomains: [],
      tunnelAllDns: false,
      splitInclude: [],
      splitExclude: [],
      localLanAllowed: false,
      clientBypassProtocol: false,
      mtu: 1400,
      baseMtu: undefined,
      dpdSeconds: undefined,
      keepaliveSeconds: undefined,
      idleTimeoutSeconds: undefined,
      sessionTimeoutSeconds: undefined,
      rekeySeconds: undefined,
      rekeyMethod: 'none',
      banner: undefined,
      serverName: undefined,
      hostname: undefined,
      proxyPacUrl: undefined,
      dtls: undefined,
      rawHeaders: [
        ['X-CSTP-Address', '10.0.0.2'],
        ['X-CSTP-MTU', '1400'],
      ],
      warnings: [],
    });
  });
});

describe('parseConnectResponse banner', () => {
  it('decodes %XX sequences', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Banner: Welcome%0D%0AAuthorized%20use%20only%21');
    expect(config.banner).toBe('Welcome\nAuthorized use only!');
  });

  it('keeps a lone percent sign', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Banner: 100% uptime, 50%zz off');
    expect(config.banner).toBe('100% uptime, 50%zz off');
  });

  it('decodes UTF-8 percent escapes', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Banner: Caf%C3%A9 %E2%82%AC');
    expect(config.banner).toBe('Café €');
  });

  it('keeps literal non-ASCII text', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Banner: Grüße € and Caf%C3%A9');
    expect(config.banner).toBe('Grüße € and Café');
  });

  it('decodes latin1 percent escapes', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Banner: Gr%FC%DFe');
    expect(config.banner).toBe('Grüße');
  });

  it('removes terminal control characters', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Banner: %1B[2Jhello%07');
    expect(config.banner).toBe('[2Jhello');
  });
});

describe('parseConnectResponse DTLS offer', () => {
  const dtlsBase = ['X-DTLS-Port: 443', 'X-DTLS-CipherSuite: PSK-NEGOTIATE'];

  it('legacy session id with DTLS MTU', () => {
    const sessionId = 'AB'.repeat(32);
    const config = parseLines(
      address,
      'X-CSTP-MTU: 1300',
      'X-DTLS-Port: 443',
      `X-DTLS-Session-ID: ${sessionId}`,
      'X-DTLS-CipherSuite: AES256-SHA',
      'X-DTLS-MTU: 1320',
    );
    expect(config.dtls).toEqual({
      port: 443,
      appId: undefined,
      sessionId,
      cipherSuite: 'AES256-SHA',
      dpdSeconds: undefined,
      keepaliveSeconds: undefined,
      rekeySeconds: undefined,
      rekeyMethod: undefined,
      mtu: 1320,
    });
    expect(config.mtu).toBe(1320);
  });

  it('no DTLS headers means no offer and no warning', () => {
    const config = parseLines(address, mtu);
    expect(config.dtls).toBeUndefined();
    expect(config.warnings).toEqual([]);
  });

  it('missing id disables DTLS with a warning', () => {
    const config = parseLines(address, mtu, ...dtlsBase);
    expect(config.dtls).toBeUndefined();
    expect(config.warnings).toEqual([
      'DTLS disabled: the headend did not send X-DTLS-App-ID or X-DTLS-Session-ID; the tunnel uses CSTP only',
    ]);
  });

  it.each([
    ['port not a number', ['X-DTLS-Port: https', 'X-DTLS-CipherSuite: PSK-NEGOTIATE', 'X-DTLS-App-ID: abcd'], 'X-DTLS-Port'],
    ['port out of range', ['X-DTLS-Port: 70000', 'X-DTLS-CipherSuite: PSK-NEGOTIATE', 'X-DTLS-App-ID: abcd'], 'X-DTLS-Port'],
    ['App-ID not hex', [...dtlsBase, 'X-DTLS-App-ID: xyz'], 'X-DTLS-App-ID'],
    ['App-ID longer than 32 bytes', [...dtlsBase, `X-DTLS-App-ID: ${'ab'.repeat(33)}`], 'X-DTLS-App-ID'],
    ['session id not 64 hex digits', [...dtlsBase, 'X-DTLS-Session-ID: abcd'], 'X-DTLS-Session-ID'],
    ['DTLS DPD not a number', [...dtlsBase, 'X-DTLS-App-ID: abcd', 'X-DTLS-DPD: often'], 'X-DTLS-DPD'],
  ])('%s disables DTLS', (_name, lines, header) => {
    const config = parseLines(address, mtu, ...lines);
    expect(config.dtls).toBeUndefined();
    expect(config.warnings).toHaveLength(1);
    expect(config.warnings[0]).toMatch(new RegExp(`^DTLS disabled: ${header} value `));
  });
});

describe('parseConnectResponse raw headers', () => {
  it('collects X-CSTP and X-DTLS headers in order', () => {
    const config = parseLines(
      'Content-Type: text/plain',
      address,
      'X-DTLS12-CipherSuite: ECDHE-RSA-AES256-GCM-SHA384',
      'Set-Cookie: webvpn=should-not-appear',
      mtu,
      'X-Custom: kept out',
    );
    expect(config.rawHeaders).toEqual([
      ['X-CSTP-Address', '10.0.0.2'],
      ['X-DTLS12-CipherSuite', 'ECDHE-RSA-AES256-GCM-SHA384'],
      ['X-CSTP-MTU', '1400'],
    ]);
  });

  it('leaves out X-CSTP-Post-Auth-XML', () => {
    const config = parseLines(address, mtu, 'X-CSTP-Post-Auth-XML: <session-token>SECRET-TOKEN</session-token>');
    expect(JSON.stringify(config)).not.toContain('SECRET-TOKEN');
  });
});

describe('parseConnectResponse errors', () => {
  it('no address is CSTP_CONFIG_MISSING', () => {
    const error = captureError(() => parseLines(mtu, 'X-CSTP-DNS: 10.0.0.53'));
    expect(error.code).toBe('CSTP_CONFIG_MISSING');
    expect(error.message).toContain('X-CSTP-Address');
  });

  it.each([
    ['MTU not a number', 'X-CSTP-MTU: large', 'X-CSTP-MTU', 'large'],
    ['MTU below 576', 'X-CSTP-MTU: 100', 'X-CSTP-MTU', '100'],
    ['MTU above 65535', 'X-CSTP-MTU: 70000', 'X-CSTP-MTU', '70000'],
    ['DTLS MTU not a number', 'X-DTLS-MTU: 1300a', 'X-DTLS-MTU', '1300a'],
    ['base MTU negative', 'X-CSTP-Base-MTU: -1', 'X-CSTP-Base-MTU', '-1'],
    ['DPD not a number', 'X-CSTP-DPD: 30s', 'X-CSTP-DPD', '30s'],
    ['keepalive fractional', 'X-CSTP-Keepalive: 2.5', 'X-CSTP-Keepalive', '2.5'],
    ['rekey time not a number', 'X-CSTP-Rekey-Time: daily', 'X-CSTP-Rekey-Time', 'daily'],
    ['netmask not contiguous', 'X-CSTP-Netmask: 255.0.255.0', 'X-CSTP-Netmask', '255.0.255.0'],
    ['IPv6 address invalid', 'X-CSTP-Address-IP6: fd00::zz/64', 'X-CSTP-Address-IP6', 'fd00::zz/64'],
    ['IPv6 prefix too long', 'X-CSTP-Address-IP6: fd00::1/129', 'X-CSTP-Address-IP6', 'fd00::1/129'],
  ])('%s is CSTP_HEADER_INVALID', (_name, line, header, value) => {
    const error = captureError(() => parseLines(address, line, ...(line.startsWith('X-CSTP-MTU') ? [] : [mtu])));
    expect(error.code).toBe('CSTP_HEADER_INVALID');
    expect(error.message).toContain(header);
    expect(error.message).toContain(JSON.stringify(value));
    expect(error.details).toEqual({ header, value });
  });

  it.each([
    ['IPv4 address invalid', 'X-CSTP-Address: 10.0.0.256'],
    ['IPv6 literal invalid', 'X-CSTP-Address: fd00:::1'],
    ['IPv4 prefix invalid', 'X-CSTP-Address: 10.0.0.1/40'],
  ])('%s is CSTP_HEADER_INVALID', (_name, line) => {
    const error = captureError(() => parseLines(line, mtu));
    expect(error.code).toBe('CSTP_HEADER_INVALID');
    expect(error.message).toContain('X-CSTP-Address');
  });

  it('error never quotes the cookie or Post-Auth-XML', () => {
    const error = captureError(() =>
      parseConnectResponse(
        200,
        'CONNECTED',
        toHeaders([
          'Set-Cookie: webvpn=COOKIE-VALUE',
          'X-CSTP-Post-Auth-XML: <session-token>SECRET-TOKEN</session-token>',
          address,
          'X-CSTP-MTU: broken',
        ]),
      ),
    );
    expect(error.code).toBe('CSTP_HEADER_INVALID');
    const everything = `${error.message} ${JSON.stringify(error.details)}`;
    expect(everything).not.toContain('COOKIE-VALUE');
    expect(everything).not.toContain('SECRET-TOKEN');
  });

  it('401 is COOKIE_REJECTED', () => {
    const error = captureError(() => parseConnectResponse(401, 'Cookie is not acceptable', []));
    expect(error.code).toBe('COOKIE_REJECTED');
    expect(error.message).toContain('401 Cookie is not acceptable');
    expect(error.message).toContain('log in again');
  });

  it('503 is CONNECT_REFUSED with X-Reason', () => {
    const error = captureError(() =>
      parseConnectResponse(503, 'Service Unavailable', [['X-Reason', 'Server configuration error']]),
    );
    expect(error.code).toBe('CONNECT_REFUSED');
    expect(error.message).toContain('X-Reason: Server configuration error');
    expect(error.details).toEqual({ status: 503, reason: 'Server configuration error' });
  });

  it('503 without X-Reason names the status line', () => {
    const error = captureError(() => parseConnectResponse(503, 'Service Unavailable', []));
    expect(error.code).toBe('CONNECT_REFUSED');
    expect(error.message).toContain('HTTP 503 Service Unavailable');
  });

  it('404 is CONNECT_REFUSED naming the URL', () => {
    const error = captureError(() => parseConnectResponse(404, 'Not Found', []));
    expect(error.code).toBe('CONNECT_REFUSED');
    expect(error.message).toContain('HTTP 404 Not Found');
    expect(error.message).toContain('/CSCOSSLC/tunnel');
  });

  it('control characters in the reason are removed', () => {
    const error = captureError(() => parseConnectResponse(500, 'Oops\r\nInjected: yes', []));
    expect(error.code).toBe('CONNECT_REFUSED');
    expect(error.message).not.toMatch(/[\r\n]/);
  });
});
