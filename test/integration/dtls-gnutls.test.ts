// DtlsClient and DtlsUdpDriver against a real DTLS 1.2 PSK server: gnutls-serv (GnuTLS 3.7,
// Debian gnutls-bin) on loopback, with and without HelloVerifyRequest cookies, for each suite,
// through a lossy reordering relay and with fragmented handshakes. Also checks derivePsk against
// the key material GnuTLS exports for the same TLS session.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { AcvpnError } from '../../src/core/errors.js';
import { derivePsk, PSK_EXPORTER_LABEL } from '../../src/dtls/psk.js';
import { CipherSuiteId } from '../../src/dtls/suites.js';
import { DtlsUdpDriver, type DtlsUdpDriverOptions } from '../../src/dtls/udp-driver.js';
import { startUdpRelay, type UdpRelay } from './helpers/udp-relay.js';

const PSK = randomBytes(32);
const APP_ID = randomBytes(32);
/** Makes the ClientKeyExchange longer than an 80-byte datagram, so it must be fragmented. */
const LONG_IDENTITY = 'an-identity-long-enough-to-need-fragments-at-an-80-byte-mtu';
const SERVER_START_TIMEOUT_MS = 10_000;
const ECHO_TIMEOUT_MS = 5_000;
/** gnutls-serv prints "listening on IPv4 0.0.0.0 port N..." before bind() and "done" after it. */
const LISTENING = /listening on IPv4[^\n]*done/;

const SUITES = [
  { name: 'TLS_PSK_WITH_AES_128_GCM_SHA256', gnutlsCipher: 'AES-128-GCM' },
  { name: 'TLS_PSK_WITH_AES_256_GCM_SHA384', gnutlsCipher: 'AES-256-GCM' },
  { name: 'TLS_PSK_WITH_CHACHA20_POLY1305_SHA256', gnutlsCipher: 'CHACHA20-POLY1305' },
] as const;

let stateDir = '';
let pskFile = '';
const servers: ChildProcess[] = [];
const drivers: DtlsUdpDriver[] = [];
const relays: UdpRelay[] = [];

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** Starts gnutls-serv and resolves once it listens; the output is kept for failure messages. */
async function startGnutlsServ(args: string[], ready: RegExp): Promise<{ process: ChildProcess; output: () => string }> {
  const child = spawn('gnutls-serv', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.push(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    if (output.length < 1_000_000) output += chunk.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gnutls-serv did not start within ${SERVER_START_TIMEOUT_MS} ms:\n${output}`)), SERVER_START_TIMEOUT_MS);
    const check = (): void => {
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    // gnutls-serv prints the listening line on stderr.
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gnutls-serv exited with ${code}:\n${output}`));
    });
  });
  return { process: child, output: () => output };
}

async function startDtlsServer(options: { cookie: boolean; ciphers: string[]; mtu?: number }): Promise<number> {
  const port = await freeUdpPort();
  const priority = `NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:${options.ciphers.map((c) => `+${c}`).join(':')}`;
  const args = ['--udp', '--echo', '-p', String(port), '--pskpasswd', pskFile, '--priority', priority];
  if (!options.cookie) args.push('--nocookie');
  if (options.mtu !== undefined) args.push('--mtu', String(options.mtu));
  await startGnutlsServ(args, LISTENING);
  return port;
}

async function connectDriver(port: number, client: Partial<DtlsUdpDriverOptions['client']> = {}): Promise<{ driver: DtlsUdpDriver; suite: string }> {
  const driver = new DtlsUdpDriver({ host: '127.0.0.1', port, client: { psk: PSK, sessionId: APP_ID, mtu: 1400, ...client } });
  drivers.push(driver);
  const suite = new Promise<string>((resolve, reject) => {
    driver.once('established', resolve);
    driver.once('failed', (error: AcvpnError) => reject(error));
  });
  await driver.start();
  return { driver, suite: await suite };
}

/** Sends each payload once and collects what comes back within the timeout. */
async function echo(driver: DtlsUdpDriver, payloads: string[]): Promise<string[]> {
  const received: string[] = [];
  const onData = (payload: Buffer): void => {
    received.push(payload.toString());
  };
  driver.on('data', onData);
  for (const payload of payloads) expect(driver.send(Buffer.from(payload))).toBe(true);
  const deadline = Date.now() + ECHO_TIMEOUT_MS;
  while (received.length < payloads.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  driver.off('data', onData);
  return received;
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'acvpn-dtls-'));
  pskFile = join(stateDir, 'psk.passwd');
  await writeFile(pskFile, `psk:${PSK.toString('hex')}\n${LONG_IDENTITY}:${PSK.toString('hex')}\n`, { mode: 0o600 });
});

afterAll(async () => {
  for (const driver of drivers) driver.close();
  for (const relay of relays) await relay.close();
  for (const server of servers) {
    if (server.pid !== undefined && server.exitCode === null) process.kill(server.pid, 'SIGTERM');
  }
  if (stateDir !== '') await rm(stateDir, { recursive: true, force: true });
});

