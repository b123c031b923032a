// The control server and daemon methods with a fake session: the socket, framing, errors,
// subscriptions, prompts and the one-session rule. The real session is covered by
// test/integration/daemon.test.ts.

import { spawn } from 'node:child_process';
import { lstat, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/core/log.js';
import { AcvpnError } from '../../../src/core/errors.js';
import { Daemon, type ControlSession } from '../../../src/control/daemon.js';
import { ControlServer } from '../../../src/control/server.js';
import type { SessionContext } from '../../../src/control/session-factory.js';
import type { SessionSnapshot, SessionState } from '../../../src/session/session.js';

type Message = Record<string, any>;

/** A session that asks for a password through the broker, then stays connected until aborted. */
class FakeSession implements ControlSession {
  state: SessionState = 'idle';
  constructor(private readonly context: SessionContext, private readonly failWith?: AcvpnError) {}

  async run(signal: AbortSignal): Promise<void> {
    this.set('authenticating');
    // A large event, so that the slow-subscriber test fills buffers in a few rounds.
    this.context.emit({ event: 'banner', text: 'Welcome. '.repeat(4000) });
    const password = await this.context.broker.askField({ name: 'password', label: 'Password:', secret: true });
    if (this.failWith !== undefined || password !== 'right-password') {
      this.set('disconnected');
      throw this.failWith ?? new AcvpnError('AUTH_REJECTED', 'the headend rejected the credentials');
    }
    this.set('connected');
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    this.set('disconnected');
  }

  snapshot(): SessionSnapshot {
    return { state: this.state, channel: 'cstp', dnsServers: [], reconnects: 0, droppedWithoutChannel: 0, address: '10.0.0.2' };
  }

  private set(state: SessionState): void {
    this.state = state;
    this.context.emit({ event: 'state', state });
  }
}

/** A line-oriented test client that keeps every message it receives. */
class LineClient {
  readonly messages: Message[] = [];
  private buffer = '';
  private nextId = 1;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('utf8');
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) !== -1) {
        this.messages.push(JSON.parse(this.buffer.slice(0, newline)) as Message);
        this.buffer = this.buffer.slice(newline + 1);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => (this.closed = true));
  }

  static open(path: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path, () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  async call(method: string, params?: Record<string, unknown>): Promise<Message> {
    const id = this.nextId++;
    this.socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })}\n`);
    return this.waitFor((message) => message.id === id);
  }

  async waitFor(predicate: (message: Message) => boolean, timeoutMs = 3000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(predicate);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no matching message within ${timeoutMs} ms; received ${JSON.stringify(this.messages)}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  events(): Message[] {
    return this.messages.filter((message) => message.method === 'event').map((message) => message.params as Message);
  }

  close(): void {
    this.socket.destroy();
  }
}

let dir: string;
let socketPath: string;
let server: ControlServer | undefined;
let daemon: Daemon;
let failNext: AcvpnError | undefined;
const clients: LineClient[] = [];

async function open(): Promise<LineClient> {
  const client = await LineClient.open(socketPath);
  clients.push(client);
  return client;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acvpn-control-'));
  socketPath = join(dir, 'run', 'control.sock');
  failNext = undefined;
  daemon = new Daemon({
    stateDir: join(dir, 'state'),
    runDir: join(dir, 'run'),
    log: createLogger({ level: 'silent', json: true }),
    packageVersion: '0.0.0-test',
    answerTimeoutMs: 2000,
    createSession: async (_request, context) => new FakeSession(context, failNext),
  });
  server = await ControlServer.start({ socketPath, daemon, log: createLogger({ level: 'silent', json: true }), maxLineBytes: 1024, maxOutputBufferBytes: 64 * 1024 });
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await daemon.shutdown();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('control server', () => {
  it('creates the socket 0660 in a 0700 directory', async () => {
    expect((await stat(socketPath)).mode & 0o777).toBe(0o660);
    expect((await stat(join(dir, 'run'))).mode & 0o777).toBe(0o700);
  });

  it('answers status while idle', async () => {
    const client = await open();
    expect((await client.call('status')).result).toEqual({ state: 'idle' });
  });

  it('answers malformed requests and stays usable', async () => {
    const client = await open();
    client.socket.write('garbage\n');
    expect((await client.waitFor((message) => message.error?.code === -32700)).id).toBeNull();
    client.socket.write('[{"jsonrpc":"2.0","id":1,"method":"status"}]\n');
    await client.waitFor((message) => message.error?.code === -32600);
    expect((await client.call('no.such.method')).error.code).toBe(-32601);
    const wrong = await client.call('connect', { url: 42 });
    expect(wrong.error.code).toBe(-32602);
    expect(wrong.error.message).toMatch(/"url" must be a string/);
    expect((await client.call('status', { extra: true })).error.code).toBe(-32602);
    expect((await client.call('status')).result.state).toBe('idle');
  });

  it('closes a connection that sends an over-long line', async () => {
    const client = await open();
    client.socket.write(`${'x'.repeat(4096)}\n`);
    const error = await client.waitFor((message) => message.error !== undefined);
    expect(error.error.message).toMatch(/longer than 1024 bytes/);
    await client.waitFor(() => client.closed);
    const other = await open();
    expect((await other.call('status')).result.state).toBe('idle');
  });

  it('runs a login through prompt events', async () => {
    const watcher = await open();
    expect((await watcher.call('subscribe')).result).toEqual({ subscribed: true });
    await watcher.waitFor((message) => message.params?.event === 'state' && message.params.state === 'idle');

    const controller = await open();
    const connect = await controller.call('connect', { url: 'https://vpn.example.test', user: 'alice' });
    expect(connect.result.state).toBe('authenticating');
    const prompt = await watcher.waitFor((message) => message.params?.event === 'prompt');
    expect(prompt.params).toMatchObject({ name: 'password', secret: true, label: 'Password:' });

    expect((await controller.call('answer', { id: prompt.params.id, value: 'right-password' })).result).toEqual({ answered: prompt.params.id });
    await watcher.waitFor((message) => message.params?.event === 'state' && message.params.state === 'connected');

    const status = (await controller.call('status')).result;
    expect(status).toMatchObject({ state: 'connected', address: '10.0.0.2', url: 'https://vpn.example.test/', user: 'alice' });
    expect(JSON.stringify(watcher.messages)).not.toContain('right-password');

    const second = await controller.call('connect', { url: 'https://vpn.example.test' });
    expect(second.error.code).toBe(-32002);
    expect(second.error.data).toMatchObject({ code: 'USAGE', reason: 'SESSION_ACTIVE' });

    expect((await controller.call('disconnect')).result.state).toBe('disconnected');
    await watcher.waitFor((message) => message.params?.event === 'session-ended');
    expect((await controller.call('status')).result.state).toBe('idle');
  });

  it('reports the session error to a waiting connect', async () => {
    failNext = new AcvpnError('AUTH_REJECTED', 'the headend rejected the credentials');
    const watcher = await open();
    await watcher.call('subscribe');
    const controller = await open();
    const connect = controller.call('connect', { url: 'https://vpn.example.test', wait: true });
    const prompt = await watcher.waitFor((message) => message.params?.event === 'prompt');
    await controller.call('answer', { id: prompt.params.id, value: 'whatever' });
    const response = await connect;
    expect(response.error.code).toBe(-32003);
    expect(response.error.data).toMatchObject({ code: 'AUTH_REJECTED', exitCode: 3 });
    const status = (await controller.call('status')).result;
    expect(status).toMatchObject({ state: 'idle', lastEnd: { code: 'AUTH_REJECTED', exitCode: 3 } });
  });

  it('sends open prompts to a late subscriber', async () => {
    const controller = await open();
    await controller.call('connect', { url: 'https://vpn.example.test' });
    const late = await open();
    await late.call('subscribe');
    const prompt = await late.waitFor((message) => message.params?.event === 'prompt');
    expect(prompt.params.name).toBe('password');
  });

  it('drops a subscriber that does not read', async () => {
    const slow = await open();
    await slow.call('subscribe');
    slow.socket.pause();
    // Each connect and disconnect publishes about 36 KB of events: 60 rounds overflow the kernel's
    // socket buffer and then the daemon's limit of 64 KiB.
    const controller = await open();
    const rounds = 60;
    for (let round = 0; round < rounds; round += 1) {
      await controller.call('connect', { url: 'https://vpn.example.test' });
      await controller.call('disconnect');
    }
    slow.socket.resume();
    await slow.waitFor(() => slow.closed);
    const ended = slow.events().filter((event) => event.event === 'session-ended');
    expect(ended.length).toBeLessThan(rounds);
    expect((await controller.call('status')).result.state).toBe('idle');
  });

  it('saves settings and entries', async () => {
    const client = await open();
    const settings = (await client.call('settings.set', { netroam: false, trust: { ocsp: false } })).result;
    expect(settings).toMatchObject({ netroam: false, trust: { ocsp: false, blockUntrustedServers: true } });
    expect((await client.call('settings.get')).result).toEqual(settings);
    expect((await client.call('settings.set', { trust: { bogus: true } })).error.code).toBe(-32602);

    await client.call('entries.create', { name: 'work', url: 'vpn.example.test/staff', user: 'alice' });
    expect((await client.call('entries.list')).result.entries).toEqual([{ name: 'work', url: 'https://vpn.example.test/staff', user: 'alice' }]);
    expect((await client.call('entries.create', { name: 'bad', url: 'https://u:p@vpn.example.test' })).error.code).toBe(-32602);

    await client.call('connect', { entry: 'work' });
    expect((await client.call('status')).result).toMatchObject({ url: 'https://vpn.example.test/staff', user: 'alice' });
    await client.call('disconnect');
    expect((await client.call('entries.delete', { name: 'work' })).result.entries).toEqual([]);
  });

  it('refuses reconnect without a session', async () => {
    const client = await open();
    expect((await client.call('reconnect')).error.data).toMatchObject({ reason: 'NO_SESSION' });
  });
});

describe('socket path', () => {
  it('refuses to start while a daemon listens', async () => {
    const error = await ControlServer.start({ socketPath, daemon, log: createLogger({ level: 'silent', json: true }) }).catch((caught: unknown) => caught);
    expect(AcvpnError.is(error)).toBe(true);
    expect((error as AcvpnError).details.reason).toBe('DAEMON_RUNNING');
  });

  it('replaces a stale socket file', async () => {
    // A listener killed with SIGKILL leaves its socket file behind with nobody listening.
    const stalePath = join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stalePath)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise<void>((resolve) => child.once('close', () => resolve()));
    expect((await lstat(stalePath)).isSocket()).toBe(true);

    const second = await ControlServer.start({ socketPath: stalePath, daemon, log: createLogger({ level: 'silent', json: true }) });
    const client = await LineClient.open(stalePath);
    clients.push(client);
    expect((await client.call('status')).result.state).toBe('idle');
    await second.close();
    await expect(lstat(stalePath)).rejects.toThrow(/ENOENT/);
  });

  it('refuses a path that is not a socket', async () => {
    const filePath = join(dir, 'plain-file');
    await writeFile(filePath, 'x');
    await expect(ControlServer.start({ socketPath: filePath, daemon, log: createLogger({ level: 'silent', json: true }) })).rejects.toThrow(/is not a socket/);
  });
});
