// Split DNS end to end in network namespaces this file creates.
//
// Layout:
//   client (198.18.90.2, 198.18.91.2)  runs the forwarder on 127.0.0.1:53 under `ip netns exec`,
//                                      so its /etc/resolv.conf is a bind mount of
//                                      /etc/netns/<client>/resolv.conf
//   tunnel (198.18.90.1)               the "tunnel side" DNS server; answers every name with 10.99.0.1
//   local  (198.18.91.1)               the host's original resolver; answers every name with 192.0.2.1
// The tunnel server plays the headend's DNS server (in real use it sits behind the TUN
// device; here a veth link is enough, because routing packets is not under test).
//
// Lookups run through glibc (`getent hosts`) and through Node's c-ares (`dns.resolve4`), both
// inside the client namespace. Each server's query log shows which names reached it.

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TunnelConfig } from '../../src/cstp/tunnel-config.js';
import { startDnsServerInNamespace, type NamespacedDnsServer } from './helpers/dns-server.js';

const execFileAsync = promisify(execFile);

const prefix = 'acvpn-dns-';
const clientNs = `${prefix}${process.pid}-c`;
const tunnelNs = `${prefix}${process.pid}-t`;
const localNs = `${prefix}${process.pid}-l`;
const netnsDirectory = `/etc/netns/${clientNs}`;
const netnsResolvConf = `${netnsDirectory}/resolv.conf`;
const tunnelDnsAddress = '198.18.90.1';
const localDnsAddress = '198.18.91.1';
const tunnelMarker = '10.99.0.1';
const localMarker = '192.0.2.1';
const distRoot = new URL('../../dist/', import.meta.url).pathname;

// A comment, a CRLF line, an options line and no final newline: a restore that re-serializes
// instead of copying bytes would change it.
const originalResolvConf = Buffer.from(
  `# resolv.conf of the test namespace\nnameserver ${localDnsAddress}\r\nsearch home.test\noptions edns0\n; end`,
);

const allNames = ['a.corp.example', 'x.lab.internal', 'notcorp.example', 'www.public.test'];

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sweepNamespaces(): void {
  const names = ip('netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
  for (const name of names) {
    ip('netns', 'del', name);
    execFileSync('rm', ['-rf', `/etc/netns/${name}`]);
  }
}

function tunnelConfig(overrides: Partial<TunnelConfig>): TunnelConfig {
  return {
    ipv4: { address: '10.8.2.27', prefixLength: 24, netmask: '255.255.255.0' },
    dnsServers: [tunnelDnsAddress],
    nbnsServers: [],
    defaultDomains: [],
    splitDnsDomains: [],
    tunnelAllDns: false,
    splitInclude: [{ family: 4, address: '10.99.0.0', prefixLength: 16 }],
    splitExclude: [],
    localLanAllowed: false,
    clientBypassProtocol: false,
    mtu: 1400,
    rekeyMethod: 'ssl',
    rawHeaders: [],
    warnings: [],
    ...overrides,
  };
}

// The client side of the test: startForwardedDns from the built code, run inside the client
// namespace. It prints "ready" once resolv.conf points at the forwarder, and on SIGTERM one JSON
// line with the restore result and the forwarder's counters.
const forwarderScript = `
import { createLogger } from '${distRoot}core/log.js';
import { startForwardedDns } from '${distRoot}net/dns/host-dns.js';
const { config, backupPath } = JSON.parse(process.argv[1]);
const log = createLogger({ level: 'warn', json: true });
const dns = await startForwardedDns({ config, fullTunnel: false, resolvConfPath: '/etc/resolv.conf', backupPath, log });
process.stdout.write('ready\\n');
process.once('SIGTERM', async () => {
  const result = await dns.stop();
  process.stdout.write(JSON.stringify(result) + '\\n');
  process.exit(0);
});
`;

interface ForwarderRun {
  child: ChildProcess;
  output(): string;
  stop(): Promise<{ restore: string; stats: Record<string, number> }>;
}

async function startForwarder(config: TunnelConfig, backupPath: string): Promise<ForwarderRun> {
  const child = spawn('ip', ['netns', 'exec', clientNs, process.execPath, '--input-type=module', '-e', forwarderScript, JSON.stringify({ config, backupPath })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  exited.then(() => running.delete(child), () => undefined);

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`forwarder did not start within 10 s; output:\n${text}`)), 10_000);
    const check = (): void => {
      if (text.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`forwarder exited before it was ready; output:\n${text}`));
    });
  });

  return {
    child,
    output: () => text,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      const line = text.split('\n').find((entry) => entry.startsWith('{"restore"'));
      if (line === undefined) throw new Error(`forwarder printed no result; output:\n${text}`);
      return JSON.parse(line) as { restore: string; stats: Record<string, number> };
    },
  };
}

