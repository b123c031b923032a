// acvpn against a real ocserv 1.1 in network namespaces: login, tunnel, routes, traffic, logoff,
// and the fast failures (wrong password, unknown group, untrusted server), each leaving the host
// as it was.

import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec, startHeadend, type Headend } from './helpers/headend.js';
import { runAcvpn, startAcvpn, type LogRecord } from './helpers/acvpn.js';

const tunName = 'acvpn-e2e0';
let headend: Headend;
let routesBefore: string;
let resolvConfBefore: string;
const resolvConfPath = (): string => `/etc/netns/${headend.clientNs}/resolv.conf`;
const allOutput: string[] = [];

interface JsonRoute {
  dst: string;
  dev?: string;
  gateway?: string;
}

async function routeTable(): Promise<string> {
  const v4 = await nsExec(headend.clientNs, ['ip', '-4', '-json', 'route', 'show', 'table', 'main']);
  const v6 = await nsExec(headend.clientNs, ['ip', '-6', '-json', 'route', 'show', 'table', 'main']);
  return `${v4.stdout}\n${v6.stdout}`;
}

async function linkExists(name: string): Promise<boolean> {
  const result = await nsExec(headend.clientNs, ['ip', 'link', 'show', 'dev', name]);
  return result.exitCode === 0;
}

function baseArgs(): string[] {
  return ['connect', '--user', headend.user, '--passwd-on-stdin', '--non-interactive', '--interface', tunName, '--log-level', 'trace'];
}

function errorRecords(records: LogRecord[]): LogRecord[] {
  return records.filter((record) => record.level >= 50);
}

beforeAll(async () => {
  headend = await startHeadend({ prefix: 'acvpn-e2e' });
  routesBefore = await routeTable();
  resolvConfBefore = await readFile(resolvConfPath(), 'utf8');
});

afterAll(async () => {
  await headend?.stop();
});

