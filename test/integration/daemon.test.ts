// `acvpn daemon` against a real ocserv 1.1. The daemon runs in the client namespace, and the test
// drives it only through its control socket. Covered: a login answered through prompt events,
// status and statistics of a live tunnel, the one-session rule, malformed requests, the socket's
// permissions, a trust decision, disconnect, and a clean stop on SIGTERM.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, lstat, mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACVPN_BIN } from './helpers/acvpn.js';
import { ControlConnection, waitForSocket, type Message } from './helpers/control-client.js';
import { nsExec, runCommand, sleep, startHeadend, type Headend } from './helpers/headend.js';

const tunName = 'acvpn-dm0';
let headend: Headend;
let dir: string;
let socketPath: string;
let daemon: ChildProcess | undefined;
let daemonExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let daemonOutput = '';
const connections: ControlConnection[] = [];
let watcher: ControlConnection;
let controller: ControlConnection;

async function open(): Promise<ControlConnection> {
  const connection = await ControlConnection.open(socketPath);
  connections.push(connection);
  return connection;
}

async function linkExists(name: string): Promise<boolean> {
  return (await nsExec(headend.clientNs, ['ip', 'link', 'show', 'dev', name])).exitCode === 0;
}

function connectParams(): Record<string, unknown> {
  return { url: headend.url, user: headend.user, group: 'staff', cafile: headend.caFile, interface: tunName };
}

/** Stops the daemon with SIGTERM (SIGKILL after 20 s) and returns how it exited. */
async function stopDaemon(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = daemon;
  if (child === undefined) return { code: null, signal: null };
  daemon = undefined;
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const result = await daemonExit;
  clearTimeout(timer);
  return result;
}

