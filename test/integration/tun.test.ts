// The TUN device with the real addon and kernel, inside a network namespace of its own.
//
// The addon opens the device in the network namespace of the calling process, and Node has no
// setns(). So the device lives in a child agent started with "ip netns exec". The agent is a
// small ES module (agentSource below) that imports the compiled dist/net/tun/tun-device.js,
// reads one JSON request per line on stdin and writes one JSON reply per line on stdout. The test drives it step by step, configures the interface
// with "ip -n", and parses and builds every packet itself.
//
// Needs root, the built addon (npm run build:native) and iproute2. beforeAll compiles the
// TypeScript with tsc.

import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTunAddon } from '../../src/net/tun/tun-addon.js';

const run = promisify(execFile);

const namespacePrefix = 'acvpn-tun-';
const namespace = `${namespacePrefix}${process.pid}`;
const repository = fileURLToPath(new URL('../../', import.meta.url));
const compiledDevice = join(repository, 'dist/net/tun/tun-device.js');
const addonFile = join(repository, 'native/build/Release/acvpn_tun.node');
const nobody = 65534;

// ---- the agent inside the namespace ----

const agentSource = String.raw`
import { createInterface } from 'node:readline';
import dgram from 'node:dgram';

const { openTun } = await import(process.env.ACVPN_TUN_MODULE);
const devices = new Map();
const datagrams = [];
let listener;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(condition, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(5);
}

function stateOf(name) {
  const state = devices.get(name);
  if (state === undefined) throw new Error('agent: no open device ' + name);
  return state;
}

const handlers = {
  open({ name, maxPacketSize, maxBatch }) {
    const device = openTun({ name, maxPacketSize, maxBatch });
    devices.set(device.name, { device, batches: [], errors: [] });
    return { name: device.name };
  },
  read({ name, paused }) {
    const state = stateOf(name);
    if (paused) state.device.pause();
    state.device.onError((error) => state.errors.push({ code: error.code, message: error.message }));
    state.device.onPackets((buffer, lengths, count) => {
      // Copies, because the buffer is reused for the next batch.
      const packets = [];
      let offset = 0;
      for (let index = 0; index < count; index++) {
        packets.push(buffer.toString('hex', offset, offset + lengths[index]));
        offset += lengths[index];
      }
      state.batches.push(packets);
    });
    return {};
  },
  pause({ name }) {
    stateOf(name).device.pause();
    return {};
  },
  resume({ name }) {
    stateOf(name).device.resume();
    return {};
  },
  async collect({ name, packets = 0, errors = 0, timeoutMs = 5000 }) {
    const state = stateOf(name);
    await waitUntil(() => state.batches.flat().length >= packets && state.errors.length >= errors, timeoutMs);
    return { batches: state.batches.splice(0), errors: state.errors.splice(0), droppedOversize: state.device.droppedOversize };
  },
  write({ name, hex, offset, length }) {
    return { written: stateOf(name).device.write(Buffer.from(hex, 'hex'), offset, length) };
  },
  close({ name }) {
    const { device } = stateOf(name);
    device.close();
    device.close();
    return { writtenAfterClose: device.write(Buffer.alloc(20)) };
  },
  async sendUdp({ to, port, payloads }) {
    const socket = dgram.createSocket('udp4');
    await new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, resolve);
    });
    try {
      for (const hex of payloads) {
        await new Promise((resolve, reject) =>
          socket.send(Buffer.from(hex, 'hex'), port, to, (error) => (error ? reject(error) : resolve())),
        );
      }
      return { sourcePort: socket.address().port };
    } finally {
      socket.close();
    }
  },
  async listenUdp({ address }) {
    listener = dgram.createSocket('udp4');
    listener.on('message', (message, remote) =>
      datagrams.push({ hex: message.toString('hex'), address: remote.address, port: remote.port }),
    );
    await new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.bind(0, address, resolve);
    });
    return { port: listener.address().port };
  },
  async receiveUdp({ count, timeoutMs = 5000 }) {
    await waitUntil(() => datagrams.length >= count, timeoutMs);
    return { datagrams: datagrams.splice(0) };
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  const { id, op, args } = JSON.parse(line);
  let reply;
  try {
    reply = { id, value: await handlers[op](args) };
  } catch (error) {
    reply = { id, error: { name: error.name, code: error.code, message: error.message, details: error.details, exitCode: error.exitCode } };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
// stdin closed: the test is done or gone.
for (const { device } of devices.values()) device.close();
listener?.close();
`;

interface AgentFailure extends Error {
  code?: string;
  exitCode?: number;
  details?: Record<string, unknown>;
}

