// Automatic reconnect against a real ocserv: the link to the headend goes down and comes back.
// With network roaming on, acvpn reconnects with its cookie (no new login), keeps the tunnel
// address, and a TCP connection opened before the outage carries data after it. With roaming off
// it gives up about 20 s after the loss.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADEND_SCRIPT, nsExec, nsExecOk, runCommand, sleep, startHeadend, type Headend } from './helpers/headend.js';
import { startAcvpn, startAcvpnWithEnv, type AcvpnRun, type LogRecord } from './helpers/acvpn.js';

const tunName = 'acvpn-rc0';
let headend: Headend;
let routesBefore: string;

async function routeTable(): Promise<string> {
  const v4 = await nsExec(headend.clientNs, ['ip', '-4', '-json', 'route', 'show', 'table', 'main']);
  const v6 = await nsExec(headend.clientNs, ['ip', '-6', '-json', 'route', 'show', 'table', 'main']);
  return `${v4.stdout}\n${v6.stdout}`;
}

function isState(state: string) {
  return (record: LogRecord): boolean => record.event === 'state' && record.state === state;
}

function countLines(text: string, pattern: RegExp): number {
  return text.split('\n').filter((line) => pattern.test(line)).length;
}

async function linkDown(): Promise<void> {
  await nsExecOk(headend.clientNs, ['ip', 'link', 'set', 'dev', 'to-hub', 'down']);
}

/** Brings the link back and puts back the default route the kernel removed with it (as DHCP would). */
async function linkUp(): Promise<void> {
  await nsExecOk(headend.clientNs, ['ip', 'link', 'set', 'dev', 'to-hub', 'up']);
  await nsExec(headend.clientNs, ['ip', 'route', 'replace', 'default', 'via', headend.headendIp, 'dev', 'to-hub']);
}

