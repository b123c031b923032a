// The forwarder against two small DNS servers on 127.0.0.1: "tunnel" answers every name with
// 10.99.0.1 and "host" with 192.0.2.1, so an answer shows which server produced it, and each
// server's query log shows which names reached it.

import { createSocket } from 'node:dgram';
import { createConnection } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/core/log.js';
import { DnsForwarder, type DnsForwarderOptions } from '../../../src/net/dns/forwarder.js';
import type { DnsRouting } from '../../../src/net/dns/routing.js';
import { startDnsServer, type DnsServerHandle } from '../../integration/helpers/dns-server.js';

const silent = createLogger({ level: 'silent', json: true });
const tunnelMarker = '10.99.0.1';
const hostMarker = '192.0.2.1';
const names = ['a.corp.example', 'CORP.example', 'x.lab.internal', 'notcorp.example', 'www.public.test', 'big.corp.example', 'slow.corp.example'];
const split: DnsRouting = { mode: 'split', tunnelDomains: ['corp.example', 'lab.internal'], searchDomains: [], warnings: [] };

function table(address: string): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name.toLowerCase(), address]));
}

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  const results = await Promise.allSettled(cleanups.splice(0).reverse().map((cleanup) => cleanup()));
  const failure = results.find((result) => result.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
});

async function server(address: string, extra: { truncateOverUdp?: string[]; ignore?: string[] } = {}): Promise<DnsServerHandle> {
  const handle = await startDnsServer({ address: '127.0.0.1', port: 0, records: table(address), ...extra });
  cleanups.push(() => handle.stop());
  return handle;
}

async function forwarder(options: Partial<DnsForwarderOptions> & Pick<DnsForwarderOptions, 'tunnelServers' | 'hostServers'>): Promise<{ forwarder: DnsForwarder; port: number }> {
  const instance = new DnsForwarder({ listenAddress: '127.0.0.1', listenPort: 0, routing: split, log: silent, timeoutMs: 300, ...options });
  const { port } = await instance.start();
  cleanups.push(() => instance.stop());
  return { forwarder: instance, port };
}

function encodeQuery(name: string, id: number, type: dnsPacket.RecordType = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
}

// Sends raw bytes and returns the first datagram that comes back, or undefined after `timeoutMs`.
function sendUdp(port: number, message: Buffer, timeoutMs = 1500): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.on('message', (answer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    });
    socket.send(message, port, '127.0.0.1');
  });
}

async function queryUdp(port: number, name: string, id = 0x1234): Promise<dnsPacket.DecodedPacket> {
  const answer = await sendUdp(port, encodeQuery(name, id));
  if (answer === undefined) throw new Error(`no UDP answer for ${name}`);
  return dnsPacket.decode(answer);
}

// Sends several length-prefixed messages in one write and collects as many answers.
function queryTcp(port: number, messages: Buffer[], expected = messages.length): Promise<dnsPacket.DecodedPacket[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const answers: dnsPacket.DecodedPacket[] = [];
    let received: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`got ${answers.length} of ${expected} TCP answers`));
    }, 3000);
    socket.on('error', reject);
    socket.on('connect', () => {
      socket.write(Buffer.concat(messages.map((message) => Buffer.concat([Buffer.from([message.length >> 8, message.length & 0xff]), message]))));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        const length = received.readUInt16BE(0);
        answers.push(dnsPacket.decode(received.subarray(2, 2 + length)));
        received = received.subarray(2 + length);
      }
      if (answers.length >= expected) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answers);
      }
    });
  });
}

function firstAddress(packet: dnsPacket.DecodedPacket): unknown {
  return packet.answers?.[0]?.data;
}

function receivedNames(handle: DnsServerHandle): string[] {
  return handle.queries().map((query) => query.name);
}

