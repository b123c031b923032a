// Server trust against a real ocserv whose certificate chains to a CA the client does not know:
// valid but untrusted ("issuer not found"). Block Untrusted Servers, the decision request with
// its answers, import-and-continue, Strict Certificate Trust and FIPS mode.

import { mkdtemp as makeTempDir, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, startHeadend, type Headend } from './helpers/headend.js';
import { spawn } from 'node:child_process';
import { runAcvpn, startAcvpn, type LogRecord } from './helpers/acvpn.js';

let headend: Headend;
const stateDirs: string[] = [];

async function mkdtemp(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  stateDirs.push(dir);
  return dir;
}

function args(stateDir: string, extra: string[]): string[] {
  return [
    'connect', '--user', headend.user, '--passwd-on-stdin', '--non-interactive', '--authgroup', 'staff',
    '--interface', 'acvpn-tr0', '--state-dir', stateDir, '--no-ocsp', ...extra, headend.url,
  ];
}

/** Connects, waits for the tunnel, logs off; returns the log records. */
async function connectAndLogOff(extra: string[], stateDir: string): Promise<LogRecord[]> {
  const run = startAcvpn(headend.clientNs, args(stateDir, extra), `${headend.password}\n`);
  try {
    await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
  } finally {
    const exit = await run.stop();
    expect(exit.code, run.output()).toBe(0);
  }
  return run.records();
}

const decisions = (records: LogRecord[]): LogRecord[] => records.filter((record) => record.event === 'trust-decision');

beforeAll(async () => {
  headend = await startHeadend({ prefix: 'acvpn-tr' });
});

afterAll(async () => {
  await headend?.stop();
  for (const dir of stateDirs) await rm(dir, { recursive: true, force: true });
});

describe('server trust', () => {
  it('blocks an untrusted headend by default', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    const result = await runAcvpn(headend.clientNs, args(stateDir, ['--trust-answer', 'continue']), `${headend.password}\n`);
    expect(result.code, result.output).toBe(5);
    const decision = decisions(result.records)[0];
    expect(decision?.blocked).toBe(true);
    expect(decision?.allowed).toEqual(['abort', 'change-setting']);
    expect(decision?.reasons).toEqual(['issuer-not-found']);
    expect(result.records.some((record) => record.msg === 'sending auth request')).toBe(false);
  });

  it('imports and then trusts without a question', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    const first = await connectAndLogOff(['--no-block-untrusted', '--trust-answer', 'import-and-continue'], stateDir);
    expect(decisions(first)[0]?.allowed).toContain('import-and-continue');
    expect(await readdir(join(stateDir, 'certificates'))).toHaveLength(1);

    const second = await connectAndLogOff([], stateDir);
    expect(decisions(second)).toHaveLength(0);
  });

  it('continues once without importing', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    await connectAndLogOff(['--no-block-untrusted', '--trust-answer', 'continue'], stateDir);
    const again = await runAcvpn(headend.clientNs, args(stateDir, []), `${headend.password}\n`);
    expect(again.code, again.output).toBe(5);
  });

  it('aborts without an answer', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    const result = await runAcvpn(headend.clientNs, args(stateDir, ['--no-block-untrusted']), `${headend.password}\n`);
    expect(result.code, result.output).toBe(5);
    expect(decisions(result.records)).toHaveLength(1);
  });

  it('strict trust ignores a continue answer and pins', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    const extra = ['--strict-trust', '--no-block-untrusted', '--trust-answer', 'continue', '--servercert', headend.serverPin];
    const result = await runAcvpn(headend.clientNs, args(stateDir, extra), `${headend.password}\n`);
    expect(result.code, result.output).toBe(5);
    expect(decisions(result.records)).toHaveLength(0);
    expect(result.records.find((record) => record.level >= 50)?.msg).toMatch(/Strict Certificate Trust/);
  });

  it('connects in FIPS mode with the CA', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    const run = startAcvpn(headend.clientNs, args(stateDir, ['--fips', '--cafile', headend.caFile, '--log-level', 'debug']), `${headend.password}\n`);
    try {
      const dtls = await run.waitFor((record) => record.msg === 'DTLS established; data moves to DTLS');
      // ocserv's default priorities would pick AES-256-GCM anyway; FIPS mode offers AES-GCM only.
      expect(String(dtls.suite)).toMatch(/^TLS_PSK_WITH_AES_(128|256)_GCM_SHA(256|384)$/);
    } finally {
      expect((await run.stop()).code).toBe(0);
    }
    const tls = run.records().find((record) => record.msg === 'TLS connection established');
    expect(String(tls?.cipher)).toMatch(/^ECDHE-.*-AES\d+-GCM-SHA\d+$/);
  });

  it('FIPS mode refuses a ChaCha20-only server', async () => {
    // openssl s_server in the headend's namespace with the headend's own certificate, offering
    // only ECDHE-RSA-CHACHA20-POLY1305 over TLS 1.2.
    const server = spawn('ip', [
      'netns', 'exec', headend.hubNs, 'openssl', 's_server', '-accept', `${headend.headendIp}:8443`, '-tls1_2',
      '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305', '-cert', join(headend.stateDir, 'server-cert.pem'),
      '-key', join(headend.stateDir, 'server-key.pem'), '-quiet',
    ], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await sleep(500);
      const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
      const url = headend.url.replace(/\/?$/, ':8443');
      const result = await runAcvpn(headend.clientNs, [...args(stateDir, ['--fips', '--cafile', headend.caFile]).slice(0, -1), url], `${headend.password}\n`);
      expect(result.code, result.output).toBe(6);
      expect(result.records.find((record) => record.level >= 50)?.msg).toMatch(/FIPS mode/);
    } finally {
      server.kill('SIGTERM');
    }
  });
});

