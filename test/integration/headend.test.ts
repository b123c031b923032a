// Proves the test headend with the reference client: OpenConnect 9 connects from the client
// namespace, reaches the lan only through the tunnel, and ocserv records the session's start and
// end. While this file fails, a failing acvpn integration test may point at the rig, not at acvpn.

import { type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeResult,
  nsExec,
  nsSpawn,
  sleep,
  startHeadend,
  waitForLine,
  type Headend,
} from './helpers/headend.js';

const PREFIX = 'acvpn-hetest';
const TUN_NAME = 'ocvpn0';
const VPN_POOL_PREFIX = '198.19.0.';
const CLIENT_IP = '198.18.0.2';
const VPNC_SCRIPT = '/usr/share/vpnc-scripts/vpnc-script';
// vpnc-script keeps its backup of resolv.conf and the default route here, on the host's /run.
const VPNC_RUN_DIR = '/run/vpnc';

// vpnc-script (vpnc-scripts 0.1~git20220510) hands DNS to the first resolver manager it finds
// (resolvconf, systemd-resolved, netconfig, unbound, resolvd), and each of those changes the
// host's resolver, not the namespace's. With any of them present the wrapper drops the DNS
// variables, so the script only sets addresses and routes. Without them it writes the
// namespace's resolv.conf in place, which is a bind mount of /etc/netns/NS/resolv.conf.
const RESOLVER_MANAGERS = [
  '/sbin/resolvconf',
  '/sbin/netconfig',
  '/sbin/modify_resolvconf',
  '/usr/sbin/unbound-control',
  '/usr/sbin/rcctl',
];

function hostResolverManaged(): boolean {
  if (RESOLVER_MANAGERS.some((tool) => existsSync(tool))) return true;
  // vpnc-script uses systemd-resolved only when nsswitch.conf sends host lookups to it.
  const nsswitch = existsSync('/etc/nsswitch.conf') ? readFileSync('/etc/nsswitch.conf', 'utf8') : '';
  return /^hosts:.*\bresolve\b/m.test(nsswitch);
}

const dnsHandledInNamespace = !hostResolverManaged();

/**
 * Builds the --script wrapper. It runs vpnc-script to the end and then appends "REASON STATUS"
 * to EVENTS_FILE, because the tunnel address appears before vpnc-script has added the routes
 * and written resolv.conf, so the address alone is no sign that the client is ready.
 */
function vpncWrapper(eventsFile: string): string {
  const dropDns = dnsHandledInNamespace
    ? ''
    : 'unset INTERNAL_IP4_DNS INTERNAL_IP6_DNS CISCO_DEF_DOMAIN CISCO_SPLIT_DNS\n';
  return (
    '#!/bin/sh\n' +
    dropDns +
    `${VPNC_SCRIPT} "$@"\n` +
    'status=$?\n' +
    `echo "$reason $status" >>'${eventsFile}'\n` +
    'exit $status\n'
  );
}

// Connects to HOST:PORT, sends TOKEN and exits 0 when the same bytes come back, or non-zero
// after TIMEOUT_MS without traffic.
const ECHO_CLIENT = `
const net = require('node:net');
const [host, port, token, timeoutMs] = process.argv.slice(1);
const socket = net.connect({ host, port: Number(port) });
let received = '';
socket.setTimeout(Number(timeoutMs), () => { console.error('echo timed out, received: ' + received); process.exit(3); });
socket.on('connect', () => socket.write(token));
socket.on('data', (data) => {
  received += data.toString('utf8');
  if (received.length >= token.length) { socket.end(); process.exit(received === token ? 0 : 4); }
});
socket.on('error', (err) => { console.error(err.message); process.exit(5); });
`;

let headend: Headend | undefined;
let openconnect: ChildProcess | undefined;
let openconnectOutput = '';
let openconnectExit: Promise<number | null> | undefined;
let vpncEventsLog = '';
const vpncRunDirExisted = existsSync(VPNC_RUN_DIR);

function requireHeadend(): Headend {
  if (headend === undefined) throw new Error('headend did not start; see the beforeAll error');
  return headend;
}

async function pingFromClient(host: string, count: number): Promise<boolean> {
  const { clientNs } = requireHeadend();
  const result = await nsExec(clientNs, ['ping', '-n', '-c', String(count), '-W', '2', host], {
    timeoutMs: (count + 3) * 1000,
  });
  return result.exitCode === 0;
}

