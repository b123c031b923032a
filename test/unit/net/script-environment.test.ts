// The vpnc-script environment compared key for key with the one OpenConnect sets.
//
// The expected tables are written out by hand from OpenConnect's contract (script.c and cstp.c of
// OpenConnect 9.01). For the ocserv 1.1.6 captures they were also checked against the environment
// OpenConnect 9.01 gave its --script when connected to the same test headend: same keys, same
// values, including the reverse order of split routes and split-DNS domains.

import { describe, expect, it } from 'vitest';
import { parseConnectResponse } from '../../../src/cstp/connect-response.js';
import type { TunnelConfig } from '../../../src/cstp/tunnel-config.js';
import { buildScriptEnvironment, scriptLogLevel } from '../../../src/net/script/environment.js';
import { loadResponseVector } from '../cstp/vectors.js';

const headendIp = '198.18.0.1';
const pid = 4242;

function parseVector(fileName: string): TunnelConfig {
  const vector = loadResponseVector(fileName);
  return parseConnectResponse(vector.status, vector.reason, vector.headers);
}

/** Parses a 200 response built from "Name: value" lines. */
function parseLines(...lines: string[]): TunnelConfig {
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
  return parseConnectResponse(200, 'CONNECTED', headers);
}

function connectEnvironment(config: TunnelConfig): Record<string, string> {
  return buildScriptEnvironment('connect', { config, tunName: 'tun0', headendIp, pid, logLevel: 1 });
}

/** Returns the variables every run has, with the given `reason`. */
function base(reason: string): Record<string, string> {
  return { reason, TUNDEV: 'tun0', VPNGATEWAY: headendIp, VPNPID: String(pid), LOG_LEVEL: '1' };
}

// CISCO_CSTP_OPTIONS of the ocserv 1.1.6 captures: every X-CSTP-* line in the order received,
// without X-DTLS-* lines and without a newline after the last line.
function ocservCstpOptions(rekeyTime: string, mtu: string): string {
  return [
    'X-CSTP-Version=1',
    'X-CSTP-Server-Name=ocserv 1.1.6',
    'X-CSTP-Hostname=vm',
    'X-CSTP-DPD=60',
    'X-CSTP-Default-Domain=corp.example',
    'X-CSTP-Address=198.19.0.50',
    'X-CSTP-Netmask=255.255.255.0',
    'X-CSTP-DNS=198.18.10.10',
    'X-CSTP-Split-DNS=corp.example',
    'X-CSTP-Split-DNS=lab.example',
    'X-CSTP-Split-Include=198.18.10.0/255.255.255.0',
    'X-CSTP-Split-Include=198.18.20.0/255.255.255.0',
    'X-CSTP-Tunnel-All-DNS=false',
    'X-CSTP-Client-Bypass-Protocol=false',
    'X-CSTP-Split-Exclude=198.18.10.192/255.255.255.192',
    'X-CSTP-Keepalive=30',
    'X-CSTP-Idle-Timeout=none',
    'X-CSTP-Smartcard-Removal-Disconnect=true',
    `X-CSTP-Rekey-Time=${rekeyTime}`,
    'X-CSTP-Rekey-Method=ssl',
    'X-CSTP-Session-Timeout=0',
    'X-CSTP-Session-Timeout-Remaining=0',
    'X-CSTP-Disconnected-Timeout=none',
    'X-CSTP-Keep=true',
    'X-CSTP-TCP-Keepalive=true',
    'X-CSTP-License=accept',
    'X-CSTP-Base-MTU=1400',
    `X-CSTP-MTU=${mtu}`,
    'X-CSTP-Banner=rig test headend (ocserv)',
  ].join('\n');
}

// The variables of the ocserv 1.1.6 test headend configuration, apart from MTU and options.
// X-CSTP-Idle-Timeout is "none", so IDLE_TIMEOUT is unset.
const ocservSplitTunnel: Record<string, string> = {
  INTERNAL_IP4_ADDRESS: '198.19.0.50',
  INTERNAL_IP4_NETMASK: '255.255.255.0',
  INTERNAL_IP4_NETMASKLEN: '24',
  INTERNAL_IP4_NETADDR: '198.19.0.0',
  INTERNAL_IP4_DNS: '198.18.10.10',
  CISCO_DEF_DOMAIN: 'corp.example',
  CISCO_BANNER: 'rig test headend (ocserv)',
  CISCO_SPLIT_DNS: 'lab.example,corp.example',
  CISCO_SPLIT_INC: '2',
  CISCO_SPLIT_INC_0_ADDR: '198.18.20.0',
  CISCO_SPLIT_INC_0_MASK: '255.255.255.0',
  CISCO_SPLIT_INC_0_MASKLEN: '24',
  CISCO_SPLIT_INC_1_ADDR: '198.18.10.0',
  CISCO_SPLIT_INC_1_MASK: '255.255.255.0',
  CISCO_SPLIT_INC_1_MASKLEN: '24',
  CISCO_SPLIT_EXC: '1',
  CISCO_SPLIT_EXC_0_ADDR: '198.18.10.192',
  CISCO_SPLIT_EXC_0_MASK: '255.255.255.192',
  CISCO_SPLIT_EXC_0_MASKLEN: '26',
};