const running = new Set<ChildProcess>();

// Returns the addresses getent printed, or [] when the lookup failed.
async function getentHosts(name: string): Promise<string[]> {
  try {
    const { stdout } = await execFileAsync('ip', ['netns', 'exec', clientNs, 'getent', 'hosts', name], { timeout: 15_000 });
    return stdout
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/)[0] ?? '');
  } catch {
    return [];
  }
}

async function nodeResolve4(name: string): Promise<string[]> {
  const script = `require('node:dns').promises.resolve4(${JSON.stringify(name)}).then((a) => console.log(JSON.stringify(a)), (e) => { console.log('[]'); console.error(e.code); })`;
  const { stdout } = await execFileAsync('ip', ['netns', 'exec', clientNs, process.execPath, '-e', script], { timeout: 15_000 });
  return JSON.parse(stdout) as string[];
}

// Names of the A queries a server received since query number `start`. glibc also sends AAAA
// queries, and after their empty (NODATA) answers it tries the search list too, so the AAAA
// names include search-suffixed forms; those are checked by underDomains instead.
function aNamesSince(server: NamespacedDnsServer, start: number): string[] {
  const queries = server.queries().slice(start).filter((query) => query.type === 'A');
  return [...new Set(queries.map((query) => query.name))].sort();
}

function allNamesSince(server: NamespacedDnsServer, start: number): string[] {
  return [...new Set(server.queries().slice(start).map((query) => query.name))];
}

function underDomains(name: string, domains: string[]): boolean {
  return domains.some((domain) => name === domain || name.endsWith(`.${domain}`));
}