/** Runs the echo client in the client namespace; a dropped SYN fails after TIMEOUT_MS. */
async function echoFromClient(timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  const { clientNs, targetHost, targetTcpPort } = requireHeadend();
  const token = randomBytes(12).toString('hex');
  const argv = [process.execPath, '-e', ECHO_CLIENT, targetHost, String(targetTcpPort), token, String(timeoutMs)];
  const result = await nsExec(clientNs, argv, { timeoutMs: timeoutMs + 3000 });
  return { ok: result.exitCode === 0, detail: describeResult(result) };
}

async function clientTunnelAddress(): Promise<string | undefined> {
  const { clientNs } = requireHeadend();
  const result = await nsExec(clientNs, ['ip', '-json', '-4', 'addr', 'show', 'dev', TUN_NAME]);
  if (result.exitCode !== 0) return undefined;
  const links = JSON.parse(result.stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
  return links[0]?.addr_info?.[0]?.local;
}

async function routeDevice(destination: string): Promise<string | undefined> {
  const { clientNs } = requireHeadend();
  const result = await nsExec(clientNs, ['ip', '-json', 'route', 'get', destination]);
  if (result.exitCode !== 0) return undefined;
  const routes = JSON.parse(result.stdout) as Array<{ dev?: string }>;
  return routes[0]?.dev;
}

function openconnectRunning(): boolean {
  return openconnect !== undefined && openconnect.exitCode === null && openconnect.signalCode === null;
}

/** Waits until the tunnel interface has an address, or fails early when openconnect exits. */
async function waitForTunnel(timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!openconnectRunning()) {
      throw new Error(`openconnect exited before the tunnel came up; output:\n${openconnectOutput}`);
    }
    const address = await clientTunnelAddress();
    if (address !== undefined) return address;
    await sleep(200);
  }
  throw new Error(`${TUN_NAME} got no address within ${timeoutMs} ms; openconnect output:\n${openconnectOutput}`);
}

async function stopOpenconnect(signal: NodeJS.Signals): Promise<number | null> {
  if (openconnect === undefined || openconnectExit === undefined) return null;
  if (openconnectRunning()) openconnect.kill(signal);
  const timeout = sleep(10_000).then(() => 'timeout' as const);
  const outcome = await Promise.race([openconnectExit, timeout]);
  if (outcome === 'timeout') {
    openconnect.kill('SIGKILL');
    throw new Error(`openconnect ignored ${signal} for 10 s; output:\n${openconnectOutput}`);
  }
  return outcome;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error('headend integration tests need root (network namespaces, ocserv, TUN)');
  }
  headend = await startHeadend({ prefix: PREFIX });
});

afterAll(async () => {
  try {
    await stopOpenconnect('SIGTERM').catch(() => {});
  } finally {
    await headend?.stop();
    if (!vpncRunDirExisted) {
      // Only removes the directory when vpnc-script left it empty.
      await rmdir(VPNC_RUN_DIR).catch(() => {});
    }
  }
});

