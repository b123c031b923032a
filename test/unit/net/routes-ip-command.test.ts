import { afterEach, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { assertInterfaceName, ipStderr, runIp } from '../../../src/net/ip-command.js';

// These run the real ip binary with commands that only read state, which needs no root.
describe('runIp', () => {
  const savedPath = process.env.PATH;

  afterEach(() => {
    process.env.PATH = savedPath;
  });

  it('returns stdout', async () => {
    const { stdout } = await runIp(['-json', 'link', 'show', 'dev', 'lo']);

    expect(JSON.parse(stdout)).toMatchObject([{ ifname: 'lo' }]);
  });

  it('feeds input to a batch', async () => {
    const { stdout } = await runIp(['-batch', '-'], { input: 'link show dev lo\n' });

    expect(stdout).toMatch(/^1: lo: /);
  });

  it('reports a failed command with argv and stderr', async () => {
    const attempt = runIp(['route', 'get', 'not-an-address']);

    await expect(attempt).rejects.toMatchObject({ code: 'ENV_COMMAND_FAILED' });
    const error = await attempt.catch((caught: unknown) => caught);
    expect(AcvpnError.is(error)).toBe(true);
    expect((error as AcvpnError).message).toMatch(/^"ip route get not-an-address" failed with exit status 1: Error: /);
    expect(ipStderr(error)).toMatch(/not-an-address/);
    expect((error as AcvpnError).details.argv).toBe('ip route get not-an-address');
  });

  it('reports a missing ip binary', async () => {
    process.env.PATH = '/nonexistent-acvpn-test';

    await expect(runIp(['link', 'show'])).rejects.toMatchObject({ code: 'ENV_IP_MISSING' });
  });
});

describe('assertInterfaceName', () => {
  it.each(['tun0', 'eth0.100', 'enp0s31f6', 'wg-office', 'a'])('accepts %s', (name) => {
    expect(() => assertInterfaceName(name)).not.toThrow();
  });

  it.each(['', 'tun 0', 'tun/0', 'tun:0', 'tun#0', '"tun0"', '.', '..', 'sixteen-chars-xx'])('rejects %j', (name) => {
    expect(() => assertInterfaceName(name)).toThrow(/invalid network interface name/);
  });
});