beforeAll(async () => {
  headend = await startHeadend({ prefix: 'acvpn-dm' });
  dir = await mkdtemp('/tmp/acvpn-dm-');
  // Searchable by everyone, so that the permission test reaches the socket's own mode.
  await chmod(dir, 0o755);
  socketPath = join(dir, 'control.sock');

  daemon = spawn(
    process.execPath,
    [
      ACVPN_BIN,
      'daemon',
      '--netns',
      headend.clientNs,
      '--socket',
      socketPath,
      '--run-dir',
      join(dir, 'run'),
      '--state-dir',
      join(dir, 'state'),
      '--json-logs',
      '--log-level',
      'debug',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  daemon.stdout?.on('data', (chunk: Buffer) => (daemonOutput += chunk.toString('utf8')));
  daemon.stderr?.on('data', (chunk: Buffer) => (daemonOutput += chunk.toString('utf8')));
  const child = daemon;
  daemonExit = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  await waitForSocket(socketPath, 20_000, () => `daemon output:\n${daemonOutput}`);

  watcher = await open();
  controller = await open();
});

afterAll(async () => {
  for (const connection of connections) connection.close();
  await stopDaemon();
  await headend?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('acvpn daemon against ocserv', () => {
  it('creates the socket with mode 0660', async () => {
    expect((await stat(socketPath)).mode & 0o777).toBe(0o660);
    expect((await stat(join(dir, 'run'))).mode & 0o777).toBe(0o700);
  });

  it('logs in through a password prompt event', async () => {
    expect((await watcher.call('subscribe')).result).toEqual({ subscribed: true });
    await watcher.waitForEvent((event) => event.event === 'state' && event.state === 'idle');

    const connect = await controller.call('connect', connectParams());
    expect(connect.error).toBeUndefined();

    const prompt = await watcher.waitForEvent((event) => event.event === 'prompt');
    expect(prompt.secret).toBe(true);
    expect(typeof prompt.id).toBe('string');
    const answered = await controller.call('answer', { id: prompt.id, value: headend.password });
    expect(answered.result).toEqual({ answered: prompt.id });

    await watcher.waitForEvent((event) => event.event === 'state' && event.state === 'connected', 60_000);
    const states = watcher.events().filter((event) => event.event === 'state').map((event) => event.state);
    expect(states).toEqual(expect.arrayContaining(['authenticating', 'connecting', 'connected']));
    expect(states.indexOf('authenticating')).toBeLessThan(states.indexOf('connected'));
    expect(watcher.events().find((event) => event.event === 'tunnel')).toMatchObject({ interface: tunName });
    expect(await linkExists(tunName)).toBe(true);
  });

  it('never sends the password to clients', () => {
    expect(JSON.stringify(watcher.messages)).not.toContain(headend.password);
    expect(JSON.stringify(controller.messages)).not.toContain(headend.password);
    expect(daemonOutput).not.toContain(headend.password);
  });

  it('reports address and channel in status', async () => {
    const status = (await controller.call('status')).result as Message;
    expect(status.state).toBe('connected');
    expect(status.address).toMatch(/^198\.19\.0\.\d+$/);
    expect(['dtls', 'cstp']).toContain(status.channel);
    expect(status.interface).toBe(tunName);
    expect(status.user).toBe(headend.user);
  });

  it('counts packets of a ping through the tunnel', async () => {
    const before = (await controller.call('stats')).result as Message;
    const ping = await nsExec(headend.clientNs, ['ping', '-c', '3', '-i', '0.2', '-W', '2', headend.targetHost], { timeoutMs: 15_000 });
    expect(ping.exitCode).toBe(0);
    const after = (await controller.call('stats')).result as Message;
    expect(after.totals.packetsSent - before.totals.packetsSent).toBeGreaterThanOrEqual(3);
    expect(after.totals.packetsReceived - before.totals.packetsReceived).toBeGreaterThanOrEqual(3);
    expect(after.totals.bytesSent).toBeGreaterThan(before.totals.bytesSent);
  });

  it('refuses a second connect with SESSION_ACTIVE', async () => {
    const second = await controller.call('connect', { ...connectParams(), password: 'not-used-here' });
    expect(second.error.code).toBe(-32002);
    expect(second.error.data).toMatchObject({ code: 'USAGE', reason: 'SESSION_ACTIVE' });
    expect((await controller.call('status')).result.state).toBe('connected');
  });

  it('answers malformed requests and stays alive', async () => {
    const client = await open();
    client.sendRaw('this is not json\n');
    expect((await client.waitFor((message) => message.error?.code === -32700)).id).toBeNull();
    expect((await client.call('no.such.method')).error.code).toBe(-32601);
    expect((await client.call('answer', { id: 42 })).error.code).toBe(-32602);
    expect((await client.call('status', { verbose: true })).error.code).toBe(-32602);
    client.sendRaw('[{"jsonrpc":"2.0","id":9,"method":"status"}]\n');
    expect((await client.waitFor((message) => message.error?.code === -32600)).id).toBeNull();

    const flooder = await open();
    flooder.sendRaw(`${'x'.repeat(1024 * 1024)}\n`);
    const tooLong = await flooder.waitFor((message) => message.error !== undefined);
    expect(tooLong.error.code).toBe(-32600);
    expect(tooLong.error.message).toMatch(/longer than 65536 bytes/);
    await flooder.waitForClose();

    expect((await client.call('status')).result.state).toBe('connected');
  });

  it('rejects a client of another uid', async () => {
    const script = `require('node:net').createConnection(${JSON.stringify(socketPath)})
      .on('connect', () => { console.log('CONNECTED'); process.exit(0); })
      .on('error', (error) => { console.log(error.code); process.exit(0); });`;
    const result = await runCommand(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout.trim()).toBe('EACCES');
  });

  it('reports status through acvpn status --json', async () => {
    const result = await runCommand([process.execPath, ACVPN_BIN, 'status', '--json', '--socket', socketPath]);
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ state: 'connected', interface: tunName });
  });

  it('reconnects on request with the cookie', async () => {
    const before = (await controller.call('status')).result as Message;
    const mark = watcher.messages.length;
    const isNewState = (state: string) => (message: Message): boolean =>
      watcher.messages.indexOf(message) >= mark && message.method === 'event' && (message.params as Message).state === state;
    const response = await controller.call('reconnect');
    expect(response.error).toBeUndefined();
    await watcher.waitFor(isNewState('reconnecting'));
    await watcher.waitFor(isNewState('connected'), 30_000);
    const after = (await controller.call('status')).result as Message;
    expect(after.address).toBe(before.address);
    expect(after.reconnects).toBe(Number(before.reconnects ?? 0) + 1);
  });

  it('disconnects and removes the TUN device', async () => {
    const response = await controller.call('disconnect');
    expect(response.result.state).toBe('disconnected');
    await watcher.waitForEvent((event) => event.event === 'state' && event.state === 'disconnected');
    await watcher.waitForEvent((event) => event.event === 'session-ended' && event.exitCode === 0);
    expect(await linkExists(tunName)).toBe(false);
    expect((await controller.call('status')).result.state).toBe('idle');
  });

  it('asks for a trust decision and aborts on abort', async () => {
    const { cafile: _unused, ...withoutCa } = connectParams();
    const response = await controller.call('connect', { ...withoutCa, password: headend.password, trust: { blockUntrustedServers: false, ocsp: false } });
    expect(response.error).toBeUndefined();
    const decision = await watcher.waitForEvent((event) => event.event === 'trust-decision');
    expect(decision.allowed).toEqual(expect.arrayContaining(['abort', 'continue']));
    expect(decision.pin).toBe(headend.serverPin);
    await controller.call('answer', { id: decision.id, value: 'abort' });
    const ended = await watcher.waitForEvent((event) => event.event === 'session-ended' && event.code !== undefined);
    expect(ended).toMatchObject({ code: 'SERVER_UNTRUSTED', exitCode: 5 });
    expect((await controller.call('status')).result).toMatchObject({ state: 'idle', lastEnd: { code: 'SERVER_UNTRUSTED' } });
  });

  it('acvpn connect hands the session to the daemon', async () => {
    const result = await runCommand(
      [process.execPath, ACVPN_BIN, 'connect', '--socket', socketPath, '--user', headend.user, '--passwd-on-stdin', '--non-interactive',
        '--authgroup', 'staff', '--cafile', headend.caFile, '--interface', tunName, '--json-logs', headend.url],
      { input: `${headend.password}\n`, timeoutMs: 60_000 },
    );
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ state: 'connected', interface: tunName });
    expect(result.stderr).not.toContain(headend.password);
    expect(await linkExists(tunName)).toBe(true);
    expect((await controller.call('disconnect')).result.state).toBe('disconnected');
    expect(await linkExists(tunName)).toBe(false);
  });

  it('connects with a password parameter and waits', async () => {
    const before = watcher.events().filter((event) => event.event === 'prompt').length;
    const response = await controller.call('connect', { ...connectParams(), password: headend.password, wait: true }, 60_000);
    expect(response.error).toBeUndefined();
    expect(response.result.state).toBe('connected');
    expect(watcher.events().filter((event) => event.event === 'prompt').length).toBe(before);
    expect(await linkExists(tunName)).toBe(true);
  });

  it('logs off on SIGTERM and removes the socket', async () => {
    const exit = await stopDaemon();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(watcher.events().filter((event) => event.event === 'session-ended').at(-1)).toMatchObject({ exitCode: 0 });
    expect(await linkExists(tunName)).toBe(false);
    await expect(lstat(socketPath)).rejects.toThrow(/ENOENT/);
    await sleep(100);
    const result = await runCommand([process.execPath, ACVPN_BIN, 'status', '--socket', socketPath]);
    expect(result.exitCode).toBe(6);
    expect(result.stderr).toContain(`no acvpn daemon is listening on ${socketPath}; start one with acvpn daemon`);
  });
});
