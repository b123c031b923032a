// A small DNS forwarder for split DNS. It listens on UDP and TCP on a local address. Names under
// the tunnel's domains go to the tunnel DNS servers, and all other names go to the resolvers the
// host had before (routing.ts has the rules).
//
// Path of one query:
//   1. A client query arrives over UDP (one datagram) or TCP (2-byte length prefix, RFC 1035
//      4.2.2, several queries per connection allowed).
//   2. It is parsed with dns-packet. Anything that does not parse as a query with at least one
//      question is dropped and counted; the forwarder never answers it.
//   3. The first question's name picks the upstream kind, and the in-flight limit is checked.
//   4. The query bytes are forwarded unchanged except for a fresh random id, over UDP from a new
//      socket connected to the server, so each query also gets its own source port. The answer
//      must come from that server and match the id and the question section.
//   5. On a timeout or an ICMP error the query is sent once more, to the next server of the same
//      kind. A truncated answer (TC bit) is passed on to a UDP client, which then retries over
//      TCP. For a TCP client the forwarder repeats the query over TCP to the same server.
//   6. The client gets the answer with its own id put back, or SERVFAIL when every attempt failed.
//
// The forwarder rewrites only the 16-bit id, so EDNS options, DNSSEC records and record types
// that dns-packet does not know pass through untouched.

import { randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { isIP, createConnection, createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { DecodedPacket, Question } from 'dns-packet';
import { AcvpnError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { chooseUpstream, type DnsRouting, type UpstreamKind } from './routing.js';

export interface DnsUpstream {
  address: string;
  port: number;
}

export interface DnsForwarderOptions {
  /** Address to listen on; 127.0.0.1 when omitted. */
  listenAddress?: string;
  /** UDP and TCP port to listen on; 53 when omitted, 0 picks a free port. */
  listenPort?: number;
  routing: DnsRouting;
  /** The tunnel's DNS servers (X-CSTP-DNS), tried in order. */
  tunnelServers: DnsUpstream[];
  /** The resolvers the host used before the tunnel came up, tried in order. */
  hostServers: DnsUpstream[];
  /** Milliseconds to wait for one upstream answer before trying the next server; 2000 when omitted. */
  timeoutMs?: number;
  /** Queries waiting for an upstream answer; more are dropped. 256 when omitted. */
  maxInFlight?: number;
  /** Open TCP client connections; more are closed at once. 64 when omitted. */
  maxTcpConnections?: number;
  /** Milliseconds a TCP client connection may stay idle; 10000 when omitted. */
  tcpIdleTimeoutMs?: number;
  log: Logger;
}

export interface DnsForwarderStats {
  /** Queries forwarded to the tunnel DNS servers. */
  tunnelQueries: number;
  /** Queries forwarded to the host resolvers. */
  hostQueries: number;
  /** Client messages that were not a parsable query with a question, dropped unanswered. */
  malformed: number;
  /** Queries dropped because maxInFlight queries were already waiting. */
  droppedInFlightFull: number;
  /** Queries answered with SERVFAIL because no upstream answered. */
  failed: number;
  /** Upstream attempts that timed out or got an ICMP error. */
  upstreamFailures: number;
  /** Queries repeated over TCP after a truncated UDP answer. */
  tcpRetries: number;
}

type ClientTransport = 'udp' | 'tcp';

interface ParsedQuery {
  id: number;
  flags: number;
  questions: Question[];
}

type ExchangeResult = { answer: Buffer; truncated: boolean } | { failure: string };

const dnsHeaderLength = 12;
const truncatedBit = 0x0200;
const responseBit = 0x8000;
const servfail = 2;

/** Wraps a list of addresses from resolv.conf or X-CSTP-DNS as upstreams on `port`. */
export function upstreamsFromAddresses(addresses: string[], port = 53): DnsUpstream[] {
  return addresses.map((address) => ({ address, port }));
}

export class DnsForwarder {
  private readonly listenAddress: string;
  private readonly listenPort: number;
  private routing: DnsRouting;
  private tunnelServers: DnsUpstream[];
  private readonly hostServers: DnsUpstream[];
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly maxTcpConnections: number;
  private readonly tcpIdleTimeoutMs: number;
  private readonly log: Logger;

  private udpServer: UdpSocket | undefined;
  private tcpServer: TcpServer | undefined;
  private readonly tcpClients = new Set<TcpSocket>();
  private inFlight = 0;
  // Aborted by stop(): every pending upstream exchange closes its socket and timer.
  private stopping = new AbortController();
  // Servers that have been logged as failing; cleared when one answers, so a flapping server
  // logs one warning per outage instead of one per query.
  private readonly failingServers = new Set<string>();
  private readonly counters: DnsForwarderStats = {
    tunnelQueries: 0,
    hostQueries: 0,
    malformed: 0,
    droppedInFlightFull: 0,
    failed: 0,
    upstreamFailures: 0,
    tcpRetries: 0,
  };

  constructor(options: DnsForwarderOptions) {
    this.listenAddress = options.listenAddress ?? '127.0.0.1';
    this.listenPort = options.listenPort ?? 53;
    if (isIP(this.listenAddress) === 0) {
      throw new AcvpnError('CONFIG_INVALID', `invalid DNS forwarder listen address ${JSON.stringify(this.listenAddress)}: expected an IP address`);
    }
    this.routing = options.routing;
    this.tunnelServers = options.tunnelServers;
    this.log = options.log.child({ component: 'dns' });
    this.hostServers = this.withoutSelf(options.hostServers);
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.maxInFlight = options.maxInFlight ?? 256;
    this.maxTcpConnections = options.maxTcpConnections ?? 64;
    this.tcpIdleTimeoutMs = options.tcpIdleTimeoutMs ?? 10_000;
  }

  /** Binds the UDP socket and the TCP listener. Raises AcvpnError 'ENV_COMMAND_FAILED' when the address is in use. */
  async start(): Promise<DnsUpstream> {
    // With port 0 (tests) the TCP listener reuses the port the kernel picked for UDP, which may be
    // taken on TCP already; pick again a few times. A fixed port (53) is tried once.
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.startOnce();
      } catch (error) {
        const inUse = AcvpnError.is(error) && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
        if (!inUse || this.listenPort !== 0 || attempt >= 5) throw error;
      }
    }
  }

  private async startOnce(): Promise<DnsUpstream> {
    if (this.udpServer !== undefined) throw new AcvpnError('INTERNAL', 'DNS forwarder already started');
    this.stopping = new AbortController();

    const udp = createSocket(isIP(this.listenAddress) === 6 ? 'udp6' : 'udp4');
    udp.on('message', (message, remote) => this.onUdpQuery(udp, message, remote));
    udp.on('error', (error) => this.log.warn({ err: error }, 'DNS forwarder UDP socket error'));
    await this.listen('UDP', (done) => udp.bind(this.listenPort, this.listenAddress, done), udp);
    this.udpServer = udp;

    // With port 0 the TCP listener takes the port the kernel gave the UDP socket.
    const port = udp.address().port;
    const tcp = createServer((socket) => this.onTcpConnection(socket));
    tcp.on('error', (error) => this.log.warn({ err: error }, 'DNS forwarder TCP listener error'));
    try {
      await this.listen('TCP', (done) => tcp.listen({ port, host: this.listenAddress }, done), tcp);
    } catch (error) {
      udp.close();
      this.udpServer = undefined;
      throw error;
    }
    this.tcpServer = tcp;

    this.log.info(
      {
        address: this.listenAddress,
        port,
        mode: this.routing.mode,
        tunnelDomains: this.routing.tunnelDomains,
        tunnelServers: this.tunnelServers.length,
        hostServers: this.hostServers.length,
      },
      'DNS forwarder started',
    );
    return { address: this.listenAddress, port };
  }

  /** Closes the listeners, every client connection and every pending upstream socket. */
  async stop(): Promise<void> {
    this.stopping.abort();
    for (const socket of this.tcpClients) socket.destroy();
    this.tcpClients.clear();

    const udp = this.udpServer;
    const tcp = this.tcpServer;
    this.udpServer = undefined;
    this.tcpServer = undefined;
    if (udp !== undefined) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcp !== undefined) await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (udp !== undefined || tcp !== undefined) this.log.info({ stats: this.stats() }, 'DNS forwarder stopped');
  }

  /** Replaces the routing and the tunnel servers, for a reconnect that brought a new tunnel configuration. */
  updateTunnel(routing: DnsRouting, tunnelServers: DnsUpstream[]): void {
    this.routing = routing;
    this.tunnelServers = tunnelServers;
  }

  stats(): DnsForwarderStats {
    return { ...this.counters };
  }

  // --- client side ---

  private onUdpQuery(socket: UdpSocket, message: Buffer, remote: RemoteInfo): void {
    this.handleQuery(message, 'udp', (answer) => {
      if (this.udpServer !== socket) return;
      socket.send(answer, remote.port, remote.address, (error) => {
        if (error) this.log.debug({ err: error, client: remote.address }, 'DNS answer could not be sent to the client');
      });
    });
  }

  private onTcpConnection(socket: TcpSocket): void {
    if (this.tcpClients.size >= this.maxTcpConnections || this.stopping.signal.aborted) {
      socket.destroy();
      return;
    }
    this.tcpClients.add(socket);
    socket.setTimeout(this.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on('close', () => this.tcpClients.delete(socket));
    socket.on('error', () => {
      // A client that resets its connection is not an error of the forwarder; 'close' follows.
    });

    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Each message is a 2-byte length and that many bytes, so `pending` never contains more
      // than one incomplete message (at most 65537 bytes) plus the last chunk.
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = Buffer.from(pending.subarray(2, 2 + length));
        pending = pending.subarray(2 + length);
        this.handleQuery(message, 'tcp', (answer) => {
          if (socket.destroyed) return;
          socket.write(withLengthPrefix(answer));
        });
      }
    });
  }

  private handleQuery(message: Buffer, transport: ClientTransport, reply: (answer: Buffer) => void): void {
    const query = parseQuery(message);
    if (query === undefined) {
      this.counters.malformed += 1;
      return;
    }
    if (this.inFlight >= this.maxInFlight) {
      this.counters.droppedInFlightFull += 1;
      return;
    }

    const name = query.questions[0]?.name ?? '';
    const kind = chooseUpstream(this.routing, name);
    if (kind === 'tunnel') this.counters.tunnelQueries += 1;
    else this.counters.hostQueries += 1;
    if (this.log.isLevelEnabled('trace')) {
      this.log.trace({ name, type: query.questions[0]?.type, upstream: kind, transport }, 'DNS query');
    }

    this.inFlight += 1;
    void this.forward(message, query, kind, transport)
      .then((answer) => {
        if (this.stopping.signal.aborted) return;
        if (answer === undefined) {
          this.counters.failed += 1;
          const failure = buildServfail(query);
          if (failure !== undefined) reply(failure);
          return;
        }
        reply(answer);
      })
      .catch((error: unknown) => {
        // A bug, not a network event: keep serving other queries, but leave a trace of it.
        this.counters.failed += 1;
        this.log.warn({ err: error, name }, 'DNS query failed with an unexpected error');
      })
      .finally(() => {
        this.inFlight -= 1;
      });
  }

  // --- upstream side ---

  // Returns the answer with the client's id restored, or undefined when no server answered.
  private async forward(message: Buffer, query: ParsedQuery, kind: UpstreamKind, transport: ClientTransport): Promise<Buffer | undefined> {
    const servers = kind === 'tunnel' ? this.tunnelServers : this.hostServers;
    if (servers.length === 0) return undefined;

    // One attempt and one retry; with a single server the retry goes to the same server.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (this.stopping.signal.aborted) return undefined;
      const server = servers[attempt % servers.length] as DnsUpstream;
      const upstreamId = randomInt(0, 0x10000);
      const packet = Buffer.from(message);
      packet.writeUInt16BE(upstreamId, 0);

      let result = await exchangeUdp(server, packet, upstreamId, query.questions, this.timeoutMs, this.stopping.signal);
      if ('answer' in result && result.truncated && transport === 'tcp') {
        this.counters.tcpRetries += 1;
        result = await exchangeTcp(server, packet, upstreamId, query.questions, this.timeoutMs, this.stopping.signal);
      }

      if ('failure' in result) {
        this.noteFailure(server, kind, result.failure);
        continue;
      }
      this.failingServers.delete(serverKey(server));
      result.answer.writeUInt16BE(query.id, 0);
      return result.answer;
    }
    return undefined;
  }

  private noteFailure(server: DnsUpstream, kind: UpstreamKind, reason: string): void {
    if (this.stopping.signal.aborted) return;
    this.counters.upstreamFailures += 1;
    const key = serverKey(server);
    if (this.failingServers.has(key)) {
      this.log.debug({ server: key, upstream: kind, reason }, 'DNS server did not answer');
      return;
    }
    this.failingServers.add(key);
    this.log.warn({ server: key, upstream: kind, reason }, 'DNS server did not answer; trying the next one (further failures are logged at debug level)');
  }

  // --- set-up helpers ---

  // A host resolver list that contains the forwarder itself (left behind by a killed run that
  // could not restore resolv.conf) would send queries in a loop.
  private withoutSelf(servers: DnsUpstream[]): DnsUpstream[] {
    const result = servers.filter((server) => !(server.address === this.listenAddress && server.port === this.listenPort));
    if (result.length < servers.length) {
      this.log.warn({ address: this.listenAddress }, 'ignored the forwarder\'s own address in the host resolver list');
    }
    return result;
  }

  private listen(protocol: string, bind: (done: () => void) => void, emitter: UdpSocket | TcpServer): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(
          new AcvpnError(
            'ENV_COMMAND_FAILED',
            `could not listen for DNS on ${protocol} ${this.listenAddress} port ${this.listenPort}: ${error.message}; ` +
              'choose another forwarder address or port, or stop the program that uses it',
            { address: this.listenAddress, port: this.listenPort },
            { cause: error },
          ),
        );
      };
      emitter.once('error', onError);
      bind(() => {
        emitter.removeListener('error', onError);
        resolve();
      });
    });
  }
}