describe('split DNS in network namespaces', () => {
  let directory: string;
  let createdNetnsRoot = false;
  let tunnelServer: NamespacedDnsServer | undefined;
  let localServer: NamespacedDnsServer | undefined;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test creates network namespaces and needs root');
    sweepNamespaces();
    directory = await mkdtemp(join(tmpdir(), 'acvpn-dns-'));

    ip('netns', 'add', clientNs);
    ip('netns', 'add', tunnelNs);
    ip('netns', 'add', localNs);
    for (const ns of [clientNs, tunnelNs, localNs]) ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', clientNs, 'link', 'add', 'vt0', 'type', 'veth', 'peer', 'name', 'vt1', 'netns', tunnelNs);
    ip('-n', clientNs, 'link', 'add', 'vl0', 'type', 'veth', 'peer', 'name', 'vl1', 'netns', localNs);
    ip('-n', clientNs, 'addr', 'add', '198.18.90.2/24', 'dev', 'vt0');
    ip('-n', clientNs, 'addr', 'add', '198.18.91.2/24', 'dev', 'vl0');
    ip('-n', clientNs, 'link', 'set', 'vt0', 'up');
    ip('-n', clientNs, 'link', 'set', 'vl0', 'up');
    ip('-n', tunnelNs, 'addr', 'add', `${tunnelDnsAddress}/24`, 'dev', 'vt1');
    ip('-n', tunnelNs, 'link', 'set', 'vt1', 'up');
    ip('-n', localNs, 'addr', 'add', `${localDnsAddress}/24`, 'dev', 'vl1');
    ip('-n', localNs, 'link', 'set', 'vl1', 'up');

    try {
      await mkdir('/etc/netns');
      createdNetnsRoot = true;
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
    }
    await mkdir(netnsDirectory, { recursive: true });
    await writeFile(netnsResolvConf, originalResolvConf);

    tunnelServer = await startDnsServerInNamespace(tunnelNs, {
      address: tunnelDnsAddress,
      port: 53,
      records: Object.fromEntries(allNames.map((name) => [name, tunnelMarker])),
    });
    localServer = await startDnsServerInNamespace(localNs, {
      address: localDnsAddress,
      port: 53,
      records: Object.fromEntries(allNames.map((name) => [name, localMarker])),
    });
  });

  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    await tunnelServer?.stop();
    await localServer?.stop();
    for (const ns of [clientNs, tunnelNs, localNs]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // Not created because beforeAll failed early.
      }
    }
    await rm(netnsDirectory, { recursive: true, force: true });
    if (createdNetnsRoot) await rmdir('/etc/netns').catch(() => undefined);
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  it.each([
    {
      case: 'split-DNS list',
      config: { splitDnsDomains: ['corp.example', 'lab.internal'], defaultDomains: ['corp.example'] },
      tunnelDomains: ['corp.example', 'lab.internal'],
      tunnelNames: ['a.corp.example', 'x.lab.internal'],
      localNames: ['notcorp.example', 'www.public.test'],
      search: 'search corp.example home.test',
    },
    {
      case: 'default domain without split-DNS list',
      config: { defaultDomains: ['corp.example'] },
      tunnelDomains: ['corp.example'],
      tunnelNames: ['a.corp.example'],
      localNames: ['notcorp.example', 'www.public.test', 'x.lab.internal'],
      search: 'search corp.example home.test',
    },
    {
      case: 'neither split-DNS list nor default domain',
      config: {},
      tunnelDomains: [],
      tunnelNames: [],
      localNames: ['a.corp.example', 'notcorp.example', 'www.public.test', 'x.lab.internal'],
      search: 'search home.test',
    },
  ])('$case', async ({ config, tunnelDomains, tunnelNames, localNames, search }) => {
    const tunnel = tunnelServer!;
    const local = localServer!;
    const tunnelStart = tunnel.queries().length;
    const localStart = local.queries().length;
    const backupPath = join(directory, 'resolv.conf.backup');

    const forwarder = await startForwarder(tunnelConfig(config), backupPath);
    const managed = await readFile(netnsResolvConf, 'utf8');
    const viaGlibc = new Map<string, string[]>();
    for (const name of allNames) viaGlibc.set(name, await getentHosts(name));
    const viaNode = await nodeResolve4('a.corp.example');
    const result = await forwarder.stop();

    // The forwarder process rewrote /etc/resolv.conf inside the namespace, which is this file.
    expect(managed).toMatch(/^# Managed by acvpn/);
    expect(managed).toContain('\nnameserver 127.0.0.1\n');
    expect(managed).toContain(`\n${search}\n`);
    for (const name of tunnelNames) expect(viaGlibc.get(name), name).toEqual([tunnelMarker]);
    for (const name of localNames) expect(viaGlibc.get(name), name).toEqual([localMarker]);
    expect(viaNode).toEqual([tunnelNames.includes('a.corp.example') ? tunnelMarker : localMarker]);
    expect(aNamesSince(tunnel, tunnelStart)).toEqual(tunnelNames);
    expect(aNamesSince(local, localStart)).toEqual(localNames);
    for (const name of allNamesSince(tunnel, tunnelStart)) expect(underDomains(name, tunnelDomains), `${name} at the tunnel server`).toBe(true);
    for (const name of allNamesSince(local, localStart)) expect(underDomains(name, tunnelDomains), `${name} at the local server`).toBe(false);
    expect(result.restore).toBe('restored');
    expect(result.stats.malformed).toBe(0);
    expect(result.stats.failed).toBe(0);
    expect(await readFile(netnsResolvConf)).toEqual(originalResolvConf);
    await expect(readFile(backupPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('restores a backup left by a killed forwarder', async () => {
    const backupPath = join(directory, 'resolv.conf.backup');
    const first = await startForwarder(tunnelConfig({ defaultDomains: ['corp.example'] }), backupPath);
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));
    expect(await readFile(netnsResolvConf, 'utf8')).toMatch(/^# Managed by acvpn/);

    const local = localServer!;
    const localStart = local.queries().length;
    const second = await startForwarder(tunnelConfig({ defaultDomains: ['corp.example'] }), backupPath);
    const answer = await getentHosts('www.public.test');
    const result = await second.stop();

    // The second run found the original resolver, not the dead forwarder's 127.0.0.1.
    expect(answer).toEqual([localMarker]);
    expect(aNamesSince(local, localStart)).toEqual(['www.public.test']);
    expect(result.restore).toBe('restored');
    expect(await readFile(netnsResolvConf)).toEqual(originalResolvConf);
  });
});
