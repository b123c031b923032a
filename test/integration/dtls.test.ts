// The DTLS data channel against a real ocserv: data moves over UDP once DTLS is up (checked with
// nftables byte counters, not logs), the session comes up on CSTP when UDP is blocked, and when UDP
// is cut after DTLS is up, traffic moves to CSTP within two DTLS DPD intervals while a TCP stream
// in flight survives. UDP is cut two ways: a silent drop on the headend's side (only DPD can notice)
// and a drop in the client's own output chain, which fails each send at once with EPERM.

import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nsExec, nsExecOk, sleep, startHeadend, type Headend } from './helpers/headend.js';
import { startAcvpn, type AcvpnRun, type LogRecord } from './helpers/acvpn.js';

const dpdSeconds = 4;
const tunName = 'acvpn-dt0';
let headend: Headend;
let run: AcvpnRun | undefined;

beforeAll(async () => {
  headend = await startHeadend({ prefix: 'acvpn-dt', dpdSeconds });
  // Byte counters for the two channels, in the client namespace.
  await nft(['add', 'table', 'inet', 'acvpnt']);
  await nft(['add', 'counter', 'inet', 'acvpnt', 'udp_out']);
  await nft(['add', 'counter', 'inet', 'acvpnt', 'tcp_out']);
  await nft(['add', 'chain', 'inet', 'acvpnt', 'out', '{ type filter hook output priority 0; }']);
  await nft(['add', 'chain', 'inet', 'acvpnt', 'in', '{ type filter hook input priority 0; }']);
  await nft(['add', 'rule', 'inet', 'acvpnt', 'out', 'ip', 'daddr', headend.headendIp, 'udp', 'dport', '443', 'counter', 'name', 'udp_out']);
  await nft(['add', 'rule', 'inet', 'acvpnt', 'out', 'ip', 'daddr', headend.headendIp, 'tcp', 'dport', '443', 'counter', 'name', 'tcp_out']);
  // On the headend's side, a chain for silent drops of the client's UDP.
  await nsExecOk(headend.hubNs, ['nft', 'add', 'table', 'inet', 'acvpnt']);
  await nsExecOk(headend.hubNs, ['nft', 'add', 'chain', 'inet', 'acvpnt', 'in', '{ type filter hook input priority 0; }']);
});

afterEach(async () => {
  await run?.stop();
  run = undefined;
  await unblockUdp();
});

afterAll(async () => {
  await headend?.stop();
});

async function nft(args: string[]): Promise<void> {
  await nsExecOk(headend.clientNs, ['nft', ...args]);
}

async function counterBytes(name: string): Promise<number> {
  const result = await nsExecOk(headend.clientNs, ['nft', '-j', 'list', 'counter', 'inet', 'acvpnt', name]);
  const parsed = JSON.parse(result.stdout) as { nftables: Array<{ counter?: { bytes: number } }> };
  return parsed.nftables.find((item) => item.counter !== undefined)?.counter?.bytes ?? 0;
}

/**
 * Cuts UDP between client and headend. 'silent': the headend's input drops the client's datagrams,
 * so the client's sends succeed and only DPD notices. 'local': the client's own output chain drops
 * them, and each send fails at once with EPERM.
 */
async function blockUdp(how: 'silent' | 'local'): Promise<void> {
  if (how === 'silent') {
    await nsExecOk(headend.hubNs, ['nft', 'add', 'rule', 'inet', 'acvpnt', 'in', 'udp', 'dport', '443', 'drop']);
    return;
  }
  await nft(['add', 'rule', 'inet', 'acvpnt', 'out', 'ip', 'daddr', headend.headendIp, 'udp', 'dport', '443', 'drop']);
}

async function unblockUdp(): Promise<void> {
  const places: Array<[string, string]> = [[headend.clientNs, 'out'], [headend.hubNs, 'in']];
  for (const [ns, chain] of places) {
    const listing = await nsExec(ns, ['nft', '-a', '-j', 'list', 'chain', 'inet', 'acvpnt', chain]);
    if (listing.exitCode !== 0) continue;
    const parsed = JSON.parse(listing.stdout) as { nftables: Array<{ rule?: { handle: number; expr: unknown[] } }> };
    for (const item of parsed.nftables) {
      const rule = item.rule;
      if (rule !== undefined && JSON.stringify(rule.expr).includes('"drop"')) {
        await nsExecOk(ns, ['nft', 'delete', 'rule', 'inet', 'acvpnt', chain, 'handle', String(rule.handle)]);
      }
    }
  }
}

function connect(extra: string[] = []): AcvpnRun {
  return startAcvpn(
    headend.clientNs,
    ['connect', '--user', headend.user, '--passwd-on-stdin', '--non-interactive', '--authgroup', 'staff', '--cafile', headend.caFile, '--interface', tunName, '--no-dns', ...extra, headend.url],
    `${headend.password}\n`,
  );
}

const isConnected = (record: LogRecord): boolean => record.event === 'state' && record.state === 'connected';