// --- pure helpers ---

function parseQuery(message: Buffer): ParsedQuery | undefined {
  if (message.length < dnsHeaderLength) return undefined;
  let decoded: DecodedPacket;
  try {
    decoded = dnsPacket.decode(message);
  } catch {
    return undefined;
  }
  // NOTE: only standard queries are forwarded. NOTIFY, UPDATE and other opcodes are dropped as
  // malformed, which a stub resolver never sends.
  const opcode = (decoded as { opcode?: string }).opcode;
  if (decoded.type !== 'query' || opcode !== 'QUERY') return undefined;
  const questions = decoded.questions ?? [];
  if (questions.length === 0) return undefined;
  return { id: decoded.id ?? 0, flags: decoded.flags ?? 0, questions };
}

// True when `message` is a response with `id` whose question section equals `questions`, names
// compared case-insensitively (a server may echo the case it received or normalize it).
function isMatchingAnswer(message: Buffer, id: number, questions: Question[]): boolean {
  if (message.length < dnsHeaderLength) return false;
  if (message.readUInt16BE(0) !== id || (message.readUInt16BE(2) & responseBit) === 0) return false;
  let decoded: DecodedPacket;
  try {
    // NOTE: a truncated answer whose last record was cut in the middle fails to decode and is
    // treated as no answer (the attempt then times out). BIND and Unbound cut whole records.
    decoded = dnsPacket.decode(message);
  } catch {
    return false;
  }
  const answered = decoded.questions ?? [];
  if (answered.length !== questions.length) return false;
  return questions.every((question, index) => {
    const other = answered[index];
    return (
      other !== undefined &&
      other.name.toLowerCase() === question.name.toLowerCase() &&
      other.type === question.type &&
      (other.class ?? 'IN') === (question.class ?? 'IN')
    );
  });
}