describe('acvpn connect against ocserv', () => {
  it('connects, routes, carries traffic and logs off', async () => {
    const run = startAcvpn(
      headend.clientNs,
      [...baseArgs(), '--authgroup', 'staff', '--cafile', headend.caFile, '--device-type', 'e2e-rig-device', headend.url],
      `${headend.password}\n`,
    );
    try {
      await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
      const established = run.records().find((record) => record.msg === 'CSTP tunnel established');
      expect(established).toBeDefined();
      const address = String(established?.address);
      const mtu = Number(established?.mtu);
      expect(address).toMatch(/^198\.19\.0\.\d+$/);

      // TUN address and MTU
      const links = JSON.parse((await nsExec(headend.clientNs, ['ip', '-json', 'addr', 'show', 'dev', tunName])).stdout) as Array<{
        mtu: number;
        operstate: string;
        addr_info: Array<{ family: string; local: string; prefixlen: number }>;
      }>;
      expect(links[0]?.mtu).toBe(mtu);
      expect(links[0]?.addr_info.find((info) => info.family === 'inet')).toMatchObject({ local: address, prefixlen: 24 });

      // split-include via the TUN, split-exclude on the original path
      const routes = JSON.parse((await nsExec(headend.clientNs, ['ip', '-json', 'route', 'show'])).stdout) as JsonRoute[];
      expect(routes.find((route) => route.dst === '198.18.10.0/24')?.dev).toBe(tunName);
      expect(routes.find((route) => route.dst === '198.18.20.0/24')?.dev).toBe(tunName);
      const exclude = routes.find((route) => route.dst === '198.18.10.192/26');
      expect(exclude?.dev).toBe('to-hub');
      expect(exclude?.gateway).toBe(headend.headendIp);
      const defaultRoute = routes.find((route) => route.dst === 'default');
      expect(defaultRoute?.dev).toBe('to-hub');

      // the tunnel DNS server goes through the TUN
      const dnsRoute = JSON.parse((await nsExec(headend.clientNs, ['ip', '-json', 'route', 'get', headend.dnsServer])).stdout) as JsonRoute[];
      expect(dnsRoute[0]?.dev).toBe(tunName);

      // ping and TCP to the host that is reachable only through the tunnel
      const ping = await nsExec(headend.clientNs, ['ping', '-c', '2', '-W', '2', headend.targetHost]);
      expect(ping.exitCode, ping.stdout + ping.stderr).toBe(0);
      const echo = await nsExec(headend.clientNs, [
        process.execPath,
        '-e',
        `const s = require('node:net').connect(${headend.targetTcpPort}, '${headend.targetHost}', () => s.end('through the tunnel'));
         let got = ''; s.on('data', (d) => (got += d)); s.on('close', () => { process.stdout.write(got); });
         s.setTimeout(5000, () => process.exit(3));`,
      ]);
      expect(echo.stdout).toBe('through the tunnel');

      // split DNS: the namespace's resolv.conf points at the forwarder and searches the default domain
      const resolvConf = await readFile(resolvConfPath(), 'utf8');
      expect(resolvConf).toMatch(/^nameserver 127\.0\.0\.1$/m);
      expect(resolvConf).toMatch(/^search .*corp\.example/m);

      // posture as ocserv saw it
      const events = await readFile(headend.connectEventsLog, 'utf8');
      const connectLine = events.split('\n').find((line) => line.includes('REASON=connect') && line.includes(`IP_REMOTE=${address}`));
      expect(connectLine).toContain('DEVICE_TYPE=e2e-rig-device');
      expect(connectLine).toContain('DEVICE_PLATFORM=linux-64');
      expect(connectLine).toContain('GROUPNAME=staff');
    } finally {
      const exit = await run.stop();
      allOutput.push(run.output());
      expect(exit.code, run.output()).toBe(0);
    }

    // logoff: the TUN and every route are gone, and ocserv logged the user off
    expect(await linkExists(tunName)).toBe(false);
    expect(await routeTable()).toBe(routesBefore);
    expect(await readFile(resolvConfPath(), 'utf8')).toBe(resolvConfBefore);
    const ocservLog = await readFile(headend.ocservLog, 'utf8');
    expect(ocservLog).toMatch(/received BYE packet/);
    expect(ocservLog).toMatch(/user disconnected \(reason: user disconnected/);
  });

  it('wrong password exits 3 and leaves nothing', async () => {
    const result = await runAcvpn(headend.clientNs, [...baseArgs(), '--authgroup', 'staff', '--cafile', headend.caFile, headend.url], 'not-the-password\n');
    allOutput.push(result.output);
    expect(result.code, result.output).toBe(3);
    const errors = errorRecords(result.records);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('AUTH_REJECTED');
    expect(errors[0]?.msg).toMatch(/alice/);
    expect(await linkExists(tunName)).toBe(false);
    expect(await routeTable()).toBe(routesBefore);
  });

  it('unknown group exits 4', async () => {
    const result = await runAcvpn(headend.clientNs, [...baseArgs(), '--authgroup', 'no-such-group', '--cafile', headend.caFile, headend.url], `${headend.password}\n`);
    allOutput.push(result.output);
    expect(result.code, result.output).toBe(4);
    const errors = errorRecords(result.records);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('AUTH_GROUP_NOT_FOUND');
    expect(errors[0]?.msg).toMatch(/staff/);
    expect(await linkExists(tunName)).toBe(false);
  });

  it('untrusted server exits 5 before login', async () => {
    const result = await runAcvpn(headend.clientNs, [...baseArgs(), '--authgroup', 'staff', headend.url], `${headend.password}\n`);
    allOutput.push(result.output);
    expect(result.code, result.output).toBe(5);
    const errors = errorRecords(result.records);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('SERVER_UNTRUSTED');
    expect(errors[0]?.msg).toMatch(/--cafile/);
    expect(errors[0]?.msg).toContain(headend.serverPin);
    // Nothing was sent: acvpn never got as far as an auth request.
    expect(result.records.some((record) => record.msg === 'sending auth request')).toBe(false);
    expect(await linkExists(tunName)).toBe(false);
  });

  it('pinned server key is accepted without a CA', async () => {
    // A wrong password proves the TLS step passed: the headend got as far as rejecting the login.
    const result = await runAcvpn(headend.clientNs, [...baseArgs(), '--authgroup', 'staff', '--servercert', headend.serverPin, headend.url], 'wrong\n');
    allOutput.push(result.output);
    expect(result.code, result.output).toBe(3);
  });

  it('missing password under non-interactive exits 3', async () => {
    const args = ['connect', '--user', headend.user, '--non-interactive', '--authgroup', 'staff', '--cafile', headend.caFile, headend.url];
    const result = await runAcvpn(headend.clientNs, args);
    allOutput.push(result.output);
    expect(result.code, result.output).toBe(3);
    expect(errorRecords(result.records)[0]?.code).toBe('AUTH_ANSWER_MISSING');
    expect(errorRecords(result.records)[0]?.msg).toMatch(/--passwd-on-stdin/);
  });

  it('group in the URL path selects it', async () => {
    // ocserv 1.1 answers 404 to a group path; acvpn then logs in at / and picks the group by name.
    // A wrong password shows that the group step passed (exit 3, not 4).
    const result = await runAcvpn(headend.clientNs, [...baseArgs(), '--cafile', headend.caFile, `${headend.url}/staff`], 'wrong\n');
    allOutput.push(result.output);
    expect(result.code, result.output).toBe(3);
    const unknown = await runAcvpn(headend.clientNs, [...baseArgs(), '--cafile', headend.caFile, `${headend.url}/nosuch`], 'wrong\n');
    allOutput.push(unknown.output);
    expect(unknown.code, unknown.output).toBe(4);
  });

  it('cleanup removes what a killed session left', async () => {
    const runDir = `${headend.stateDir}/client-run`;
    const run = startAcvpn(
      headend.clientNs,
      [...baseArgs(), '--run-dir', runDir, '--authgroup', 'staff', '--cafile', headend.caFile, headend.url],
      `${headend.password}\n`,
    );
    await run.waitFor((record) => record.event === 'state' && record.state === 'connected');
    run.child.kill('SIGKILL');
    await run.exited;
    allOutput.push(run.output());

    // The kernel removed the TUN device and its routes with the process; the exclude route on the
    // original path is still there until cleanup runs.
    expect(await linkExists(tunName)).toBe(false);
    expect(await routeTable()).not.toBe(routesBefore);

    const cleanup = await runAcvpn(headend.clientNs, ['cleanup', '--run-dir', runDir]);
    allOutput.push(cleanup.output);
    expect(cleanup.code, cleanup.output).toBe(0);
    expect(cleanup.records.find((record) => record.msg.startsWith('removed'))?.routes).toBe(3);
    expect(cleanup.records.find((record) => record.msg.startsWith('removed'))?.resolvConf).toBe('restored');
    expect(await routeTable()).toBe(routesBefore);
    expect(await readFile(resolvConfPath(), 'utf8')).toBe(resolvConfBefore);

    const again = await runAcvpn(headend.clientNs, ['cleanup', '--run-dir', runDir]);
    expect(again.code).toBe(0);
    expect(again.records.some((record) => record.msg === 'nothing to clean up')).toBe(true);
  });

  it('logs hold no password or cookie', async () => {
    const text = allOutput.join('\n');
    expect(text.length).toBeGreaterThan(1000);
    expect(text).not.toContain(headend.password);
    // ocserv cookies are base64 of 32 random bytes (44 characters). The only such strings acvpn
    // may print are public-key pins.
    const tokens = [...text.matchAll(/[A-Za-z0-9+/]{43}=/g)].map((match) => match[0]);
    const pins = tokens.filter((token) => `pin-sha256:${token}` === headend.serverPin);
    expect(tokens).toEqual(pins);
    expect(text).not.toMatch(/webvpn=[^;\s"]{8,}/);
    // The DTLS PSK (32 bytes) and the X-DTLS-Master-Secret (48 bytes) would show as long
    // lower-case hex runs; the device id is upper-case hex and may appear.
    expect(text.match(/[0-9a-f]{64,}/g) ?? []).toEqual([]);
    expect(text).toMatch(/DTLS established/);
  });
});