/** Sends `bytes` through the TCP echo service behind the headend and waits for all of it back. */
async function echoBulk(bytes: number): Promise<void> {
  const script = `
    const socket = require('node:net').connect(${headend.targetTcpPort}, '${headend.targetHost}');
    let received = 0;
    socket.on('data', (data) => { received += data.length; if (received >= ${bytes}) { socket.destroy(); process.exit(0); } });
    socket.on('connect', () => socket.write(Buffer.alloc(${bytes}, 0x61)));
    socket.on('error', () => process.exit(2));
    setTimeout(() => process.exit(3), 20000);`;
  const result = await nsExec(headend.clientNs, [process.execPath, '-e', script], { timeoutMs: 25_000 });
  expect(result.exitCode, result.stderr).toBe(0);
}

/** A TCP connection to the echo service that stays open; each write comes back. */
function startEchoClient(): { child: ChildProcess; received: () => string } {
  const script = `
    const socket = require('node:net').connect(${headend.targetTcpPort}, '${headend.targetHost}');
    socket.on('data', (data) => process.stdout.write(data));
    socket.on('error', (error) => { process.stderr.write(String(error)); process.exit(2); });
    process.stdin.on('data', (data) => socket.write(data));
    setTimeout(() => process.exit(0), 60000).unref();`;
  const child = spawn('ip', ['netns', 'exec', headend.clientNs, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let received = '';
  child.stdout?.on('data', (chunk: Buffer) => (received += chunk.toString()));
  return { child, received: () => received };
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('DTLS channel', () => {
  it('carries bulk data over UDP', async () => {
    run = connect();
    const established = await run.waitFor((record) => record.msg === 'DTLS established; data moves to DTLS');
    expect(String(established.suite)).toMatch(/^TLS_PSK_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);

    const udpBefore = await counterBytes('udp_out');
    const tcpBefore = await counterBytes('tcp_out');
    await echoBulk(2 * 1024 * 1024);
    const udpSent = (await counterBytes('udp_out')) - udpBefore;
    const tcpSent = (await counterBytes('tcp_out')) - tcpBefore;
    expect(udpSent).toBeGreaterThan(2 * 1024 * 1024);
    expect(tcpSent).toBeLessThan(64 * 1024);

    const ping = await nsExec(headend.clientNs, ['ping', '-c', '2', '-W', '2', '-s', '1380', '-M', 'do', headend.targetHost]);
    expect(ping.exitCode, ping.stdout).toBe(0);
  });

  it('TUN MTU fits the DTLS channel', async () => {
    run = connect();
    await run.waitFor((record) => record.msg === 'DTLS established; data moves to DTLS');
    const tunnel = run.records().find((record) => record.event === 'tunnel');
    const mtu = Number(tunnel?.mtu);
    // IPv4 + UDP + AES-GCM record (13 header + 8 nonce + 16 tag) + type byte on a 1500-byte link.
    expect(mtu).toBeLessThanOrEqual(1500 - 20 - 8 - 37 - 1);
    // A packet of exactly the TUN MTU crosses DTLS without fragmentation.
    const udpBefore = await counterBytes('udp_out');
    const ping = await nsExec(headend.clientNs, ['ping', '-c', '2', '-W', '2', '-s', String(mtu - 28), '-M', 'do', headend.targetHost]);
    expect(ping.exitCode, ping.stdout).toBe(0);
    expect((await counterBytes('udp_out')) - udpBefore).toBeGreaterThan(2 * mtu);
  });

  it('comes up on CSTP when UDP is blocked', async () => {
    await blockUdp('silent');
    run = connect();
    await run.waitFor(isConnected);
    const tcpBefore = await counterBytes('tcp_out');
    const ping = await nsExec(headend.clientNs, ['ping', '-c', '3', '-W', '2', headend.targetHost]);
    expect(ping.exitCode, ping.stdout).toBe(0);
    expect((await counterBytes('tcp_out')) - tcpBefore).toBeGreaterThan(3 * 84);
    await run.waitFor((record) => record.msg === 'DTLS handshake failed; staying on CSTP', 20_000);
    expect(run.records().some((record) => record.msg === 'DTLS established; data moves to DTLS')).toBe(false);
  });

  it.each(['silent', 'local'] as const)('falls back to CSTP when UDP is cut (%s)', async (how) => {
    run = connect();
    await run.waitFor((record) => record.msg === 'DTLS established; data moves to DTLS');
    const echo = startEchoClient();
    try {
      echo.child.stdin?.write('one\n');
      await waitUntil(() => echo.received().includes('one'), 5000, 'the first echo');

      await blockUdp(how);
      const cutAt = Date.now();
      echo.child.stdin?.write('two\n');
      await run.waitFor((record) => record.msg === 'DTLS failed; data falls back to CSTP', 3 * dpdSeconds * 1000);
      expect(Date.now() - cutAt).toBeLessThanOrEqual(2 * dpdSeconds * 1000 + 1500);

      // The TCP stream that was in flight carries on over CSTP.
      await waitUntil(() => echo.received().includes('two'), 15_000, 'the echo sent while UDP was cut');
      echo.child.stdin?.write('three\n');
      await waitUntil(() => echo.received().includes('three'), 5000, 'the echo after the fallback');
      expect(run.records().some((record) => record.event === 'channel' && record.channel === 'cstp')).toBe(true);
    } finally {
      echo.child.kill('SIGTERM');
    }
  });
});
