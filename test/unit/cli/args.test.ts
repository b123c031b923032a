import { describe, expect, it } from 'vitest';
import { parseCommandLine, parseHeadendUrl } from '../../../src/cli/args.js';
import { AcvpnError } from '../../../src/core/errors.js';

function usageError(run: () => unknown): AcvpnError {
  try {
    run();
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected a usage error');
}

describe('command line', () => {
  it('parses a full connect line', () => {
    const command = parseCommandLine(
      ['connect', '-u', 'alice', '--passwd-on-stdin', '--authgroup', 'staff', '--cafile', '/tmp/ca.pem', '--non-interactive', '--form-entry', 'secondary_password=x=y', 'https://vpn.rig.test:8443/'],
      {},
    );
    expect(command.command).toBe('connect');
    if (command.command !== 'connect') return;
    expect(command.user).toBe('alice');
    expect(command.passwordOnStdin).toBe(true);
    expect(command.authgroup).toBe('staff');
    expect(command.url.host).toBe('vpn.rig.test:8443');
    expect(command.formEntries.get('secondary_password')).toBe('x=y');
    expect(command.nonInteractive).toBe(true);
    expect(command.interfaceName).toBe('acvpn0');
    expect(command.stateDir).toBe('/var/lib/acvpn');
    expect(command.runDir).toBe('/run/acvpn');
  });

  it('takes directories from the environment', () => {
    const command = parseCommandLine(['connect', 'vpn.example.com'], { ACVPN_STATE_DIR: '/s', XDG_RUNTIME_DIR: '/run/user/0' });
    expect(command.command).toBe('connect');
    if (command.command !== 'connect') return;
    expect(command.stateDir).toBe('/s');
    expect(command.runDir).toBe('/run/user/0/acvpn');
    expect(command.socketPath).toBe('/run/user/0/acvpn/control.sock');
    expect(command.url.href).toBe('https://vpn.example.com/');
  });

  it('rejects unknown options with exit 2', () => {
    const error = usageError(() => parseCommandLine(['connect', '--password', 'x', 'https://h'], {}));
    expect(error.code).toBe('USAGE');
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/password/);
  });

  it('rejects a missing URL', () => {
    expect(usageError(() => parseCommandLine(['connect'], {})).message).toMatch(/missing the headend URL/);
  });

  it('rejects bad servercert pins', () => {
    expect(usageError(() => parseCommandLine(['connect', '--servercert', 'sha1:abc', 'h'], {})).message).toMatch(/pin-sha256/);
  });

  it('rejects interface names over 15 characters', () => {
    expect(usageError(() => parseCommandLine(['connect', '-i', 'a-very-long-name-0', 'h'], {})).message).toMatch(/1 to 15/);
  });

  it('rejects URLs that are not https', () => {
    expect(usageError(() => parseHeadendUrl('http://vpn.example.com')).message).toMatch(/https/);
    expect(usageError(() => parseHeadendUrl('https://u:p@vpn.example.com')).message).toMatch(/credentials/);
    expect(usageError(() => parseHeadendUrl('https://vpn.example.com/?a=1')).message).toMatch(/query/);
  });

  it('keeps a group path percent-encoded', () => {
    expect(parseHeadendUrl('https://vpn.example.com/Example-VPN (Full Tunnel)').pathname).toBe('/Example-VPN%20(Full%20Tunnel)');
  });

  it('rejects unknown commands', () => {
    expect(usageError(() => parseCommandLine(['conect'], {})).message).toMatch(/unknown command/);
  });
});