describe('buildScriptEnvironment for ocserv 1.1.6 captures', () => {
  it.each([
    { file: 'ocserv-1.1.6-password-dtls.connect-response.txt', mtu: '1334', rekeyTime: '172800' },
    { file: 'ocserv-1.1.6-password-tls-only.connect-response.txt', mtu: '1372', rekeyTime: '172829' },
    { file: 'ocserv-1.1.6-client-cert.connect-response.txt', mtu: '1334', rekeyTime: '172786' },
  ])('$file', ({ file, mtu, rekeyTime }) => {
    const env = connectEnvironment(parseVector(file));

    expect(env).toEqual({
      ...base('connect'),
      ...ocservSplitTunnel,
      INTERNAL_IP4_MTU: mtu,
      CISCO_CSTP_OPTIONS: ocservCstpOptions(rekeyTime, mtu),
    });
  });

  it('same variables for disconnect', () => {
    const config = parseVector('ocserv-1.1.6-password-dtls.connect-response.txt');
    const env = buildScriptEnvironment('disconnect', { config, tunName: 'tun0', headendIp, pid, logLevel: 1 });

    expect(env).toEqual({ ...connectEnvironment(config), reason: 'disconnect' });
  });
});

describe('buildScriptEnvironment for edge cases', () => {
  it('IPv6 with mixed-family DNS', () => {
    const env = connectEnvironment(parseVector('c05-ipv6.connect-response.txt'));

    // No IPv4 include: full tunnel for IPv4, so CISCO_SPLIT_INC stays unset.
    expect(env).toEqual({
      ...base('connect'),
      INTERNAL_IP4_ADDRESS: '10.20.0.7',
      INTERNAL_IP4_NETMASK: '255.255.255.0',
      INTERNAL_IP4_NETMASKLEN: '24',
      INTERNAL_IP4_NETADDR: '10.20.0.0',
      INTERNAL_IP4_MTU: '1400',
      INTERNAL_IP4_DNS: '10.20.0.53 10.20.0.54 2001:db8:53::c',
      INTERNAL_IP6_ADDRESS: '2001:db8:8f0:82:8000::b',
      INTERNAL_IP6_NETMASK: '2001:db8:8f0:82:8000::b/64',
      CISCO_IPV6_SPLIT_INC: '1',
      CISCO_IPV6_SPLIT_INC_0_ADDR: '2001:db8::',
      CISCO_IPV6_SPLIT_INC_0_MASKLEN: '32',
      CISCO_CSTP_OPTIONS: [
        'X-CSTP-Address=10.20.0.7',
        'X-CSTP-Netmask=255.255.255.0',
        'X-CSTP-Address-IP6=2001:db8:8f0:82:8000::b/64',
        'X-CSTP-DNS=10.20.0.53',
        'X-CSTP-DNS=10.20.0.54',
        'X-CSTP-DNS=2001:db8:53::c',
        'X-CSTP-Split-Include-IP6=2001:db8::/32',
        'X-CSTP-MTU=1400',
      ].join('\n'),
    });
  });

  it('IPv6 address in X-CSTP-Address', () => {
    const env = connectEnvironment(parseVector('c05-ipv6-in-address.connect-response.txt'));

    expect(env.INTERNAL_IP6_ADDRESS).toBe('2001:db8:8f0:82:8000::b');
    expect(env.INTERNAL_IP6_NETMASK).toBe('2001:db8:8f0:82:8000::b/64');
    expect(env.INTERNAL_IP4_ADDRESS).toBe('10.20.0.7');
    expect(env.INTERNAL_IP4_NETMASK).toBe('255.255.255.0');
  });

  it('full tunnel leaves CISCO_SPLIT_INC unset', () => {
    const env = connectEnvironment(
      parseLines(
        'X-CSTP-Address: 10.8.0.5',
        'X-CSTP-Netmask: 255.255.0.0',
        'X-CSTP-Split-Exclude: 192.0.2.0/255.255.255.0',
        'X-CSTP-MTU: 1400',
      ),
    );

    expect(env).toEqual({
      ...base('connect'),
      INTERNAL_IP4_ADDRESS: '10.8.0.5',
      INTERNAL_IP4_NETMASK: '255.255.0.0',
      INTERNAL_IP4_NETMASKLEN: '16',
      INTERNAL_IP4_NETADDR: '10.8.0.0',
      INTERNAL_IP4_MTU: '1400',
      CISCO_SPLIT_EXC: '1',
      CISCO_SPLIT_EXC_0_ADDR: '192.0.2.0',
      CISCO_SPLIT_EXC_0_MASK: '255.255.255.0',
      CISCO_SPLIT_EXC_0_MASKLEN: '24',
      CISCO_CSTP_OPTIONS:
        'X-CSTP-Address=10.8.0.5\nX-CSTP-Netmask=255.255.0.0\nX-CSTP-Split-Exclude=192.0.2.0/255.255.255.0\nX-CSTP-MTU=1400',
    });
    expect('CISCO_SPLIT_INC' in env).toBe(false);
  });

  it('DNS mixes families, keeps order, at most three', () => {
    const env = connectEnvironment(
      parseLines(
        'X-CSTP-Address: 10.8.0.5',
        'X-CSTP-DNS: 10.8.0.53',
        'X-CSTP-DNS-IP6: fd00::53',
        'X-CSTP-DNS: 10.8.0.54',
        'X-CSTP-DNS: 10.8.0.55',
        'X-CSTP-MTU: 1400',
      ),
    );

    expect(env.INTERNAL_IP4_DNS).toBe('10.8.0.53 fd00::53 10.8.0.54');
  });

  it('NBNS skips 0.0.0.0', () => {
    const withServer = connectEnvironment(
      parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-NBNS: 0.0.0.0', 'X-CSTP-NBNS: 10.8.0.137', 'X-CSTP-MTU: 1400'),
    );
    const onlyZero = connectEnvironment(parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-NBNS: 0.0.0.0', 'X-CSTP-MTU: 1400'));

    expect(withServer.INTERNAL_IP4_NBNS).toBe('10.8.0.137');
    expect('INTERNAL_IP4_NBNS' in onlyZero).toBe(false);
  });

  it('banner is %XX-decoded', () => {
    const env = connectEnvironment(
      parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-Banner: Welcome%0AAuthorized%20use only, 100%', 'X-CSTP-MTU: 1400'),
    );

    expect(env.CISCO_BANNER).toBe('Welcome\nAuthorized use only, 100%');
  });

  it('default domain separators become spaces', () => {
    const env = connectEnvironment(
      parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-Default-Domain: a.example,b.example;c.example', 'X-CSTP-MTU: 1400'),
    );

    expect(env.CISCO_DEF_DOMAIN).toBe('a.example b.example c.example');
  });

  it('split DNS joined with commas', () => {
    const env = connectEnvironment(
      parseLines(
        'X-CSTP-Address: 10.8.0.5',
        'X-CSTP-Split-DNS: one.example',
        'X-CSTP-Split-DNS: two.example',
        'X-CSTP-MTU: 1400',
      ),
    );

    expect(env.CISCO_SPLIT_DNS).toBe('two.example,one.example');
  });

  it('local-LAN exclude passed through', () => {
    const env = connectEnvironment(
      parseLines(
        'X-CSTP-Address: 10.8.0.5',
        'X-CSTP-Split-Exclude: 0.0.0.0/255.255.255.255',
        'X-CSTP-Split-Exclude: 192.0.2.0/24',
        'X-CSTP-MTU: 1400',
      ),
    );

    expect(env.CISCO_SPLIT_EXC).toBe('2');
    expect(env.CISCO_SPLIT_EXC_0_ADDR).toBe('0.0.0.0');
    expect(env.CISCO_SPLIT_EXC_0_MASK).toBe('255.255.255.255');
    expect(env.CISCO_SPLIT_EXC_0_MASKLEN).toBe('32');
    expect(env.CISCO_SPLIT_EXC_1_ADDR).toBe('192.0.2.0');
    expect('CISCO_IPV6_SPLIT_EXC' in env).toBe(false);
  });

  it('IPv6 local-LAN exclude passed through', () => {
    const env = connectEnvironment(
      parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-Split-Exclude-IP6: ::/128', 'X-CSTP-MTU: 1400'),
    );

    expect(env.CISCO_IPV6_SPLIT_EXC).toBe('1');
    expect(env.CISCO_IPV6_SPLIT_EXC_0_ADDR).toBe('::');
    expect(env.CISCO_IPV6_SPLIT_EXC_0_MASKLEN).toBe('128');
    expect('CISCO_SPLIT_EXC' in env).toBe(false);
  });

  it('netmask variables only when sent', () => {
    const withoutMask = connectEnvironment(parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-MTU: 1400'));
    const hostMask = connectEnvironment(
      parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-Netmask: 255.255.255.255', 'X-CSTP-MTU: 1400'),
    );

    expect('INTERNAL_IP4_NETMASK' in withoutMask).toBe(false);
    expect('INTERNAL_IP4_NETMASKLEN' in withoutMask).toBe(false);
    expect('INTERNAL_IP4_NETADDR' in withoutMask).toBe(false);
    expect(hostMask.INTERNAL_IP4_NETMASK).toBe('255.255.255.255');
    expect(hostMask.INTERNAL_IP4_NETMASKLEN).toBe('32');
    expect(hostMask.INTERNAL_IP4_NETADDR).toBe('10.8.0.5');
  });

  it('split routes with host bits are cleared', () => {
    const env = connectEnvironment(parseVector('c04-split-networks.connect-response.txt'));

    expect(env.CISCO_SPLIT_INC).toBe('2');
    expect(env.CISCO_SPLIT_INC_0_ADDR).toBe('10.1.2.30');
    expect(env.CISCO_SPLIT_INC_0_MASKLEN).toBe('32');
    expect(env.CISCO_SPLIT_INC_1_ADDR).toBe('10.1.0.0');
    expect(env.CISCO_SPLIT_INC_1_MASK).toBe('255.255.0.0');
    expect(env.CISCO_SPLIT_EXC_0_ADDR).toBe('172.16.5.0');
  });

  it('idle timeout and proxy PAC', () => {
    const env = connectEnvironment(
      parseLines(
        'X-CSTP-Address: 10.8.0.5',
        'X-CSTP-Idle-Timeout: 1800',
        'X-CSTP-MSIE-Proxy-Pac-URL: http://proxy.example/proxy.pac',
        'X-CSTP-MTU: 1400',
      ),
    );

    expect(env.IDLE_TIMEOUT).toBe('1800');
    expect(env.CISCO_PROXY_PAC).toBe('http://proxy.example/proxy.pac');
  });

  it('mtu argument wins over config', () => {
    const config = parseLines('X-CSTP-Address: 10.8.0.5', 'X-CSTP-MTU: 1400');
    const env = buildScriptEnvironment('connect', { config, tunName: 'tun0', headendIp, pid, logLevel: 1, mtu: 1290 });

    expect(env.INTERNAL_IP4_MTU).toBe('1290');
  });

  it('pre-init without config', () => {
    const env = buildScriptEnvironment('pre-init', { headendIp, pid, logLevel: 2 });

    expect(env).toEqual({ reason: 'pre-init', VPNGATEWAY: headendIp, VPNPID: String(pid), LOG_LEVEL: '2' });
  });
});

describe('buildScriptEnvironment secrets', () => {
  const cookie = 'webvpn=3F2A9C1E55D04B7A8E6F0123456789AB';
  const config = parseLines(
    'X-CSTP-Address: 10.8.0.5',
    `X-CSTP-Post-Auth-XML: <?xml version="1.0"?><config-auth><session-token>${cookie}</session-token></config-auth>`,
    'X-DTLS-App-ID: a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90',
    'X-DTLS-Port: 443',
    'X-DTLS-CipherSuite: PSK-NEGOTIATE',
    'X-CSTP-MTU: 1400',
  );

  it('no Post-Auth-XML or cookie anywhere', () => {
    const env = connectEnvironment(config);
    const text = Object.entries(env)
      .map(([name, value]) => `${name}=${value}`)
      .join('\n');

    expect(text).not.toContain('3F2A9C1E55D04B7A8E6F0123456789AB');
    expect(text.toLowerCase()).not.toContain('post-auth-xml');
    expect(text.toLowerCase()).not.toContain('session-token');
  });

  it('no X-DTLS lines in CSTP options', () => {
    const env = connectEnvironment(config);

    expect(env.CISCO_CSTP_OPTIONS).toBe('X-CSTP-Address=10.8.0.5\nX-CSTP-MTU=1400');
  });

  it('Post-Auth-XML in rawHeaders still left out', () => {
    // A config built elsewhere may carry the header; the builder must not rely on the parser.
    const leaky: TunnelConfig = { ...config, rawHeaders: [...config.rawHeaders, ['X-CSTP-Post-Auth-XML', cookie]] };
    const env = connectEnvironment(leaky);

    expect(env.CISCO_CSTP_OPTIONS).not.toContain(cookie);
  });
});

describe('scriptLogLevel', () => {
  it.each([
    ['trace', 3],
    ['debug', 2],
    ['info', 1],
    ['warn', 0],
    ['error', 0],
    ['silent', 0],
  ] as const)('%s is %i', (level, expected) => {
    expect(scriptLogLevel(level)).toBe(expected);
  });
});