function buildServfail(query: ParsedQuery): Buffer | undefined {
  const recursionDesired = query.flags & dnsPacket.RECURSION_DESIRED;
  try {
    return dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: recursionDesired | dnsPacket.RECURSION_AVAILABLE | servfail,
      questions: query.questions,
    });
  } catch {
    return undefined;
  }
}

function withLengthPrefix(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(2 + message.length);
  framed.writeUInt16BE(message.length, 0);
  message.copy(framed, 2);
  return framed;
}

function serverKey(server: DnsUpstream): string {
  return isIP(server.address) === 6 ? `[${server.address}]:${server.port}` : `${server.address}:${server.port}`;
}

// --- upstream exchanges ---

// Connecting the UDP socket makes the kernel drop datagrams from any other source and report
// ICMP port-unreachable as an error, so a dead server fails fast instead of timing out.
function exchangeUdp(
  server: DnsUpstream,
  packet: Buffer,
  id: number,
  questions: Question[],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    const socket = createSocket(isIP(server.address) === 6 ? 'udp6' : 'udp4');
    let settled = false;
    const finish = (result: ExchangeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.close();
      resolve(result);
    };
    const onAbort = (): void => finish({ failure: 'forwarder stopped' });
    const timer = setTimeout(() => finish({ failure: `timed out after ${timeoutMs} ms over UDP` }), timeoutMs);
    signal.addEventListener('abort', onAbort);

    socket.on('error', (error) => finish({ failure: error.message }));
    socket.on('message', (message) => {
      if (!isMatchingAnswer(message, id, questions)) return;
      finish({ answer: message, truncated: (message.readUInt16BE(2) & truncatedBit) !== 0 });
    });
    try {
      socket.connect(server.port, server.address, () => {
        if (settled) return;
        socket.send(packet, (error) => {
          if (error) finish({ failure: error.message });
        });
      });
    } catch (error) {
      // connect() throws at once for an address it cannot use (e.g. an unknown IPv6 zone).
      finish({ failure: error instanceof Error ? error.message : String(error) });
    }
  });
}

function exchangeTcp(
  server: DnsUpstream,
  packet: Buffer,
  id: number,
  questions: Question[],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    let socket: TcpSocket;
    try {
      socket = createConnection({ host: server.address, port: server.port });
    } catch (error) {
      resolve({ failure: error instanceof Error ? error.message : String(error) });
      return;
    }
    let settled = false;
    let received: Buffer = Buffer.alloc(0);
    const finish = (result: ExchangeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish({ failure: 'forwarder stopped' });
    const timer = setTimeout(() => finish({ failure: `timed out after ${timeoutMs} ms over TCP` }), timeoutMs);
    signal.addEventListener('abort', onAbort);

    socket.on('error', (error) => finish({ failure: error.message }));
    socket.on('close', () => finish({ failure: 'TCP connection closed before a complete answer' }));
    socket.on('connect', () => socket.write(withLengthPrefix(packet)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const length = received.readUInt16BE(0);
      if (received.length < 2 + length) return;
      const message = Buffer.from(received.subarray(2, 2 + length));
      if (isMatchingAnswer(message, id, questions)) {
        finish({ answer: message, truncated: false });
      } else {
        finish({ failure: 'TCP answer did not match the query' });
      }
    });
  });
}
