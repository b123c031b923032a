import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { createLogger, type Logger } from '../../../src/core/log.js';
import type { IpNetwork } from '../../../src/cstp/tunnel-config.js';
import type { IpRunner } from '../../../src/net/ip-command.js';
import { parseBatchFailures, RouteManager } from '../../../src/net/routes/apply.js';
import type { RouteEntry, RoutePlan } from '../../../src/net/routes/plan.js';

// A stand-in for `ip` that keeps a route table as a set of "DEST [via GW] dev DEV" strings and
// reports batches the way iproute2 6.1 does: each failed line prints its error, then
// "Command failed -:N", and the run exits non-zero.
class FakeIp {
  readonly table = new Set<string>();
  readonly devices = new Set(['eth0', 'tun0']);
  readonly calls: Array<{ args: string[]; input?: string }> = [];
  /** Returns an error message to make one command fail. */
  failWith?: (verb: string, spec: string) => string | undefined;
  /** Makes the next batch apply every line, then fail without a per-line report (a crash). */
  crashAfterNextBatch = false;

  readonly run: IpRunner = async (args, options = {}) => {
    this.calls.push({ args, input: options.input });
    const batch = args[0] === '-force' && args[1] === '-batch';
    const lines = batch ? (options.input ?? '').split('\n').filter((line) => line !== '') : [args.join(' ')];

    let stderr = '';
    lines.forEach((line, index) => {
      const message = this.execute(line.split(' '));
      if (message === undefined) return;
      stderr += batch ? `${message}\nCommand failed -:${index + 1}\n` : `${message}\n`;
    });

    if (batch && this.crashAfterNextBatch) {
      this.crashAfterNextBatch = false;
      throw new AcvpnError('ENV_COMMAND_FAILED', 'ip was stopped by SIGKILL', { stderr: '' });
    }
    if (stderr !== '') throw new AcvpnError('ENV_COMMAND_FAILED', `ip failed: ${stderr}`, { stderr: stderr.trim() });
    return { stdout: '' };
  };

  private execute(words: string[]): string | undefined {
    const [object, verb = '', ...rest] = words;
    if (object !== 'route') return `Object "${object}" is unknown`;
    const spec = rest.join(' ');
    const failure = this.failWith?.(verb, spec);
    if (failure !== undefined) return failure;

    const dev = rest[rest.indexOf('dev') + 1] ?? '';
    if (!this.devices.has(dev)) return `Cannot find device "${dev}"`;
    const destination = rest[0] ?? '';
    const sameDestination = [...this.table].filter((route) => route.split(' ')[0] === destination);

    if (verb === 'add') {
      if (sameDestination.length > 0) return 'RTNETLINK answers: File exists';
      this.table.add(spec);
      return undefined;
    }
    if (verb === 'replace') {
      for (const route of sameDestination) this.table.delete(route);
      this.table.add(spec);
      return undefined;
    }
    if (verb === 'del') {
      if (!this.table.delete(spec)) return 'RTNETLINK answers: No such process';
      return undefined;
    }
    return `Command "${verb}" is unknown, try "ip route help".`;
  }

  /** Removes a device and its routes, as the kernel does when a device goes away. */
  removeDevice(name: string): void {
    this.devices.delete(name);
    for (const route of this.table) if (route.endsWith(`dev ${name}`)) this.table.delete(route);
  }
}

function net(text: string): IpNetwork {
  const [address = '', prefix = ''] = text.split('/');
  return { family: address.includes(':') ? 6 : 4, address, prefixLength: Number(prefix) };
}

const tunnel = (network: string): RouteEntry => ({ network: net(network), via: 'tunnel', role: 'include' });
const original = (network: string, role: 'exclude' | 'headend' = 'exclude'): RouteEntry => ({
  network: net(network),
  via: 'original',
  gateway: '192.0.2.1',
  dev: 'eth0',
  role,
});

function plan(...routes: RouteEntry[]): RoutePlan {
  return { tunName: 'tun0', routes, warnings: [] };
}