describe.each([
  ['self-signed', 'untrusted', 'self-signed'],
  ['expired', 'invalid', 'expired'],
  ['wrong-name', 'invalid', 'name-mismatch'],
] as const)('server certificate %s', (kind, status, reason) => {
  let faulty: Headend;

  beforeAll(async () => {
    faulty = await startHeadend({ prefix: `acvpn-tf${kind.slice(0, 2)}`, serverCert: kind });
  });

  afterAll(async () => {
    await faulty?.stop();
  });

  function faultyArgs(stateDir: string, extra: string[]): string[] {
    return [
      'connect', '--user', faulty.user, '--passwd-on-stdin', '--non-interactive', '--authgroup', 'staff',
      '--interface', 'acvpn-tr0', '--state-dir', stateDir, '--no-ocsp', '--cafile', faulty.caFile, ...extra, faulty.url,
    ];
  }

  it('is blocked by default', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    const result = await runAcvpn(faulty.clientNs, faultyArgs(stateDir, []), `${faulty.password}\n`);
    expect(result.code, result.output).toBe(5);
    const decision = decisions(result.records)[0];
    expect(decision?.status).toBe(status);
    expect(decision?.reasons).toContain(reason);
    expect(decision?.blocked).toBe(true);
    expect(result.records.some((record) => record.msg === 'sending auth request')).toBe(false);
  });

  it(status === 'untrusted' ? 'can be imported' : 'cannot be imported', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'acvpn-tr-state-'));
    const extra = ['--no-block-untrusted', '--trust-answer', 'import-and-continue'];
    if (status === 'untrusted') {
      const run = startAcvpn(faulty.clientNs, faultyArgs(stateDir, extra), `${faulty.password}\n`);
      try {
        await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
      } finally {
        expect((await run.stop()).code).toBe(0);
      }
      expect(await readdir(join(stateDir, 'certificates'))).toHaveLength(1);
      return;
    }
    const result = await runAcvpn(faulty.clientNs, faultyArgs(stateDir, extra), `${faulty.password}\n`);
    expect(result.code, result.output).toBe(5);
    expect(decisions(result.records)[0]?.allowed).not.toContain('import-and-continue');
    await expect(readdir(join(stateDir, 'certificates'))).rejects.toThrow();
  });
});
