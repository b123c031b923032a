// Session lifetime against a real ocserv: rekey with each method while traffic flows, and a
// headend-side disconnect (occtl) reported with exit code 8.

import { afterAll, describe, expect, it } from 'vitest';
import { nsExec, sleep, startHeadend, type Headend } from './helpers/headend.js';
import { startAcvpn, type AcvpnRun } from './helpers/acvpn.js';

const headends: Headend[] = [];

afterAll(async () => {
  for (const headend of headends) await headend.stop();
});

function connect(headend: Headend, extra: string[] = []): AcvpnRun {
  return startAcvpn(
    headend.clientNs,
    ['connect', '--user', headend.user, '--passwd-on-stdin', '--non-interactive', '--authgroup', 'staff', '--cafile', headend.caFile, '--interface', 'acvpn-lt0', '--no-dns', '--log-level', 'debug', ...extra, headend.url],
    `${headend.password}\n`,
  );
}

/** Pings the target once a second for `seconds`; returns how many replies came back. */
async function pingFor(headend: Headend, seconds: number): Promise<{ sent: number; received: number }> {
  const result = await nsExec(headend.clientNs, ['ping', '-c', String(seconds), '-i', '1', '-W', '2', headend.targetHost], { timeoutMs: (seconds + 5) * 1000 });
  const match = /(\d+) packets transmitted, (\d+) received/.exec(result.stdout);
  return { sent: Number(match?.[1] ?? 0), received: Number(match?.[2] ?? 0) };
}

describe('session lifetime', () => {
  it.each(['ssl', 'new-tunnel'] as const)('rekeys with %s while traffic flows', async (method) => {
    const headend = await startHeadend({ prefix: `acvpn-rk${method === 'ssl' ? 's' : 'n'}`, rekey: { seconds: 6, method } });
    headends.push(headend);
    const run = connect(headend, ['--no-dtls']);
    try {
      await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
      const pings = await pingFor(headend, 14);
      const expected = method === 'ssl' ? 'rekey: TLS session renegotiated' : 'rekey: the headend asked for a new tunnel';
      expect(run.records().some((record) => record.msg === expected), run.output()).toBe(true);
      // At most one or two echoes may be lost while a new tunnel comes up.
      expect(pings.received).toBeGreaterThanOrEqual(pings.sent - 2);
      expect(run.records().filter((record) => record.level >= 50)).toEqual([]);
    } finally {
      const exit = await run.stop();
      expect(exit.code, run.output()).toBe(0);
    }
  }, 60_000);

  it('reports an occtl disconnect with exit 8', async () => {
    const headend = await startHeadend({ prefix: 'acvpn-oc' });
    headends.push(headend);
    const run = connect(headend);
    try {
      await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
      await sleep(500);
      const occtl = await nsExec(headend.hubNs, ['occtl', '-s', headend.occtlSocket, 'disconnect', 'user', headend.user]);
      expect(occtl.exitCode, occtl.stdout + occtl.stderr).toBe(0);
      const exit = await run.exited;
      expect(exit.code, run.output()).toBe(8);
      const error = run.records().find((record) => record.level >= 50);
      expect(error?.code).toBe('SESSION_TERMINATED');
      expect(error?.msg).toMatch(/the headend ended the session/);
    } finally {
      await run.stop();
    }
    expect((await nsExec(headend.clientNs, ['ip', 'link', 'show', 'dev', 'acvpn-lt0'])).exitCode).not.toBe(0);
  });
});
