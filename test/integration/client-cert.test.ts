// Certificate authentication against ocserv 1.1 (auth = "certificate", user name from the CN).
//
// The first part drives ocserv with a small Node TLS client run inside the client namespace: it
// presents the certificate from tlsClientOptions, sends the config-auth init request, and prints
// the reply. The second part runs `acvpn connect --certificate` with a PKCS#12 file and with a
// stored alias.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientCertificateStore, resolveClientIdentity, tlsClientOptions } from '../../src/trust/client-cert.js';
import { startAcvpnWithEnv } from './helpers/acvpn.js';
import { describeResult, nsExec, runCommand, startHeadend, waitForLine, type Headend } from './helpers/headend.js';

// What acvpn sends as its first request (the config-auth init), byte for byte.
const INIT_BODY =
  '<?xml version="1.0" encoding="UTF-8"?><config-auth client="vpn" type="init"><version who="vpn">v1</version><device-id>linux-64</device-id></config-auth>';

// Reads {host, servername, ca, cert?, key?, body} as JSON on stdin, POSTs the body to / over TLS
// (the server verified against ca), and prints {status, headers, body} or {error} as JSON. Stops
// after one response or 8 s.
const INIT_CLIENT_SCRIPT = `
import tls from 'node:tls';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const options = JSON.parse(input);
const request = [
  'POST / HTTP/1.1',
  'Host: ' + options.servername,
  'User-Agent: AnyConnect-compatible acvpn VPN Agent v0.1.0',
  'X-Aggregate-Auth: 1',
  'X-Transcend-Version: 1',
  'Content-Type: application/x-www-form-urlencoded',
  'Content-Length: ' + Buffer.byteLength(options.body),
  '',
  options.body,
].join('\\r\\n');
const result = await new Promise((resolve) => {
  const socket = tls.connect({
    host: options.host, port: 443, servername: options.servername, ca: options.ca,
    cert: options.cert, key: options.key, minVersion: 'TLSv1.2',
  });
  const timer = setTimeout(() => finish({ error: 'no response within 8 s' }), 8000);
  let received = Buffer.alloc(0);
  function finish(value) { clearTimeout(timer); socket.destroy(); resolve(value); }
  socket.on('secureConnect', () => socket.write(request));
  socket.on('data', (chunk) => {
    received = Buffer.concat([received, chunk]);
    const text = received.toString('latin1');
    const end = text.indexOf('\\r\\n\\r\\n');
    if (end < 0) return;
    const head = text.slice(0, end).split('\\r\\n');
    const length = Number(head.map((line) => /^content-length:\\s*(\\d+)/i.exec(line)?.[1]).find(Boolean) ?? 0);
    if (received.length < end + 4 + length) return;
    finish({ status: Number(head[0].split(' ')[1]), headers: head.slice(1), body: text.slice(end + 4, end + 4 + length) });
  });
  socket.on('error', (error) => finish({ error: error.message }));
  socket.on('end', () => finish({ error: 'connection closed', partial: received.toString('latin1') }));
});
process.stdout.write(JSON.stringify(result) + '\\n');
`;

interface InitReply {
  status?: number;
  headers?: string[];
  body?: string;
  error?: string;
}

let headend: Headend;
let scratch: string;
let caPem: string;

beforeAll(async () => {
  headend = await startHeadend({ prefix: 'acvpn-cc', certAuth: true });
  scratch = await mkdtemp(join(tmpdir(), 'acvpn-cc-client-'));
  caPem = await readFile(headend.caFile, 'utf8');
});