describe('DTLS against gnutls-serv', () => {
  for (const cookie of [false, true]) {
    for (const suite of SUITES) {
      it(`negotiates ${suite.name} ${cookie ? 'with' : 'without'} cookies`, async () => {
        const port = await startDtlsServer({ cookie, ciphers: [suite.gnutlsCipher] });
        const { driver, suite: negotiated } = await connectDriver(port);
        expect(negotiated).toBe(suite.name);
        expect(await echo(driver, ['\x00first packet', '\x03dpd'])).toEqual(['\x00first packet', '\x03dpd']);
        driver.close();
      });
    }
  }

  it('takes the suite the client prefers among several', async () => {
    const port = await startDtlsServer({ cookie: false, ciphers: SUITES.map((suite) => suite.gnutlsCipher) });
    const { driver, suite } = await connectDriver(port, { suites: [CipherSuiteId.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256, CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256] });
    expect([SUITES[0].name, SUITES[2].name]).toContain(suite);
    driver.close();
  });

  it('fails with a hint when the PSK differs', async () => {
    const port = await startDtlsServer({ cookie: false, ciphers: ['AES-128-GCM'] });
    const driver = new DtlsUdpDriver({
      host: '127.0.0.1',
      port,
      client: { psk: randomBytes(32), sessionId: APP_ID, mtu: 1400, handshakeTimeoutMs: 4_000 },
    });
    drivers.push(driver);
    const failed = new Promise<AcvpnError>((resolve) => driver.once('failed', resolve));
    await driver.start();
    const error = await failed;
    // GnuTLS 3.7 drops our Finished without an alert, so the handshake times out.
    expect(error.code).toBe('NETWORK_UNREACHABLE');
    expect(error.message).toMatch(/PSK differs/);
  });

  it.each([false, true])('fragments the handshake at a small MTU (cookies %s)', async (cookie) => {
    const port = await startDtlsServer({ cookie, ciphers: ['AES-256-GCM'], mtu: 80 });
    const { driver, suite } = await connectDriver(port, { mtu: 80, identity: LONG_IDENTITY });
    expect(suite).toBe('TLS_PSK_WITH_AES_256_GCM_SHA384');
    expect(await echo(driver, ['\x00small'])).toEqual(['\x00small']);
    driver.close();
  });

  it.each([1, 2, 3])('completes through a lossy reordering relay (seed %i)', async (seed) => {
    const port = await startDtlsServer({ cookie: true, ciphers: ['AES-128-GCM'] });
    const relay = await startUdpRelay({ targetPort: port, seed, lossRate: 0.1, reorderRate: 0.3, maxDelayMs: 30, maxDatagrams: 2_000 });
    relays.push(relay);
    // 10 % loss each way can cost a flight two retransmissions (1 s + 2 s), so allow more than 12 s.
    const { driver } = await connectDriver(relay.port, { mtu: 200, handshakeTimeoutMs: 40_000 });

    const payloads = Array.from({ length: 100 }, (_, i) => `\x00packet ${i}`);
    const received = await echo(driver, payloads);
    // About 81 % survive both directions at 10 % loss; 60 % leaves room for bad luck.
    expect(received.length).toBeGreaterThanOrEqual(60);
    for (const payload of received) expect(payloads).toContain(payload);
    expect(relay.stats.dropped).toBeGreaterThan(0);
    expect(relay.stats.delayed).toBeGreaterThan(0);
    driver.close();
  });
});

describe('derivePsk', () => {
  it('matches the key material gnutls-serv exports for the same TLS 1.2 session', async () => {
    const keyFile = join(stateDir, 'key.pem');
    const certFile = join(stateDir, 'cert.pem');
    const templateFile = join(stateDir, 'cert.template');
    await writeFile(templateFile, 'cn = localhost\nexpiration_days = 2\n');
    await runCommand('certtool', ['--generate-privkey', '--key-type', 'ecdsa', '--outfile', keyFile]);
    await runCommand('certtool', ['--generate-self-signed', '--load-privkey', keyFile, '--template', templateFile, '--outfile', certFile]);

    const port = await freeUdpPort();
    const server = await startGnutlsServ(
      ['--echo', '-p', String(port), '--x509keyfile', keyFile, '--x509certfile', certFile,
        '--keymatexport', PSK_EXPORTER_LABEL, '--keymatexportsize', '32', '--priority', 'NORMAL:-VERS-ALL:+VERS-TLS1.2'],
      LISTENING,
    );

    // The test server's certificate is self-signed and only the exporter is under test here.
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const psk = derivePsk(socket);
    const withEmptyContext = socket.exportKeyingMaterial(32, PSK_EXPORTER_LABEL, Buffer.alloc(0));
    socket.end('x\n');

    const deadline = Date.now() + ECHO_TIMEOUT_MS;
    while (!/Key material: [0-9a-f]+/i.test(server.output()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const exported = /Key material: ([0-9a-fA-F]+)/.exec(server.output())?.[1]?.toLowerCase();
    expect(exported).toBe(psk.toString('hex'));
    expect(withEmptyContext.toString('hex')).not.toBe(exported);
  });
});

async function runCommand(command: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore', timeout: 10_000 });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`))));
  });
}