class Agent {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  #nextId = 1;
  #stderr = '';
  #exited = false;

  constructor(script: string, options: { uid?: number } = {}) {
    const dropRoot = options.uid === undefined ? [] : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups'];
    this.#child = spawn('ip', ['netns', 'exec', namespace, ...dropRoot, process.execPath, script], {
      env: { ...process.env, ACVPN_TUN_MODULE: pathToFileURL(compiledDevice).href },
    });
    this.#child.stderr.on('data', (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    createInterface({ input: this.#child.stdout }).on('line', (line) => this.#settle(line));
    this.#child.on('exit', (code, signal) => {
      this.#exited = true;
      const error = new Error(`agent exited (code ${code}, signal ${signal}): ${this.#stderr}`);
      for (const { reject } of this.#pending.values()) reject(error);
      this.#pending.clear();
    });
  }

  call<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`agent did not answer ${op} within ${timeoutMs} ms: ${this.#stderr}`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#child.stdin.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  }

  /** Ends stdin so the agent closes its devices and exits; kills it if it does not. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }

  #settle(line: string): void {
    const reply = JSON.parse(line) as { id: number; value?: unknown; error?: Record<string, unknown> };
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.error === undefined) {
      pending.resolve(reply.value);
      return;
    }
    const failure: AgentFailure = new Error(String(reply.error.message));
    failure.name = String(reply.error.name);
    failure.code = reply.error.code as string | undefined;
    failure.exitCode = reply.error.exitCode as number | undefined;
    failure.details = reply.error.details as Record<string, unknown> | undefined;
    pending.reject(failure);
  }
}

// ---- packets ----

/** RFC 1071 Internet checksum over `bytes`, returned as the 16-bit field value. */
function internetChecksum(...parts: Buffer[]): number {
  const bytes = Buffer.concat(parts);
  let sum = 0;
  for (let index = 0; index + 1 < bytes.length; index += 2) sum += bytes.readUInt16BE(index);
  if (bytes.length % 2 === 1) sum += (bytes[bytes.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

interface UdpDatagram {
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

/** Builds an IPv4 packet (20-byte header, TTL 64) carrying one UDP datagram, both checksums set. */
function buildIpv4Udp(datagram: UdpDatagram): Buffer {
  const udpLength = 8 + datagram.payload.length;
  const packet = Buffer.alloc(20 + udpLength);
  packet[0] = 0x45;
  packet.writeUInt16BE(packet.length, 2);
  packet.writeUInt16BE(0x1234, 4);
  packet.writeUInt16BE(0x4000, 6); // don't fragment
  packet[8] = 64;
  packet[9] = 17;
  ipv4Bytes(datagram.source).copy(packet, 12);
  ipv4Bytes(datagram.destination).copy(packet, 16);
  packet.writeUInt16BE(internetChecksum(packet.subarray(0, 20)), 10);

  const udp = packet.subarray(20);
  udp.writeUInt16BE(datagram.sourcePort, 0);
  udp.writeUInt16BE(datagram.destinationPort, 2);
  udp.writeUInt16BE(udpLength, 4);
  datagram.payload.copy(udp, 8);
  const pseudoHeader = Buffer.concat([packet.subarray(12, 20), Buffer.from([0, 17]), Buffer.alloc(2)]);
  pseudoHeader.writeUInt16BE(udpLength, 10);
  // A computed checksum of 0 is sent as 0xffff, because 0 means "no checksum" in IPv4 UDP.
  udp.writeUInt16BE(internetChecksum(pseudoHeader, udp) || 0xffff, 6);
  return packet;
}

interface ParsedIpv4Udp extends UdpDatagram {
  version: number;
  protocol: number;
  headerChecksumValid: boolean;
  totalLength: number;
}

function parseIpv4Udp(packet: Buffer): ParsedIpv4Udp {
  const headerLength = ((packet[0] ?? 0) & 0x0f) * 4;
  const udp = packet.subarray(headerLength);
  return {
    version: (packet[0] ?? 0) >> 4,
    protocol: packet[9] ?? -1,
    headerChecksumValid: internetChecksum(packet.subarray(0, headerLength)) === 0,
    totalLength: packet.readUInt16BE(2),
    source: [...packet.subarray(12, 16)].join('.'),
    destination: [...packet.subarray(16, 20)].join('.'),
    sourcePort: udp.readUInt16BE(0),
    destinationPort: udp.readUInt16BE(2),
    payload: Buffer.from(udp.subarray(8, udp.readUInt16BE(4))),
  };
}

function payloadOf(index: number, size: number): Buffer {
  const payload = Buffer.alloc(size, index);
  payload.write(`datagram ${index}`);
  return payload;
}

// ---- host set-up ----

async function ipInNamespace(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', ['-n', namespace, ...args]);
  return stdout;
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await ipInNamespace('link', 'show', 'dev', name);
    return true;
  } catch (error) {
    expect(String((error as { stderr?: string }).stderr)).toMatch(/does not exist/);
    return false;
  }
}

async function sweepStaleNamespaces(): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (name.startsWith(namespacePrefix)) await run('ip', ['netns', 'del', name]);
  }
}

// tsc emits even when other modules of the tree have type errors; only errors in the files
// this test runs should stop it.
async function compileTypeScript(): Promise<void> {
  const tsc = join(repository, 'node_modules/typescript/bin/tsc');
  let output = '';
  try {
    await run(process.execPath, [tsc, '-p', join(repository, 'tsconfig.json')], { cwd: repository });
  } catch (error) {
    output = String((error as { stdout?: string }).stdout);
  }
  const relevant = output.split('\n').filter((line) => /^src\/(net\/tun|core)\//.test(line));
  expect(relevant, 'tsc errors in the modules under test').toEqual([]);
  await stat(compiledDevice);
}

// ---- tests ----

describe('TUN device in a network namespace', () => {
  let workDirectory = '';
  let agentScript = '';
  let agent: Agent;

  beforeAll(async () => {
    expect(process.getuid?.(), 'this test creates network namespaces and must run as root').toBe(0);
    await stat(addonFile).catch(() => {
      throw new Error(`TUN addon missing at ${addonFile}: run "npm run build:native"`);
    });
    await compileTypeScript();

    await sweepStaleNamespaces();
    await run('ip', ['netns', 'add', namespace]);
    // No IPv6 in the namespace, so the kernel sends no router solicitations or MLD reports
    // into the TUN device and every packet read is one this test sent.
    await run('ip', ['netns', 'exec', namespace, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);

    // World-readable, because one agent runs as the unprivileged user "nobody".
    workDirectory = await mkdtemp(join(tmpdir(), 'acvpn-tun-test-'));
    await chmod(workDirectory, 0o755);
    agentScript = join(workDirectory, 'tun-agent.mjs');
    await writeFile(agentScript, agentSource, { mode: 0o644 });
    agent = new Agent(agentScript);
  });

  afterAll(async () => {
    await agent?.stop();
    await run('ip', ['netns', 'del', namespace]).catch(() => {});
    if (workDirectory !== '') await rm(workDirectory, { recursive: true, force: true });
  });

  /** Opens a device in the agent with address 10.200.<subnet>.1/24, and sets it up unless `up` is false. */
  async function openDevice(
    name: string,
    subnet: number,
    options: { maxPacketSize?: number; maxBatch?: number; up?: boolean } = {},
  ): Promise<string> {
    const opened = await agent.call<{ name: string }>('open', { name, maxPacketSize: options.maxPacketSize, maxBatch: options.maxBatch });
    expect(opened.name).toBe(name);
    await ipInNamespace('address', 'add', `10.200.${subnet}.1/24`, 'dev', name);
    if (options.up !== false) await ipInNamespace('link', 'set', 'dev', name, 'up');
    return name;
  }

  /** Sends UDP datagrams from inside the namespace while the device is paused, then reads them. */
  async function sendWhilePaused(name: string, to: string, payloads: Buffer[]) {
    await agent.call('read', { name, paused: true });
    const { sourcePort } = await agent.call<{ sourcePort: number }>('sendUdp', {
      to,
      port: 5555,
      payloads: payloads.map((payload) => payload.toString('hex')),
    });
    // The send callbacks fire once the kernel has taken the datagrams. The short wait lets any
    // transmit that the kernel deferred to a softirq reach the TUN queue before reading resumes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await agent.call('resume', { name });
    return { sourcePort };
  }

  it('rejects an interface name over 15 bytes', async () => {
    const failure = agent.call('open', { name: 'acvpn-tun-toolong' });
    await expect(failure).rejects.toMatchObject({ code: 'CONFIG_INVALID', exitCode: 2 });
    await expect(failure).rejects.toThrow('interface name "acvpn-tun-toolong" is 17 bytes long, but Linux allows at most 15');

    // The addon checks too, for callers that skip the TypeScript wrapper. Loading it from the
    // sources here (the agent loads it from dist/) checks the relative path from both places.
    const addon = loadTunAddon();
    expect(addon.maxNameLength).toBe(15);
    expect(() => addon.open('x'.repeat(16), 2048, 8)).toThrow(/"x{16}" is invalid: Linux allows at most 15 bytes/);
  });

  it('lets the kernel pick the name', async () => {
    const { name } = await agent.call<{ name: string }>('open', {});
    expect(name).toMatch(/^tun\d+$/);
    expect(await linkExists(name)).toBe(true);
    await agent.call('close', { name });
  });

  it('fills in a %d name template', async () => {
    const { name } = await agent.call<{ name: string }>('open', { name: 'acvpn%d' });
    expect(name).toBe('acvpn0');
    expect(await linkExists('acvpn0')).toBe(true);
    await agent.call('close', { name });
  });

  it('reads a burst of UDP datagrams in one batch', async () => {
    const name = await openDevice('acvpntun0', 0);
    const payloads = Array.from({ length: 16 }, (_, index) => payloadOf(index, 40 + index * 50));
    const { sourcePort } = await sendWhilePaused(name, '10.200.0.2', payloads);

    const { batches, errors } = await agent.call<{ batches: string[][]; errors: unknown[] }>('collect', { name, packets: 16 });
    expect(errors).toEqual([]);
    expect(batches.map((batch) => batch.length)).toEqual([16]);

    const packets = (batches[0] ?? []).map((hex) => parseIpv4Udp(Buffer.from(hex, 'hex')));
    packets.forEach((packet, index) => {
      expect(packet.version).toBe(4);
      expect(packet.protocol).toBe(17);
      expect(packet.headerChecksumValid).toBe(true);
      expect(packet.totalLength).toBe(28 + (payloads[index]?.length ?? 0));
      expect(packet.source).toBe('10.200.0.1');
      expect(packet.destination).toBe('10.200.0.2');
      expect(packet.sourcePort).toBe(sourcePort);
      expect(packet.destinationPort).toBe(5555);
      expect(packet.payload).toEqual(payloads[index]);
    });
    await agent.call('close', { name });
  });

  it('caps each batch at maxBatch', async () => {
    const name = await openDevice('acvpntun1', 1, { maxBatch: 4 });
    await sendWhilePaused(name, '10.200.1.2', Array.from({ length: 10 }, (_, index) => payloadOf(index, 100)));

    const { batches } = await agent.call<{ batches: string[][] }>('collect', { name, packets: 10 });
    expect(batches.map((batch) => batch.length)).toEqual([4, 4, 2]);
    const payloads = batches.flat().map((hex) => parseIpv4Udp(Buffer.from(hex, 'hex')).payload);
    expect(payloads).toEqual(Array.from({ length: 10 }, (_, index) => payloadOf(index, 100)));
    await agent.call('close', { name });
  });

  it('drops and counts packets over maxPacketSize', async () => {
    const name = await openDevice('acvpntun2', 2, { maxPacketSize: 256 });
    // IP packets of 128, 528 and 256 bytes: the middle one does not fit a 256-byte slot.
    const payloads = [payloadOf(0, 100), payloadOf(1, 500), payloadOf(2, 228)];
    await sendWhilePaused(name, '10.200.2.2', payloads);

    const result = await agent.call<{ batches: string[][]; droppedOversize: number }>('collect', { name, packets: 2 });
    const received = result.batches.flat().map((hex) => parseIpv4Udp(Buffer.from(hex, 'hex')).payload);
    expect(received).toEqual([payloads[0], payloads[2]]);
    expect(result.droppedOversize).toBe(1);
    await agent.call('close', { name });
  });

  it('writes packets that reach a local UDP socket', async () => {
    const name = await openDevice('acvpntun3', 3);
    const { port } = await agent.call<{ port: number }>('listenUdp', { address: '10.200.3.1' });
    const datagram = { source: '10.200.3.2', destination: '10.200.3.1', sourcePort: 40000, destinationPort: port };
    const first = buildIpv4Udp({ ...datagram, payload: Buffer.from('first packet written into the TUN device') });
    const second = buildIpv4Udp({ ...datagram, payload: Buffer.from('second, from offset 8 of a larger buffer') });
    // The second packet sits behind 8 bytes of headroom, as a CSTP frame would carry it.
    const framed = Buffer.concat([Buffer.alloc(8, 0xaa), second, Buffer.alloc(4, 0xbb)]);

    expect(await agent.call('write', { name, hex: first.toString('hex') })).toEqual({ written: true });
    expect(await agent.call('write', { name, hex: framed.toString('hex'), offset: 8, length: second.length })).toEqual({ written: true });

    const { datagrams } = await agent.call<{ datagrams: { hex: string; address: string; port: number }[] }>('receiveUdp', { count: 2 });
    expect(datagrams.map((received) => Buffer.from(received.hex, 'hex').toString())).toEqual([
      'first packet written into the TUN device',
      'second, from offset 8 of a larger buffer',
    ]);
    for (const received of datagrams) {
      expect(received.address).toBe('10.200.3.2');
      expect(received.port).toBe(40000);
    }
    await agent.call('close', { name });
  });

  it('drops a packet that is not IP and keeps working', async () => {
    const name = await openDevice('acvpntun4', 4);
    await agent.call('read', { name });
    expect(await agent.call('write', { name, hex: Buffer.alloc(28).toString('hex') })).toEqual({ written: false });

    await agent.call('sendUdp', { to: '10.200.4.2', port: 7, payloads: [Buffer.from('still reading').toString('hex')] });
    const { batches, errors } = await agent.call<{ batches: string[][]; errors: unknown[] }>('collect', { name, packets: 1 });
    expect(errors).toEqual([]);
    expect(parseIpv4Udp(Buffer.from(batches.flat()[0] ?? '', 'hex')).payload.toString()).toBe('still reading');

    const valid = buildIpv4Udp({ source: '10.200.4.2', destination: '10.200.4.1', sourcePort: 1, destinationPort: 9, payload: Buffer.from('x') });
    expect(await agent.call('write', { name, hex: valid.toString('hex') })).toEqual({ written: true });
    await agent.call('close', { name });
  });

  it('drops packets while the link is down', async () => {
    const name = await openDevice('acvpntun5', 5, { up: false });
    const packet = buildIpv4Udp({ source: '10.200.5.2', destination: '10.200.5.1', sourcePort: 1, destinationPort: 2, payload: Buffer.from('x') });
    expect(await agent.call('write', { name, hex: packet.toString('hex') })).toEqual({ written: false });
    await agent.call('close', { name });
  });

  it('reports a name held by another open device', async () => {
    const name = await openDevice('acvpntun6', 6, { up: false });
    const failure = agent.call('open', { name });
    await expect(failure).rejects.toMatchObject({ code: 'ENV_COMMAND_FAILED', details: { interface: name, errno: 'EBUSY' } });
    await expect(failure).rejects.toThrow('TUN interface acvpntun6 is already in use by another process (EBUSY)');
    await agent.call('close', { name });
  });

  it('reports a name held by another kind of interface', async () => {
    const failure = agent.call('open', { name: 'lo' });
    await expect(failure).rejects.toMatchObject({ code: 'ENV_COMMAND_FAILED', details: { errno: 'EINVAL' } });
    await expect(failure).rejects.toThrow(/TUN interface lo \(EINVAL\): an interface of that name exists and is not a TUN device/);
  });

  it('reports an interface deleted while reading', async () => {
    const name = await openDevice('acvpntun7', 7);
    await agent.call('read', { name });
    await ipInNamespace('link', 'delete', 'dev', name);

    const { errors } = await agent.call<{ errors: { code: string; message: string }[] }>('collect', { name, errors: 1 });
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('ENV_COMMAND_FAILED');
    expect(errors[0]?.message).toContain('TUN interface acvpntun7 was deleted while in use (EBADFD)');

    const write = agent.call('write', { name, hex: buildIpv4Udp({ source: '10.200.7.2', destination: '10.200.7.1', sourcePort: 1, destinationPort: 2, payload: Buffer.from('x') }).toString('hex') });
    await expect(write).rejects.toMatchObject({ code: 'ENV_COMMAND_FAILED', details: { errno: 'EBADFD', syscall: 'write' } });
    await agent.call('close', { name });
  });

  it('deletes the interface on close', async () => {
    const name = await openDevice('acvpntun8', 8);
    await agent.call('read', { name });
    expect(await linkExists(name)).toBe(true);

    const { writtenAfterClose } = await agent.call<{ writtenAfterClose: boolean }>('close', { name });
    expect(writtenAfterClose).toBe(false);
    expect(await linkExists(name)).toBe(false);
  });

  it('reports a user without CAP_NET_ADMIN', async () => {
    const unprivileged = new Agent(agentScript, { uid: nobody });
    try {
      const failure = unprivileged.call('open', { name: 'acvpntun9' });
      await expect(failure).rejects.toMatchObject({ code: 'ENV_NOT_ROOT', exitCode: 7, details: { errno: 'EPERM', syscall: 'ioctl' } });
      await expect(failure).rejects.toThrow(/creating TUN interface acvpntun9 was not permitted \(EPERM\)/);
    } finally {
      await unprivileged.stop();
    }
    expect(await linkExists('acvpntun9')).toBe(false);
  });
});