describe('DnsForwarder', () => {
  it('sends split names to the tunnel and the rest to the host', async () => {
    const tunnel = await server(tunnelMarker);
    const host = await server(hostMarker);
    const { forwarder: instance, port } = await forwarder({
      tunnelServers: [{ address: '127.0.0.1', port: tunnel.port }],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });

    const answers = new Map<string, dnsPacket.DecodedPacket>();
    for (const name of ['a.corp.example', 'CORP.example', 'x.lab.internal', 'notcorp.example', 'www.public.test']) {
      answers.set(name, await queryUdp(port, name, 0x4242));
    }

    expect(firstAddress(answers.get('a.corp.example')!)).toBe(tunnelMarker);
    expect(firstAddress(answers.get('CORP.example')!)).toBe(tunnelMarker);
    expect(firstAddress(answers.get('x.lab.internal')!)).toBe(tunnelMarker);
    expect(firstAddress(answers.get('notcorp.example')!)).toBe(hostMarker);
    expect(firstAddress(answers.get('www.public.test')!)).toBe(hostMarker);
    for (const answer of answers.values()) expect(answer.id).toBe(0x4242);
    expect(receivedNames(tunnel)).toEqual(['a.corp.example', 'corp.example', 'x.lab.internal']);
    expect(receivedNames(host)).toEqual(['notcorp.example', 'www.public.test']);
    expect(instance.stats()).toMatchObject({ tunnelQueries: 3, hostQueries: 2, malformed: 0, failed: 0 });
  });

  it('sends every name to the tunnel in all-tunnel mode', async () => {
    const tunnel = await server(tunnelMarker);
    const host = await server(hostMarker);
    const { port } = await forwarder({
      routing: { mode: 'all-tunnel', tunnelDomains: [], searchDomains: [], warnings: [] },
      tunnelServers: [{ address: '127.0.0.1', port: tunnel.port }],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });

    expect(firstAddress(await queryUdp(port, 'www.public.test'))).toBe(tunnelMarker);
    expect(firstAddress(await queryUdp(port, 'a.corp.example'))).toBe(tunnelMarker);
    expect(host.queries()).toEqual([]);
  });

  it('answers TCP clients with length-prefixed answers', async () => {
    const tunnel = await server(tunnelMarker);
    const host = await server(hostMarker);
    const { port } = await forwarder({
      tunnelServers: [{ address: '127.0.0.1', port: tunnel.port }],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });

    const answers = await queryTcp(port, [encodeQuery('a.corp.example', 1), encodeQuery('www.public.test', 2)]);

    const byId = new Map(answers.map((answer) => [answer.id, answer]));
    expect(firstAddress(byId.get(1)!)).toBe(tunnelMarker);
    expect(firstAddress(byId.get(2)!)).toBe(hostMarker);
  });

  it('survives malformed packets and counts them', async () => {
    const tunnel = await server(tunnelMarker);
    const host = await server(hostMarker);
    const { forwarder: instance, port } = await forwarder({
      tunnelServers: [{ address: '127.0.0.1', port: tunnel.port }],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });
    const noQuestion = dnsPacket.encode({ type: 'query', id: 7, questions: [] });
    const response = dnsPacket.encode({ type: 'response', id: 8, questions: [{ type: 'A', name: 'a.corp.example' }] });
    const cutQuery = encodeQuery('a.corp.example', 9).subarray(0, 20);
    const claimsManyQuestions = Buffer.from(encodeQuery('a.corp.example', 10));
    claimsManyQuestions.writeUInt16BE(0xffff, 4);
    // A name whose compression pointer points at itself.
    const pointerLoop = Buffer.concat([Buffer.from([0, 11, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    const garbage = [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(600, 0xff), noQuestion, response, cutQuery, claimsManyQuestions, pointerLoop];

    for (const message of garbage) expect(await sendUdp(port, message, 150)).toBeUndefined();
    const tcpAnswers = await queryTcp(port, [Buffer.from([9, 9, 9]), encodeQuery('a.corp.example', 11)], 1);

    expect(tcpAnswers.map((answer) => answer.id)).toEqual([11]);
    expect(firstAddress(await queryUdp(port, 'a.corp.example'))).toBe(tunnelMarker);
    // The zero-length UDP datagram counts too.
    expect(instance.stats().malformed).toBe(garbage.length + 1);
    expect(receivedNames(tunnel)).toEqual(['a.corp.example', 'a.corp.example']);
    expect(host.queries()).toEqual([]);
  });

  it('passes TC to UDP clients and retries TCP clients over TCP', async () => {
    const tunnel = await server(tunnelMarker, { truncateOverUdp: ['big.corp.example'] });
    const host = await server(hostMarker);
    const { forwarder: instance, port } = await forwarder({
      tunnelServers: [{ address: '127.0.0.1', port: tunnel.port }],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });

    const overUdp = await queryUdp(port, 'big.corp.example');
    const [overTcp] = await queryTcp(port, [encodeQuery('big.corp.example', 77)]);

    expect(overUdp.flag_tc).toBe(true);
    expect(overUdp.answers).toEqual([]);
    expect(overTcp?.flag_tc).toBe(false);
    expect(overTcp?.id).toBe(77);
    expect(firstAddress(overTcp!)).toBe(tunnelMarker);
    expect(tunnel.queries().map((query) => query.transport)).toEqual(['udp', 'udp', 'tcp']);
    expect(instance.stats().tcpRetries).toBe(1);
  });

  it('retries on the next server after a timeout', async () => {
    const silentServer = await server(tunnelMarker, { ignore: ['slow.corp.example'] });
    const tunnel = await server(tunnelMarker);
    const host = await server(hostMarker);
    const { forwarder: instance, port } = await forwarder({
      tunnelServers: [
        { address: '127.0.0.1', port: silentServer.port },
        { address: '127.0.0.1', port: tunnel.port },
      ],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });

    const answer = await queryUdp(port, 'slow.corp.example');

    expect(firstAddress(answer)).toBe(tunnelMarker);
    expect(receivedNames(silentServer)).toEqual(['slow.corp.example']);
    expect(receivedNames(tunnel)).toEqual(['slow.corp.example']);
    expect(instance.stats().upstreamFailures).toBe(1);
  });

  it('moves on at once when a server port is closed', async () => {
    const closed = await server(tunnelMarker);
    await closed.stop();
    const tunnel = await server(tunnelMarker);
    const { forwarder: instance, port } = await forwarder({
      timeoutMs: 5000,
      tunnelServers: [
        { address: '127.0.0.1', port: closed.port },
        { address: '127.0.0.1', port: tunnel.port },
      ],
      hostServers: [],
    });

    const started = Date.now();
    const answer = await queryUdp(port, 'a.corp.example');

    expect(firstAddress(answer)).toBe(tunnelMarker);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(instance.stats().upstreamFailures).toBe(1);
  });

  it('answers SERVFAIL when no server answers', async () => {
    const silentServer = await server(tunnelMarker, { ignore: ['slow.corp.example'] });
    const { forwarder: instance, port } = await forwarder({
      tunnelServers: [{ address: '127.0.0.1', port: silentServer.port }],
      hostServers: [],
    });

    const failed = await queryUdp(port, 'slow.corp.example', 0x0abc);
    const noHostServer = await queryUdp(port, 'www.public.test', 0x0abd);

    expect(failed.rcode).toBe('SERVFAIL');
    expect(failed.id).toBe(0x0abc);
    expect(failed.questions).toEqual([{ name: 'slow.corp.example', type: 'A', class: 'IN' }]);
    expect(noHostServer.rcode).toBe('SERVFAIL');
    expect(receivedNames(silentServer)).toEqual(['slow.corp.example', 'slow.corp.example']);
    expect(instance.stats()).toMatchObject({ failed: 2, upstreamFailures: 2 });
  });

  it('drops queries beyond the in-flight limit', async () => {
    const silentServer = await server(tunnelMarker, { ignore: ['slow.corp.example'] });
    const host = await server(hostMarker);
    const { forwarder: instance, port } = await forwarder({
      maxInFlight: 1,
      timeoutMs: 400,
      tunnelServers: [{ address: '127.0.0.1', port: silentServer.port }],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });

    const slow = sendUdp(port, encodeQuery('slow.corp.example', 1), 2000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const dropped = await sendUdp(port, encodeQuery('www.public.test', 2), 200);

    expect(dropped).toBeUndefined();
    expect(instance.stats().droppedInFlightFull).toBe(1);
    expect(host.queries()).toEqual([]);
    expect(dnsPacket.decode((await slow)!).rcode).toBe('SERVFAIL');
    expect(firstAddress(await queryUdp(port, 'www.public.test'))).toBe(hostMarker);
  });

  it('follows updated tunnel routing', async () => {
    const tunnel = await server(tunnelMarker);
    const host = await server(hostMarker);
    const { forwarder: instance, port } = await forwarder({
      routing: { mode: 'none', tunnelDomains: [], searchDomains: [], warnings: [] },
      tunnelServers: [],
      hostServers: [{ address: '127.0.0.1', port: host.port }],
    });

    const before = await queryUdp(port, 'a.corp.example');
    instance.updateTunnel(split, [{ address: '127.0.0.1', port: tunnel.port }]);
    const after = await queryUdp(port, 'a.corp.example');

    expect(firstAddress(before)).toBe(hostMarker);
    expect(firstAddress(after)).toBe(tunnelMarker);
  });

  it('skips its own address in the host list', async () => {
    const host = await server(hostMarker);
    // Learn a free port, then listen on it again with that port in the host list.
    const probe = new DnsForwarder({ listenAddress: '127.0.0.1', listenPort: 0, routing: split, tunnelServers: [], hostServers: [], log: silent });
    const { port: freePort } = await probe.start();
    await probe.stop();
    const { forwarder: instance, port } = await forwarder({
      listenPort: freePort,
      tunnelServers: [],
      hostServers: [
        { address: '127.0.0.1', port: freePort },
        { address: '127.0.0.1', port: host.port },
      ],
    });

    const answer = await queryUdp(port, 'www.public.test');

    expect(firstAddress(answer)).toBe(hostMarker);
    // A query sent to itself would count as a second host query.
    expect(instance.stats()).toMatchObject({ hostQueries: 1, upstreamFailures: 0 });
  });

  it('closes every socket on stop', async () => {
    const silentServer = await server(tunnelMarker, { ignore: ['slow.corp.example'] });
    // Handles closed by the previous test's cleanup are released a moment after their callbacks.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = countResources();
    const instance = new DnsForwarder({
      listenAddress: '127.0.0.1',
      listenPort: 0,
      routing: split,
      tunnelServers: [{ address: '127.0.0.1', port: silentServer.port }],
      hostServers: [],
      timeoutMs: 10_000,
      log: silent,
    });
    const { port } = await instance.start();
    const pending = sendUdp(port, encodeQuery('slow.corp.example', 1), 300);
    const tcpClient = createConnection({ port, host: '127.0.0.1' });
    tcpClient.on('error', () => undefined);
    await new Promise((resolve) => tcpClient.once('connect', resolve));
    await new Promise((resolve) => setTimeout(resolve, 100));

    await instance.stop();
    await new Promise((resolve) => tcpClient.once('close', resolve));
    await pending;
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(countResources()).toEqual(before);
    expect(await sendUdp(port, encodeQuery('a.corp.example', 2), 200)).toBeUndefined();
  });
});

function countResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) {
    if (name === 'UDPWrap' || name === 'TCPServerWrap' || name === 'TCPSocketWrap') {
      counts[name] = (counts[name] ?? 0) + 1;
    }
  }
  return counts;
}