afterAll(async () => {
  await headend?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

function clientCertificate(): NonNullable<Headend['clientCertificate']> {
  const certificate = headend.clientCertificate;
  if (certificate === undefined) throw new Error('the headend was started without certAuth: headend.env has no CLIENT_CERT_P12');
  return certificate;
}

/** Sends the init request from the client namespace, presenting `credentials` when given. */
async function sendInit(credentials?: { cert: string; key: string }): Promise<InitReply> {
  const url = new URL(headend.url);
  const input = JSON.stringify({ host: headend.headendIp, servername: url.hostname, ca: caPem, body: INIT_BODY, ...credentials });
  const result = await nsExec(headend.clientNs, [process.execPath, '--input-type=module', '-e', INIT_CLIENT_SCRIPT], { input, timeoutMs: 15_000 });
  if (result.exitCode !== 0) throw new Error(`the init client failed: ${describeResult(result)}`);
  return JSON.parse(result.stdout) as InitReply;
}

function webvpnCookie(reply: InitReply): string | undefined {
  const header = reply.headers?.find((line) => /^set-cookie:\s*webvpn=/i.test(line));
  return header === undefined ? undefined : /webvpn=([^;]*)/i.exec(header)?.[1];
}

describe('ocserv certificate authentication', () => {
  it('completes the login with a stored certificate', async () => {
    const store = ClientCertificateStore.inStateDirectory(join(scratch, 'state-modern'));
    await store.importPkcs12(await readFile(clientCertificate().p12File), clientCertificate().password, 'alice', 'client.p12');

    const reply = await sendInit(tlsClientOptions(await store.load('alice')));

    expect(reply.error).toBeUndefined();
    expect(reply.status).toBe(200);
    expect(reply.body).toContain('type="complete"');
    expect(webvpnCookie(reply)).toMatch(/^[A-Za-z0-9+/=]{20,}$/);
    await waitForLine(headend.ocservLog, /auth complete \(with cert\)\s*for user 'alice'/);
  });

  it('completes the login with a legacy PKCS#12 file', async () => {
    const identity = await resolveClientIdentity(clientCertificate().legacyP12File, { store: ClientCertificateStore.inStateDirectory(scratch), password: clientCertificate().password });

    const reply = await sendInit(tlsClientOptions(identity));

    expect(reply.error).toBeUndefined();
    expect(reply.status).toBe(200);
    expect(reply.body).toContain('type="complete"');
    expect(webvpnCookie(reply)).toBeDefined();
  });

  it('rejects a login without a certificate', async () => {
    const reply = await sendInit();

    expect(reply.status).toBe(401);
    expect(reply.body ?? '').not.toContain('type="complete"');
    expect(webvpnCookie(reply)).toBeUndefined();
    await waitForLine(headend.ocservLog, /no certificate provided for authentication/);
  });

  it('rejects a certificate from another CA', async () => {
    const keyFile = join(scratch, 'stranger.key');
    const certFile = join(scratch, 'stranger.pem');
    const made = await runCommand(
      ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=alice', '-days', '1'],
      { timeoutMs: 20_000 },
    );
    expect(made.exitCode, describeResult(made)).toBe(0);

    const reply = await sendInit({ cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') });

    // ocserv 1.1.6 (GnuTLS) ends the handshake when the client certificate does not verify.
    expect(reply.status).toBeUndefined();
    expect(reply.error).toBeDefined();
    await waitForLine(headend.ocservLog, /client certificate verification failed/);
  });
});

// The lead enables this once `acvpn connect --certificate FILE|ALIAS` (password from
// ACVPN_CERT_PASSWORD) is wired into the session.
describe('acvpn connect --certificate', () => {
  const tunName = 'acvpn-cc0';

  async function connectAndStop(args: string[], env: Record<string, string>): Promise<void> {
    const run = startAcvpnWithEnv(
      headend.clientNs,
      ['connect', ...args, '--cafile', headend.caFile, '--non-interactive', '--interface', tunName, '--log-level', 'debug', headend.url],
      env,
    );
    try {
      await run.waitFor((record) => record.event === 'state' && record.state === 'connected', 30_000);
      const ping = await nsExec(headend.clientNs, ['ping', '-c', '1', '-W', '2', headend.targetHost]);
      expect(ping.exitCode, describeResult(ping)).toBe(0);
    } finally {
      const exit = await run.stop();
      expect(exit.code, run.output()).toBe(0);
    }
    expect(run.output()).not.toContain(clientCertificate().password);
  }

  it('connects with a PKCS#12 file and ACVPN_CERT_PASSWORD', async () => {
    await connectAndStop(['--certificate', clientCertificate().legacyP12File, '--state-dir', join(scratch, 'connect-file')], {
      ACVPN_CERT_PASSWORD: clientCertificate().password,
    });
  });

  it('connects with an RSA key', async () => {
    await connectAndStop(['--certificate', clientCertificate().rsaP12File, '--state-dir', join(scratch, 'connect-rsa')], {
      ACVPN_CERT_PASSWORD: clientCertificate().password,
    });
  });

  it('connects with a stored alias', async () => {
    const stateDir = join(scratch, 'connect-alias');
    const store = ClientCertificateStore.inStateDirectory(stateDir);
    await store.importPkcs12(await readFile(clientCertificate().p12File), clientCertificate().password, 'alice');

    await connectAndStop(['--certificate', 'alice', '--state-dir', stateDir], {});
  });

  it('fails without a certificate', async () => {
    const run = startAcvpnWithEnv(
      headend.clientNs,
      ['connect', '--cafile', headend.caFile, '--non-interactive', '--interface', tunName, '--state-dir', join(scratch, 'connect-none'), headend.url],
      {},
    );
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
    const exit = await run.exited;
    clearTimeout(timer);
    // ocserv replies to the init request with 401 and no form, so authentication is rejected.
    expect(exit.code, run.output()).toBe(3);
  });
});

describe('certificate and password together', () => {
  let both: Headend;
  const tunName = 'acvpn-cp0';

  beforeAll(async () => {
    both = await startHeadend({ prefix: 'acvpn-cp', certAndPassword: true });
  });

  afterAll(async () => {
    await both?.stop();
  });

  function args(extra: string[]): string[] {
    return ['connect', '--user', both.user, '--non-interactive', '--cafile', both.caFile, '--interface', tunName, '--no-dns', ...extra, both.url];
  }

  it('connects with both', async () => {
    const identity = both.clientCertificate!;
    const run = startAcvpnWithEnv(both.clientNs, args(['--certificate', identity.p12File, '--passwd-on-stdin']), { ACVPN_CERT_PASSWORD: identity.password }, `${both.password}\n`);
    try {
      await run.waitFor((record) => record.event === 'state' && record.state === 'connected', 30_000);
      const ping = await nsExec(both.clientNs, ['ping', '-c', '1', '-W', '2', both.targetHost]);
      expect(ping.exitCode, describeResult(ping)).toBe(0);
    } finally {
      expect((await run.stop()).code).toBe(0);
    }
    expect(await readFile(both.ocservLog, 'utf8')).toMatch(/auth complete \(with cert\)\s*for user 'alice'/);
  });

  it('fails with the certificate alone', async () => {
    const identity = both.clientCertificate!;
    const run = startAcvpnWithEnv(both.clientNs, args(['--certificate', identity.p12File]), { ACVPN_CERT_PASSWORD: identity.password });
    const exit = await run.exited;
    expect(exit.code, run.output()).toBe(3);
  });

  it('fails with the password alone', async () => {
    const run = startAcvpnWithEnv(both.clientNs, args(['--passwd-on-stdin']), {}, `${both.password}\n`);
    const exit = await run.exited;
    expect(exit.code, run.output()).toBe(3);
  });
});
