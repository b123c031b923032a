// Split DNS against a real ocserv 1.1 in network namespaces, through the real tunnel. The headend
// runs two logging DNS servers. The tunnel DNS server sits in the lan namespace, is reachable only
// through the tunnel and has records under corp.example and lab.example. The local one sits on the
// hub's client-side address, which is the client namespace's own resolv.conf nameserver, is
// reached without the tunnel and answers every name. Lookups run inside the client namespace
// through glibc (`getent hosts`) and through Node's c-ares (`dns.promises.resolve4`) while acvpn
// is connected. Afterwards the two query logs show which names reached which server.
//
// glibc also asks AAAA and, after the empty answers, tries the names with the search domains
// appended (www.public.test.corp.example). The log checks therefore classify every name a server
// saw by domain, instead of expecting an exact list.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAcvpn, type AcvpnRun } from './helpers/acvpn.js';
import { describeResult, nsExec, startHeadend, type Headend, type HeadendDnsServers, type HeadendOptions } from './helpers/headend.js';

const tunName = 'acvpn-sd0';
/** The domains the tunnel DNS server has records under (headend.sh SPLIT_DNS_DOMAINS). */
const tunnelServerDomains = ['corp.example', 'lab.example'];

// A name under each split domain (one in mixed case), the split domain itself, a name that only
// ends in the same letters as a split domain, and an unrelated name.
const lookupNames = ['intranet.corp.example', 'Mail.CORP.Example', 'build.lab.example', 'corp.example', 'notcorp.example', 'www.public.test'];

interface DnsCase {
  name: string;
  prefix: string;
  options: Omit<HeadendOptions, 'prefix' | 'dnsServers'>;
  extraArgs: string[];
  /** Domains whose names must reach only the tunnel server; 'all' sends every name there. */
  tunnelDomains: string[] | 'all';
  /** The search line acvpn writes, or undefined when resolv.conf must stay untouched. */
  searchLine: string | undefined;
}

const cases: DnsCase[] = [
  {
    name: 'split-dns list',
    prefix: 'acvpn-sd1',
    options: { splitDns: 'list' },
    extraArgs: [],
    tunnelDomains: ['corp.example', 'lab.example'],
    searchLine: 'search corp.example',
  },
  {
    name: 'default domain without split-dns',
    prefix: 'acvpn-sd2',
    options: { splitDns: 'none-default-domain' },
    extraArgs: [],
    tunnelDomains: ['corp.example'],
    searchLine: 'search corp.example',
  },
  {
    name: 'neither split-dns nor default domain',
    prefix: 'acvpn-sd3',
    options: { splitDns: 'none' },
    extraArgs: [],
    tunnelDomains: [],
    searchLine: '',
  },
  {
    name: 'full tunnel',
    prefix: 'acvpn-sd4',
    options: { splitDns: 'list', fullTunnel: true },
    extraArgs: [],
    tunnelDomains: 'all',
    searchLine: 'search corp.example',
  },
  {
    name: '--no-dns',
    prefix: 'acvpn-sd5',
    options: { splitDns: 'list' },
    extraArgs: ['--no-dns'],
    tunnelDomains: [],
    searchLine: undefined,
  },
];

// ---------------------------------------------------------------------------------------------
// Helpers

interface QueryRecord {
  name: string;
  type: string;
  transport: string;
}

async function readQueries(path: string): Promise<QueryRecord[]> {
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as QueryRecord);
}

function isUnder(name: string, domains: string[]): boolean {
  const normalized = name.toLowerCase();
  return domains.some((domain) => normalized === domain || normalized.endsWith(`.${domain}`));
}

function goesToTunnel(name: string, tunnelDomains: string[] | 'all'): boolean {
  return tunnelDomains === 'all' || isUnder(name, tunnelDomains);
}

/** The addresses a lookup of NAME must return: from the server it goes to, if that server has a record. */
function expectedAddresses(name: string, dnsCase: DnsCase, dns: HeadendDnsServers): string[] {
  if (!goesToTunnel(name, dnsCase.tunnelDomains)) return [dns.localAnswer];
  return isUnder(name, tunnelServerDomains) ? [dns.tunnelAnswer] : [];
}

/**
 * The addresses glibc must return: like expectedAddresses, but a name that gets no address is
 * tried again with each search domain appended, as glibc does for a name with a dot in it.
 */
function expectedGlibcAddresses(name: string, dnsCase: DnsCase, dns: HeadendDnsServers): string[] {
  const searchDomains = dnsCase.searchLine?.split(' ').slice(1) ?? [];
  for (const candidate of [name, ...searchDomains.map((domain) => `${name}.${domain}`)]) {
    const addresses = expectedAddresses(candidate, dnsCase, dns);
    if (addresses.length > 0) return addresses;
  }
  return [];
}

/** Addresses `getent hosts` prints for NAME, or [] when the lookup fails. */
async function getentHosts(headend: Headend, name: string): Promise<string[]> {
  const result = await nsExec(headend.clientNs, ['getent', 'hosts', name], { timeoutMs: 15_000 });
  if (result.timedOut) throw new Error(`getent hosts ${name} timed out: ${describeResult(result)}`);
  if (result.exitCode !== 0) return [];
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => line.split(/\s+/)[0] ?? '');
}

