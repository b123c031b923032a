import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DnsRouting } from '../../../src/net/dns/routing.js';
import { applyResolved, detectResolved, planResolvedCommands, revertResolved, type CommandRunner } from '../../../src/net/dns/resolved.js';

function fakeRunner(failOn?: string): { run: CommandRunner; calls: string[][] } {
  const calls: string[][] = [];
  const run: CommandRunner = async (file, args) => {
    calls.push([file, ...args]);
    if (failOn !== undefined && args[0] === failOn) {
      throw Object.assign(new Error('Command failed'), { stderr: 'Failed to set DNS configuration: Link tun0 not known.\n' });
    }
    return { stdout: '' };
  };
  return { run, calls };
}

const split: DnsRouting = { mode: 'split', tunnelDomains: ['corp.example', 'lab.internal'], searchDomains: ['corp.example'], warnings: [] };

describe('planResolvedCommands', () => {
  it('sets routing domains and no default route for split', () => {
    expect(planResolvedCommands('tun0', split, ['10.20.0.53', '2001:db8::53'])).toEqual([
      ['dns', 'tun0', '10.20.0.53', '2001:db8::53'],
      ['domain', 'tun0', '~lab.internal', 'corp.example'],
      ['default-route', 'tun0', 'false'],
    ]);
  });

  it('routes every name to the link for all-tunnel', () => {
    const routing: DnsRouting = { mode: 'all-tunnel', tunnelDomains: [], searchDomains: ['corp.example'], warnings: [] };

    expect(planResolvedCommands('tun0', routing, ['10.20.0.53'])).toEqual([
      ['dns', 'tun0', '10.20.0.53'],
      ['domain', 'tun0', '~.', 'corp.example'],
      ['default-route', 'tun0', 'true'],
    ]);
  });

  it('does nothing for none', () => {
    const routing: DnsRouting = { mode: 'none', tunnelDomains: [], searchDomains: [], warnings: [] };

    expect(planResolvedCommands('tun0', routing, ['10.20.0.53'])).toEqual([]);
  });
});

describe('applyResolved', () => {
  it('runs resolvectl with each command', async () => {
    const { run, calls } = fakeRunner();

    await applyResolved(run, 'tun0', split, ['10.20.0.53']);
    await revertResolved(run, 'tun0');

    expect(calls).toEqual([
      ['resolvectl', 'dns', 'tun0', '10.20.0.53'],
      ['resolvectl', 'domain', 'tun0', '~lab.internal', 'corp.example'],
      ['resolvectl', 'default-route', 'tun0', 'false'],
      ['resolvectl', 'revert', 'tun0'],
    ]);
  });

  it('stops at the first failure with its stderr', async () => {
    const { run, calls } = fakeRunner('domain');

    const attempt = applyResolved(run, 'tun0', split, ['10.20.0.53']);

    await expect(attempt).rejects.toMatchObject({ code: 'ENV_COMMAND_FAILED' });
    await expect(attempt).rejects.toThrow(/resolvectl domain tun0 .*Link tun0 not known/);
    expect(calls).toHaveLength(2);
  });
});

describe('detectResolved', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'acvpn-resolved-'));
    await mkdir(join(directory, 'run'));
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('is true when resolv.conf links to the stub file', async () => {
    await writeFile(join(directory, 'run', 'stub-resolv.conf'), 'nameserver 127.0.0.53\n');
    await symlink(join(directory, 'run', 'stub-resolv.conf'), join(directory, 'resolv.conf'));

    expect(await detectResolved({ resolvConf: join(directory, 'resolv.conf'), resolvedRunDir: join(directory, 'run') })).toBe(true);
  });

  it('is false for a plain resolv.conf while resolved runs', async () => {
    await writeFile(join(directory, 'run', 'stub-resolv.conf'), 'nameserver 127.0.0.53\n');
    await writeFile(join(directory, 'resolv.conf'), 'nameserver 192.0.2.53\n');

    expect(await detectResolved({ resolvConf: join(directory, 'resolv.conf'), resolvedRunDir: join(directory, 'run') })).toBe(false);
  });

  it('is false when resolved does not run', async () => {
    await writeFile(join(directory, 'resolv.conf'), 'nameserver 192.0.2.53\n');

    expect(await detectResolved({ resolvConf: join(directory, 'resolv.conf'), resolvedRunDir: join(directory, 'absent') })).toBe(false);
  });

  it('is false on this machine', async () => {
    // systemd-resolved does not run here; the default paths must not report it.
    expect(await detectResolved()).toBe(false);
  });
});