function collectingLogger(): { log: Logger; messages: () => Array<{ level: number; msg: string; route?: string }> } {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', json: true, write: (line) => lines.push(line) });
  return { log, messages: () => lines.map((line) => JSON.parse(line) as { level: number; msg: string; route?: string }) };
}

const silent = createLogger({ level: 'silent', json: true });

describe('RouteManager.apply', () => {
  it('installs a plan with one batch', async () => {
    const ip = new FakeIp();
    const manager = new RouteManager(ip.run, silent);

    await manager.apply(plan(original('198.51.100.7/32', 'headend'), original('203.0.113.0/24'), tunnel('0.0.0.0/1'), tunnel('2001:db8::/32')));

    expect(ip.calls).toHaveLength(1);
    expect(ip.calls[0]?.args).toEqual(['-force', '-batch', '-']);
    expect(ip.calls[0]?.input).toBe(
      [
        'route replace 198.51.100.7/32 via 192.0.2.1 dev eth0',
        'route add 203.0.113.0/24 via 192.0.2.1 dev eth0',
        'route add 0.0.0.0/1 dev tun0',
        'route add 2001:db8::/32 dev tun0',
        '',
      ].join('\n'),
    );
    expect([...ip.table]).toEqual([
      '198.51.100.7/32 via 192.0.2.1 dev eth0',
      '203.0.113.0/24 via 192.0.2.1 dev eth0',
      '0.0.0.0/1 dev tun0',
      '2001:db8::/32 dev tun0',
    ]);
    expect(manager.routes.map((route) => route.destination)).toEqual(['198.51.100.7/32', '203.0.113.0/24', '0.0.0.0/1', '2001:db8::/32']);
  });

  it('replaces an existing headend route', async () => {
    const ip = new FakeIp();
    ip.table.add('198.51.100.7/32 via 192.0.2.99 dev eth0');
    const manager = new RouteManager(ip.run, silent);

    await manager.apply(plan(original('198.51.100.7/32', 'headend')));

    expect([...ip.table]).toEqual(['198.51.100.7/32 via 192.0.2.1 dev eth0']);
  });

  it('rolls back after a failed route', async () => {
    const ip = new FakeIp();
    ip.table.add('10.2.0.0/16 dev eth0');
    const manager = new RouteManager(ip.run, silent);

    const attempt = manager.apply(plan(original('203.0.113.0/24'), tunnel('10.1.0.0/16'), tunnel('10.2.0.0/16'), tunnel('10.3.0.0/16')));

    await expect(attempt).rejects.toThrow(AcvpnError);
    await expect(attempt).rejects.toMatchObject({ code: 'ENV_COMMAND_FAILED' });
    await expect(attempt).rejects.toThrow('could not install 1 of 4 routes, so none were kept: "route add 10.2.0.0/16 dev tun0": RTNETLINK answers: File exists');
    expect([...ip.table]).toEqual(['10.2.0.0/16 dev eth0']);
    expect(manager.routes).toEqual([]);
    expect(ip.calls[1]?.input).toBe(
      ['route del 10.3.0.0/16 dev tun0', 'route del 10.1.0.0/16 dev tun0', 'route del 203.0.113.0/24 via 192.0.2.1 dev eth0', ''].join('\n'),
    );
  });

  it('rolls back everything after an unreported crash', async () => {
    const ip = new FakeIp();
    ip.crashAfterNextBatch = true;
    const manager = new RouteManager(ip.run, silent);

    const attempt = manager.apply(plan(original('203.0.113.0/24'), tunnel('10.1.0.0/16')));

    await expect(attempt).rejects.toThrow(/installing 2 routes failed, and the routes that did go in were removed again/);
    expect([...ip.table]).toEqual([]);
    expect(manager.routes).toEqual([]);
  });

  it('keeps earlier plans on a failed apply', async () => {
    const ip = new FakeIp();
    const manager = new RouteManager(ip.run, silent);
    await manager.apply(plan(tunnel('10.1.0.0/16')));
    ip.failWith = (verb, spec) => (spec.startsWith('10.9.') ? 'Error: Nexthop has invalid gateway.' : undefined);

    await expect(manager.apply(plan(tunnel('10.8.0.0/16'), tunnel('10.9.0.0/16')))).rejects.toThrow(/Nexthop has invalid gateway/);

    expect([...ip.table]).toEqual(['10.1.0.0/16 dev tun0']);
    expect(manager.routes.map((route) => route.destination)).toEqual(['10.1.0.0/16']);
  });

  it('rejects a device name that would break a batch line', async () => {
    const ip = new FakeIp();
    const manager = new RouteManager(ip.run, silent);

    await expect(manager.apply({ tunName: 'tun0 # x', routes: [tunnel('10.1.0.0/16')], warnings: [] })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
    expect(ip.calls).toEqual([]);
  });
});

describe('RouteManager.restore', () => {
  it('removes routes newest first', async () => {
    const ip = new FakeIp();
    const { log, messages } = collectingLogger();
    const manager = new RouteManager(ip.run, log);
    await manager.apply(plan(original('198.51.100.7/32', 'headend'), tunnel('0.0.0.0/1'), tunnel('128.0.0.0/1')));

    await manager.restore();

    expect(ip.calls[1]?.input).toBe(
      ['route del 128.0.0.0/1 dev tun0', 'route del 0.0.0.0/1 dev tun0', 'route del 198.51.100.7/32 via 192.0.2.1 dev eth0', ''].join('\n'),
    );
    expect([...ip.table]).toEqual([]);
    expect(manager.routes).toEqual([]);
    const debug = messages().filter((message) => message.level === 20);
    expect(debug.map((message) => `${message.msg}: ${message.route}`)).toEqual([
      'route added: 198.51.100.7/32 via 192.0.2.1 dev eth0',
      'route added: 0.0.0.0/1 dev tun0',
      'route added: 128.0.0.0/1 dev tun0',
      'route removed: 128.0.0.0/1 dev tun0',
      'route removed: 0.0.0.0/1 dev tun0',
      'route removed: 198.51.100.7/32 via 192.0.2.1 dev eth0',
    ]);
  });

  it('is idempotent', async () => {
    const ip = new FakeIp();
    const manager = new RouteManager(ip.run, silent);
    await manager.apply(plan(tunnel('10.1.0.0/16')));
    await manager.restore();
    const callsAfterFirst = ip.calls.length;

    await manager.restore();

    expect(ip.calls).toHaveLength(callsAfterFirst);
    expect([...ip.table]).toEqual([]);
  });

  it('tolerates routes that vanished with the TUN device', async () => {
    const ip = new FakeIp();
    const { log, messages } = collectingLogger();
    const manager = new RouteManager(ip.run, log);
    await manager.apply(plan(original('198.51.100.7/32', 'headend'), tunnel('0.0.0.0/1'), tunnel('128.0.0.0/1')));
    ip.removeDevice('tun0');

    await manager.restore();

    expect([...ip.table]).toEqual([]);
    expect(manager.routes).toEqual([]);
    const gone = messages().filter((message) => message.msg === 'route was already gone');
    expect(gone.map((message) => message.route)).toEqual(['128.0.0.0/1 dev tun0', '0.0.0.0/1 dev tun0']);
  });

  it('keeps routes it could not remove', async () => {
    const ip = new FakeIp();
    const manager = new RouteManager(ip.run, silent);
    await manager.apply(plan(tunnel('10.1.0.0/16'), tunnel('10.2.0.0/16')));
    ip.failWith = (verb, spec) => (verb === 'del' && spec.startsWith('10.1.') ? 'RTNETLINK answers: Operation not permitted' : undefined);

    await expect(manager.restore()).rejects.toThrow('could not remove 1 routes (10.1.0.0/16 dev tun0)');
    expect(manager.routes.map((route) => route.destination)).toEqual(['10.1.0.0/16']);
    expect([...ip.table]).toEqual(['10.1.0.0/16 dev tun0']);

    ip.failWith = undefined;
    await manager.restore();
    expect(manager.routes).toEqual([]);
    expect([...ip.table]).toEqual([]);
  });

  it('waits for a running apply', async () => {
    const ip = new FakeIp();
    const manager = new RouteManager(ip.run, silent);

    const applied = manager.apply(plan(tunnel('10.1.0.0/16'), tunnel('10.2.0.0/16')));
    const restored = manager.restore();
    await Promise.all([applied, restored]);

    expect([...ip.table]).toEqual([]);
    expect(manager.routes).toEqual([]);
  });
});

describe('route undo file', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'acvpn-routes-'));
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('lists installed routes with mode 0600', async () => {
    const ip = new FakeIp();
    const path = join(directory, 'run', 'routes.json');
    const manager = new RouteManager(ip.run, silent, { undoFile: path });

    await manager.apply(plan(original('198.51.100.7/32', 'headend'), tunnel('10.1.0.0/16')));

    const content = JSON.parse(await readFile(path, 'utf8')) as unknown;
    expect(content).toEqual({
      version: 1,
      routes: [
        { destination: '198.51.100.7/32', gateway: '192.0.2.1', dev: 'eth0' },
        { destination: '10.1.0.0/16', dev: 'tun0' },
      ],
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(directory, 'run'))).mode & 0o777).toBe(0o700);
  });

  it('is deleted by restore', async () => {
    const ip = new FakeIp();
    const path = join(directory, 'routes.json');
    const manager = new RouteManager(ip.run, silent, { undoFile: path });
    await manager.apply(plan(tunnel('10.1.0.0/16')));

    await manager.restore();

    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('lets a new process remove leftovers', async () => {
    const ip = new FakeIp();
    const path = join(directory, 'routes.json');
    await new RouteManager(ip.run, silent, { undoFile: path }).apply(
      plan(original('198.51.100.7/32', 'headend'), tunnel('0.0.0.0/1'), tunnel('128.0.0.0/1')),
    );
    const callsBefore = ip.calls.length;

    const removed = await RouteManager.undoFromFile(ip.run, path);

    expect(removed).toBe(3);
    expect([...ip.table]).toEqual([]);
    expect(ip.calls[callsBefore]?.input).toBe(
      ['route del 128.0.0.0/1 dev tun0', 'route del 0.0.0.0/1 dev tun0', 'route del 198.51.100.7/32 via 192.0.2.1 dev eth0', ''].join('\n'),
    );
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('counts a missing file as nothing to undo', async () => {
    const ip = new FakeIp();

    expect(await RouteManager.undoFromFile(ip.run, join(directory, 'absent.json'))).toBe(0);
    expect(ip.calls).toEqual([]);
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['unknown version', '{"version":2,"routes":[]}', /unknown version 2/],
    ['bad destination', '{"version":1,"routes":[{"destination":"10.1.2.3/16","dev":"tun0"}]}', /route 1 has no valid destination/],
    ['bad gateway', '{"version":1,"routes":[{"destination":"10.1.0.0/16","gateway":"x","dev":"eth0"}]}', /route 1 has an invalid gateway/],
    ['bad device', '{"version":1,"routes":[{"destination":"10.1.0.0/16","dev":"tun0 # x"}]}', /route 1 has an invalid device name/],
  ])('rejects a file with %s', async (_name, text, pattern) => {
    const ip = new FakeIp();
    const path = join(directory, 'routes.json');
    await writeFile(path, text);

    const attempt = RouteManager.undoFromFile(ip.run, path);

    await expect(attempt).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(attempt).rejects.toThrow(pattern);
    expect(ip.calls).toEqual([]);
  });
});

describe('parseBatchFailures', () => {
  it('reads failed lines from ip output', () => {
    // Captured from `ip -force -batch -` of iproute2 6.1.
    const stderr = 'RTNETLINK answers: No such process\nCommand failed -:101\nCannot find device "nosuch"\nCommand failed -:102\n';

    const failures = parseBatchFailures(stderr);

    expect([...failures]).toEqual([
      [100, 'RTNETLINK answers: No such process'],
      [101, 'Cannot find device "nosuch"'],
    ]);
  });

  it('returns nothing for other output', () => {
    expect(parseBatchFailures('Killed\n').size).toBe(0);
  });
});
