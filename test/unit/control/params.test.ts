import { describe, expect, it } from 'vitest';
import { RpcError, RpcErrorCode } from '../../../src/control/jsonrpc.js';
import { parseConnectParams, parseSettingsPatch } from '../../../src/control/params.js';

function invalidParamsMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(RpcErrorCode.invalidParams);
    return (error as RpcError).message;
  }
  throw new Error('expected invalid params');
}

describe('parseConnectParams', () => {
  it('fills defaults for a minimal request', () => {
    const params = parseConnectParams({ url: 'vpn.example.test/staff' });
    expect(params.url?.href).toBe('https://vpn.example.test/staff');
    expect(params.interactive).toBe(true);
    expect(params.wait).toBe(false);
    expect(params.pins).toEqual([]);
    expect(params.formEntries.size).toBe(0);
  });

  it('reads every field', () => {
    const params = parseConnectParams({
      url: 'https://vpn.example.test',
      user: 'alice',
      password: 'pw-123456',
      group: 'staff',
      formEntries: { otp: '123456' },
      servercert: ['pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
      trust: { blockUntrustedServers: false },
      trustAnswer: 'continue',
      netroam: false,
      dtls: false,
      dns: false,
      interface: 'vpn0',
      interactive: false,
      wait: true,
    });
    expect(params.formEntries.get('otp')).toBe('123456');
    expect(params.trust).toEqual({ blockUntrustedServers: false });
    expect(params.trustAnswer).toBe('continue');
    expect(params.interfaceName).toBe('vpn0');
    expect(params.pins).toHaveLength(1);
  });

  it.each([
    ['no url or entry', {}, /needs "url"/],
    ['url of wrong type', { url: 1 }, /"url" must be a string, received a number/],
    ['http url', { url: 'http://vpn.example.test' }, /must use https/],
    ['credentials in url', { url: 'https://alice:secret-pw@vpn.example.test' }, /must not contain credentials/],
    ['bad interface', { url: 'vpn.example.test', interface: 'a/b' }, /"interface" must be/],
    ['bad trust answer', { url: 'vpn.example.test', trustAnswer: 'yes' }, /"trustAnswer" must be/],
    ['bad pin', { url: 'vpn.example.test', servercert: ['sha1:abc'] }, /"servercert"/],
    ['form entry not a string', { url: 'vpn.example.test', formEntries: { otp: 1 } }, /"formEntries.otp" must be a string/],
    ['unknown trust setting', { url: 'vpn.example.test', trust: { trustEverything: true } }, /unknown setting "trust.trustEverything"/],
    ['unknown parameter', { url: 'vpn.example.test', passwd: 'x' }, /unknown parameter "passwd"/],
    ['boolean as string', { url: 'vpn.example.test', dtls: 'no' }, /"dtls" must be true or false/],
  ])('rejects %s', (_name, params, pattern) => {
    expect(invalidParamsMessage(() => parseConnectParams(params))).toMatch(pattern);
  });

  it('does not echo a password of the wrong type', () => {
    const message = invalidParamsMessage(() => parseConnectParams({ url: 'vpn.example.test', password: ['hunter2-secret'] }));
    expect(message).not.toContain('hunter2-secret');
  });

  it('does not echo credentials in the url', () => {
    const message = invalidParamsMessage(() => parseConnectParams({ url: 'https://alice:hunter2-secret@vpn.example.test' }));
    expect(message).not.toContain('hunter2-secret');
  });
});

describe('parseSettingsPatch', () => {
  it('keeps only the given settings', () => {
    expect(parseSettingsPatch({ dns: false })).toEqual({ dns: false });
  });

  it('rejects an unknown setting', () => {
    expect(invalidParamsMessage(() => parseSettingsPatch({ colour: 'blue' }))).toMatch(/unknown parameter "colour"/);
  });
});
