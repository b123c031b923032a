// A small DNS server for tests: UDP and TCP on one address and port, built on dns-packet. It
// records every name it is asked and answers A records from a table (NXDOMAIN for other names,
// an empty NOERROR answer for other types of a known name).
//
// It runs in the test process (startDnsServer, used by unit tests) or as its own process inside
// a network namespace (startDnsServerInNamespace). Node 20 cannot run TypeScript, so the second
// form transpiles this file to JavaScript in a temporary directory and runs it under
// `ip netns exec`. The child prints one JSON line per query on stdout.

import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dnsPacket from 'dns-packet';

export interface DnsServerOptions {
  address: string;
  /** 0 picks a free port (the same for UDP and TCP). */
  port: number;
  /** Lower-case name (no trailing dot) -> IPv4 address returned for A queries. */
  records: Record<string, string>;
  /** Names whose UDP answer is cut to the question with the TC bit set; TCP answers them fully. */
  truncateOverUdp?: string[];
  /** Names that get no answer at all, to make the client time out. */
  ignore?: string[];
}

export interface DnsQueryRecord {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
}

export interface DnsServerHandle {
  port: number;
  /** Every query received so far, in order. */
  queries(): DnsQueryRecord[];
  stop(): Promise<void>;
}

/** Starts the server in this process. */
export async function startDnsServer(options: DnsServerOptions, onQuery?: (query: DnsQueryRecord) => void): Promise<DnsServerHandle> {
  // With port 0 the TCP listener reuses the port the kernel picked for UDP, which another test
  // may hold on TCP already; pick again a few times before giving up.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startDnsServerOnce(options, onQuery);
    } catch (error) {
      const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (!inUse || options.port !== 0 || attempt >= 5) throw error;
    }
  }
}

async function startDnsServerOnce(options: DnsServerOptions, onQuery?: (query: DnsQueryRecord) => void): Promise<DnsServerHandle> {
  const log: DnsQueryRecord[] = [];
  const family = options.address.includes(':') ? 'udp6' : 'udp4';
  const udp: UdpSocket = createSocket(family);
  const connections = new Set<TcpSocket>();

  const answer = (message: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return undefined;
    }
    const question = query.questions?.[0];
    if (question === undefined) return undefined;
    const name = question.name.toLowerCase();
    const record: DnsQueryRecord = { name, type: question.type, transport };
    log.push(record);
    onQuery?.(record);
    if (options.ignore?.includes(name)) return undefined;

    const address = options.records[name];
    const truncate = transport === 'udp' && (options.truncateOverUdp?.includes(name) ?? false);
    const answers: dnsPacket.Answer[] =
      address !== undefined && question.type === 'A' && !truncate ? [{ type: 'A', name: question.name, ttl: 30, data: address }] : [];
    const rcode = address === undefined ? 3 : 0;
    return dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode | (truncate ? dnsPacket.TRUNCATED_RESPONSE : 0),
      questions: query.questions ?? [],
      answers,
    });
  };

  udp.on('message', (message, remote) => {
    const response = answer(message, 'udp');
    if (response !== undefined) udp.send(response, remote.port, remote.address);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(options.port, options.address, () => resolve());
  });
  const port = udp.address().port;

  const tcp: TcpServer = createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => undefined);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const length = pending.readUInt16BE(0);
        const response = answer(pending.subarray(2, 2 + length), 'tcp');
        pending = pending.subarray(2 + length);
        if (response === undefined) continue;
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(response.length, 0);
        socket.write(Buffer.concat([prefix, response]));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ port, host: options.address }, () => resolve());
  }).catch((error: unknown) => {
    udp.close();
    throw error;
  });

  let stopped = false;
  return {
    port,
    queries: () => [...log],
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/**
 * Entry point of the child process: reads DnsServerOptions as JSON from argv[2], prints
 * `{"listening":PORT}` once bound, then one DnsQueryRecord per line, and stops on SIGTERM.
 */
export async function runDnsServerProcess(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as DnsServerOptions;
  const server = await startDnsServer(options, (query) => process.stdout.write(`${JSON.stringify(query)}\n`));
  process.stdout.write(`${JSON.stringify({ listening: server.port })}\n`);
  process.once('SIGTERM', () => {
    void server.stop().then(() => process.exit(0));
  });
}

export interface NamespacedDnsServer extends DnsServerHandle {
  child: ChildProcess;
}

const repositoryRoot = new URL('../../../', import.meta.url).pathname;

/** Starts the server as a child process in network namespace `ns`; stop() ends it by PID. */
export async function startDnsServerInNamespace(ns: string, options: DnsServerOptions): Promise<NamespacedDnsServer> {
  const directory = await compileSelf();
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, join(directory, 'run.mjs'), JSON.stringify(options)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: DnsQueryRecord[] = [];
  let output = '';
  let buffered = '';

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`DNS server in ${ns} did not start within 10 s; output:\n${output}`)), 10_000);
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stdout?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      buffered += text;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const parsed = JSON.parse(line) as DnsQueryRecord | { listening: number };
        if ('listening' in parsed) {
          clearTimeout(timer);
          resolve(parsed.listening);
        } else {
          log.push(parsed);
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`DNS server in ${ns} exited with ${String(code)}; output:\n${output}`));
    });
  });

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    child,
    port,
    queries: () => [...log],
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

// Transpiles this file into a temporary directory next to a node_modules symlink, so that the
// child resolves dns-packet from the repository.
async function compileSelf(): Promise<string> {
  const ts = (await import('typescript')).default;
  const source = await readFile(new URL(import.meta.url), 'utf8');
  const output = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const directory = await mkdtemp(join(tmpdir(), 'acvpn-dns-server-'));
  await symlink(join(repositoryRoot, 'node_modules'), join(directory, 'node_modules'));
  await writeFile(join(directory, 'dns-server.mjs'), output);
  await writeFile(join(directory, 'run.mjs'), "import { runDnsServerProcess } from './dns-server.mjs';\nawait runDnsServerProcess();\n");
  return directory;
}