describe('test headend with openconnect', () => {
  it('env file pin matches the server certificate', async () => {
    const { serverPin, stateDir, caFile } = requireHeadend();
    const certificate = new X509Certificate(await readFile(join(stateDir, 'server-cert.pem')));
    const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
    const expected = `pin-sha256:${createHash('sha256').update(spki).digest('base64')}`;

    expect(serverPin).toBe(expected);
    expect(certificate.checkHost('vpn.rig.test')).toBe('vpn.rig.test');
    expect(certificate.checkIP(requireHeadend().headendIp)).toBe(requireHeadend().headendIp);
    expect(certificate.verify(new X509Certificate(await readFile(caFile)).publicKey)).toBe(true);
  });

  it('lan is unreachable before the tunnel', async () => {
    const { targetHost } = requireHeadend();

    expect(await pingFromClient(targetHost, 1)).toBe(false);
    expect((await echoFromClient(2000)).ok).toBe(false);
  });

  it('openconnect connects as alice in staff', async () => {
    const { clientNs, stateDir, user, password, caFile, url, connectEventsLog, ocservLog } =
      requireHeadend();
    const wrapper = join(stateDir, 'vpnc-wrapper.sh');
    vpncEventsLog = join(stateDir, 'vpnc-events.log');
    await writeFile(wrapper, vpncWrapper(vpncEventsLog), { mode: 0o755 });

    const child = nsSpawn(clientNs, [
      'openconnect',
      '--protocol=anyconnect',
      '--user',
      user,
      '--passwd-on-stdin',
      '--authgroup',
      'staff',
      '--cafile',
      caFile,
      '--non-inter',
      '--interface',
      TUN_NAME,
      '--script',
      wrapper,
      url,
    ]);
    openconnect = child;
    openconnectExit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    child.stdout?.on('data', (data: Buffer) => (openconnectOutput += data.toString('utf8')));
    child.stderr?.on('data', (data: Buffer) => (openconnectOutput += data.toString('utf8')));
    child.stdin?.end(`${password}\n`);

    const address = await waitForTunnel(20_000);
    await waitForLine(vpncEventsLog, /^connect 0$/);
    expect(address.startsWith(VPN_POOL_PREFIX)).toBe(true);
    // `ip netns exec` execs the command, so the child's PID is openconnect's own.
    expect((await readFile(`/proc/${child.pid}/comm`, 'utf8')).trim()).toBe('openconnect');

    const event = await waitForLine(connectEventsLog, /\tREASON=connect\t/);
    expect(event).toContain('\tUSERNAME=alice\t');
    expect(event).toContain('\tGROUPNAME=staff\t');
    expect(event).toContain(`\tIP_REAL=${CLIENT_IP}\t`);
    expect(event).toContain(`\tIP_REMOTE=${address}\t`);
    await waitForLine(ocservLog, /main\[alice\]:198\.18\.0\.2:\d+ user logged in/);
  });

  it('tunnel routes split-include networks only', async () => {
    const { targetHost, excludedHost, headendIp } = requireHeadend();

    expect(await routeDevice(targetHost)).toBe(TUN_NAME);
    expect(await routeDevice('198.18.20.20')).toBe(TUN_NAME);
    expect(await routeDevice(excludedHost)).toBe('to-hub');
    expect(await routeDevice(headendIp)).toBe('to-hub');
  });

  it('ping reaches the target through the tunnel', async () => {
    expect(await pingFromClient(requireHeadend().targetHost, 3)).toBe(true);
  });

  it('tcp echo works through the tunnel', async () => {
    const echo = await echoFromClient(5000);
    expect(echo.ok, echo.detail).toBe(true);
  });

  it('excluded host stays unreachable', async () => {
    expect(await pingFromClient(requireHeadend().excludedHost, 1)).toBe(false);
  });

  it.runIf(dnsHandledInNamespace)('vpnc-script writes the namespace resolv.conf', async () => {
    const { clientNs, dnsServer } = requireHeadend();
    const result = await nsExec(clientNs, ['cat', '/etc/resolv.conf']);

    expect(result.stdout).toContain(`nameserver ${dnsServer}`);
    expect(result.stdout).toContain('search corp.example');
  });

  it('SIGINT ends the session on both sides', async () => {
    const { targetHost, ocservLog, connectEventsLog } = requireHeadend();

    const exitCode = await stopOpenconnect('SIGINT');
    expect(exitCode, openconnectOutput).toBe(0);
    expect(openconnectOutput).toContain('Send BYE packet');
    await waitForLine(vpncEventsLog, /^disconnect 0$/);

    await waitForLine(ocservLog, /received BYE packet; exiting/);
    await waitForLine(ocservLog, /user disconnected \(reason: user disconnected, rx: \d+, tx: \d+\)/);
    const event = await waitForLine(connectEventsLog, /\tREASON=disconnect\t/);
    expect(event).toContain('\tUSERNAME=alice\t');
    expect(await clientTunnelAddress()).toBeUndefined();
    expect(await pingFromClient(targetHost, 1)).toBe(false);
    expect((await echoFromClient(2000)).ok).toBe(false);
  });

  it.runIf(dnsHandledInNamespace)('vpnc-script restores the namespace resolv.conf', async () => {
    const { clientNs, headendIp } = requireHeadend();
    const result = await nsExec(clientNs, ['cat', '/etc/resolv.conf']);

    expect(result.stdout.trim()).toBe(`nameserver ${headendIp}`);
  });
});