/** Addresses Node's dns.promises.resolve4 returns for each name ([] for a failed lookup). */
async function nodeResolve4(headend: Headend, names: string[]): Promise<Record<string, string[]>> {
  const script = `
    const { promises: dns } = require('node:dns');
    const names = ${JSON.stringify(names)};
    Promise.all(names.map((name) => dns.resolve4(name).catch(() => [])))
      .then((answers) => console.log(JSON.stringify(Object.fromEntries(names.map((name, i) => [name, answers[i]])))));`;
  const result = await nsExec(headend.clientNs, [process.execPath, '-e', script], { timeoutMs: 20_000 });
  if (result.exitCode !== 0) throw new Error(`resolve4 script failed: ${describeResult(result)}`);
  return JSON.parse(result.stdout) as Record<string, string[]>;
}

async function connect(headend: Headend, runDir: string, extraArgs: string[]): Promise<AcvpnRun> {
  const args = [
    'connect',
    '--user',
    headend.user,
    '--passwd-on-stdin',
    '--non-interactive',
    '--authgroup',
    'staff',
    '--cafile',
    headend.caFile,
    '--interface',
    tunName,
    '--run-dir',
    runDir,
    ...extraArgs,
    headend.url,
  ];
  const run = startAcvpn(headend.clientNs, args, `${headend.password}\n`);
  try {
    await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
  } catch (error) {
    await run.stop();
    throw error;
  }
  return run;
}

// ---------------------------------------------------------------------------------------------
// Tests

describe.each(cases)('split DNS: $name', (dnsCase) => {
  let headend: Headend;
  let dns: HeadendDnsServers;
  let runDir: string;
  let resolvConfPath: string;

  beforeAll(async () => {
    headend = await startHeadend({ prefix: dnsCase.prefix, dnsServers: true, ...dnsCase.options });
    if (headend.dns === undefined) throw new Error('the headend started without its DNS servers');
    dns = headend.dns;
    runDir = await mkdtemp(join(tmpdir(), `${dnsCase.prefix}-run-`));
    resolvConfPath = `/etc/netns/${headend.clientNs}/resolv.conf`;
  });

  afterAll(async () => {
    await headend?.stop();
    if (runDir !== undefined) await rm(runDir, { recursive: true, force: true });
  });

  it('each name reaches only its server', async () => {
    const resolvConfBefore = await readFile(resolvConfPath);
    // The local server is the namespace's resolver before acvpn starts.
    expect(resolvConfBefore.toString('utf8')).toBe(`nameserver ${dns.localServer}\n`);
    const tunnelStart = (await readQueries(dns.tunnelLog)).length;
    const localStart = (await readQueries(dns.localLog)).length;

    const run = await connect(headend, runDir, dnsCase.extraArgs);
    const viaGlibc = new Map<string, string[]>();
    let viaNode: Record<string, string[]>;
    let resolvConfConnected: Buffer;
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      resolvConfConnected = await readFile(resolvConfPath);
      for (const name of lookupNames) viaGlibc.set(name, await getentHosts(headend, name));
      viaNode = await nodeResolve4(headend, lookupNames);
    } finally {
      exit = await run.stop();
    }
    expect(exit.code, run.output()).toBe(0);

    // resolv.conf while connected, and its exact bytes afterwards
    const connectedText = resolvConfConnected.toString('utf8');
    if (dnsCase.searchLine === undefined) {
      expect(resolvConfConnected.equals(resolvConfBefore), connectedText).toBe(true);
    } else {
      expect(connectedText).toMatch(/^# Managed by acvpn/);
      expect(connectedText.split('\n')).toContain('nameserver 127.0.0.1');
      const searchLines = connectedText.split('\n').filter((line) => line.startsWith('search'));
      expect(searchLines).toEqual(dnsCase.searchLine === '' ? [] : [dnsCase.searchLine]);
    }
    expect((await readFile(resolvConfPath)).equals(resolvConfBefore)).toBe(true);

    // each address came from the server the name belongs to
    for (const name of lookupNames) {
      expect(viaGlibc.get(name), `getent hosts ${name}`).toEqual(expectedGlibcAddresses(name, dnsCase, dns));
      expect(viaNode[name], `resolve4 ${name}`).toEqual(expectedAddresses(name, dnsCase, dns));
    }

    // query logs: no name reached the wrong server
    const tunnelNames = (await readQueries(dns.tunnelLog)).slice(tunnelStart).map((query) => query.name);
    const localNames = (await readQueries(dns.localLog)).slice(localStart).map((query) => query.name);
    for (const name of tunnelNames) {
      expect(goesToTunnel(name, dnsCase.tunnelDomains), `${name} reached the tunnel DNS server`).toBe(true);
    }
    for (const name of localNames) {
      expect(goesToTunnel(name, dnsCase.tunnelDomains), `${name} reached the local DNS server`).toBe(false);
    }
    // and every looked-up name reached the server it belongs to
    for (const name of lookupNames) {
      const normalized = name.toLowerCase();
      const reached = goesToTunnel(name, dnsCase.tunnelDomains) ? tunnelNames : localNames;
      expect(reached, `${normalized} was asked`).toContain(normalized);
    }
  });
});