/** A TCP client in the client namespace that sends each stdin line to the echo service and prints what comes back. */
function startEchoClient(): { child: ChildProcess; received: () => string } {
  const script = `
    const socket = require('node:net').connect(${headend.targetTcpPort}, '${headend.targetHost}');
    socket.on('data', (data) => process.stdout.write(data));
    socket.on('error', (error) => { process.stderr.write(String(error)); process.exit(2); });
    process.stdin.on('data', (data) => socket.write(data));
    setTimeout(() => process.exit(0), 120000).unref();`;
  const child = spawn('ip', ['netns', 'exec', headend.clientNs, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let received = '';
  child.stdout?.on('data', (chunk: Buffer) => (received += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (received += chunk.toString()));
  return { child, received: () => received };
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  headend = await startHeadend({ prefix: 'acvpn-rc' });
  routesBefore = await routeTable();
});

afterAll(async () => {
  await headend?.stop();
});

describe('automatic reconnect', () => {
  it('survives a 10 s link outage with the cookie', async () => {
    const run: AcvpnRun = startAcvpn(
      headend.clientNs,
      ['connect', '--user', headend.user, '--passwd-on-stdin', '--non-interactive', '--authgroup', 'staff', '--cafile', headend.caFile, '--interface', tunName, '--log-level', 'debug', headend.url],
      `${headend.password}\n`,
    );
    let echo: ReturnType<typeof startEchoClient> | undefined;
    try {
      await run.waitFor(isState('connected'));
      echo = startEchoClient();
      const first = run.records().find((record) => record.msg === 'CSTP tunnel established');
      const logins = countLines(await readFile(headend.ocservLog, 'utf8'), /auth complete for user 'alice'/);

      echo.child.stdin?.write('before\n');
      await waitFor(() => echo.received().includes('before'), 5000, 'the echo before the outage');

      await linkDown();
      await run.waitFor(isState('reconnecting'), 5000);
      await sleep(10_000);
      await linkUp();

      await run.waitFor((record) => isState('connected')(record) && run.records().filter(isState('connected')).length >= 2, 30_000);
      const established = run.records().filter((record) => record.msg === 'CSTP tunnel established');
      expect(established).toHaveLength(2);
      expect(established[1]?.address).toBe(first?.address);

      // No new login: ocserv accepted the cookie.
      const ocservLog = await readFile(headend.ocservLog, 'utf8');
      expect(countLines(ocservLog, /auth complete for user 'alice'/)).toBe(logins);
      expect(countLines(ocservLog, /authenticated \(using cookie\)/)).toBeGreaterThanOrEqual(2);

      echo.child.stdin?.write('after\n');
      await waitFor(() => echo.received().includes('after'), 20_000, 'the echo after the outage');
      expect(echo.child.exitCode).toBeNull();
    } finally {
      echo?.child.kill('SIGTERM');
      await nsExec(headend.clientNs, ['ip', 'link', 'set', 'dev', 'to-hub', 'up']);
      const exit = await run.stop();
      expect(exit.code, run.output()).toBe(0);
    }
    await nsExec(headend.clientNs, ['ip', 'route', 'replace', 'default', 'via', headend.headendIp, 'dev', 'to-hub']);
    expect(await routeTable()).toBe(routesBefore);
  }, 90_000);

  it('gives up after 20 s with roaming off', async () => {
    const run = startAcvpn(
      headend.clientNs,
      ['connect', '--user', headend.user, '--passwd-on-stdin', '--non-interactive', '--authgroup', 'staff', '--cafile', headend.caFile, '--interface', tunName, '--no-netroam', headend.url],
      `${headend.password}\n`,
    );
    try {
      await run.waitFor(isState('connected'));
      await linkDown();
      const lostAt = Date.now();
      const exit = await run.exited;
      const elapsed = Date.now() - lostAt;
      expect(exit.code, run.output()).toBe(6);
      expect(elapsed).toBeGreaterThanOrEqual(19_000);
      expect(elapsed).toBeLessThan(32_000);
      const error = run.records().find((record) => record.level >= 50);
      expect(error?.msg).toMatch(/gave up reconnecting .* after 20 s because network roaming is off/);
    } finally {
      await linkUp();
      await run.stop();
    }
    expect(await routeTable()).toBe(routesBefore);
  }, 60_000);

  it.each([
    ['logs in again with ACVPN_PASSWORD', true],
    ['reports expiry without reusable credentials', false],
  ] as const)('after an ocserv restart: %s', async (_name, withEnvPassword) => {
    const args = ['connect', '--user', headend.user, '--non-interactive', '--authgroup', 'staff', '--cafile', headend.caFile, '--interface', tunName, '--no-dns', headend.url];
    const run = withEnvPassword
      ? startAcvpnWithEnv(headend.clientNs, args, { ACVPN_PASSWORD: headend.password })
      : startAcvpn(headend.clientNs, ['connect', '--passwd-on-stdin', ...args.slice(1)], `${headend.password}\n`);
    try {
      await run.waitFor(isState('connected'));
      // The headend reboots while the client is cut off, so its goodbye never arrives and the
      // client learns of the lost session only when its cookie is refused.
      await linkDown();
      const restart = await runCommand(['bash', HEADEND_SCRIPT, 'restart-ocserv', '--prefix', headend.prefix, '--state-dir', headend.stateDir], { timeoutMs: 30_000 });
      expect(restart.exitCode, restart.stderr).toBe(0);
      await linkUp();

      if (withEnvPassword) {
        await run.waitFor((record) => record.msg === 'the headend rejected the session cookie; logging in again', 40_000);
        await run.waitFor(() => run.records().filter(isState('connected')).length >= 2, 40_000);
        // Traffic flows again; the first packets may meet the routes while they are re-applied.
        let replies = 0;
        for (let attempt = 0; attempt < 10 && replies === 0; attempt += 1) {
          const ping = await nsExec(headend.clientNs, ['ping', '-c', '1', '-W', '1', headend.targetHost]);
          if (ping.exitCode === 0) replies += 1;
        }
        const addresses = (await nsExec(headend.clientNs, ['ip', 'addr', 'show', 'dev', tunName])).stdout;
        const table = (await nsExec(headend.clientNs, ['ip', 'route'])).stdout;
        expect(replies, `${addresses}\n${table}`).toBe(1);
      } else {
        const exit = await run.exited;
        expect(exit.code, run.output()).toBe(8);
        expect(run.records().find((record) => record.level >= 50)?.msg).toMatch(/session expired/);
      }
    } finally {
      await linkUp();
      await run.stop();
    }
    expect(await routeTable()).toBe(routesBefore);
  }, 90_000);
});
