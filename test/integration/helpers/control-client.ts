// A minimal JSON-RPC client for the daemon's control socket, written apart from src/control so
// that the tests check the wire format itself: one JSON object per line, responses matched by id,
// events as {"method":"event"} notifications.

import { createConnection, type Socket } from 'node:net';
import { sleep } from './headend.js';

export type Message = Record<string, any>;

export class ControlConnection {
  readonly messages: Message[] = [];
  closed = false;
  private buffer = '';
  private nextId = 1;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('utf8');
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        this.messages.push(JSON.parse(line) as Message);
      }
    });
    // A daemon that closes the connection while the test still writes (an over-long line) resets it.
    socket.on('error', () => {});
    socket.on('close', () => (this.closed = true));
  }

  static open(path: string): Promise<ControlConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path, () => {
        socket.off('error', reject);
        resolve(new ControlConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Sends a request and resolves with the whole response (result or error). */
  async call(method: string, params?: Record<string, unknown>, timeoutMs = 30_000): Promise<Message> {
    const id = this.nextId++;
    this.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    return this.waitFor((message) => message.id === id && !('method' in message), timeoutMs);
  }

  send(message: Record<string, unknown>): void {
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  sendRaw(text: string): void {
    this.socket.write(text);
  }

  events(): Message[] {
    return this.messages.filter((message) => message.method === 'event').map((message) => message.params as Message);
  }

  async waitForEvent(predicate: (event: Message) => boolean, timeoutMs = 30_000): Promise<Message> {
    const message = await this.waitFor((candidate) => candidate.method === 'event' && predicate(candidate.params as Message), timeoutMs);
    return message.params as Message;
  }

  async waitFor(predicate: (message: Message) => boolean, timeoutMs = 30_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(predicate);
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        throw new Error(`no matching message within ${timeoutMs} ms; received:\n${this.messages.map((message) => JSON.stringify(message)).join('\n')}`);
      }
      await sleep(20);
    }
  }

  async waitForClose(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`the daemon did not close the connection within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Resolves once a daemon accepts connections on `path`; rejects after `timeoutMs`. */
export async function waitForSocket(path: string, timeoutMs: number, describeState: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const connection = await ControlConnection.open(path);
      connection.close();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`no daemon answered on ${path} within ${timeoutMs} ms; ${describeState()}`);
      await sleep(100);
    }
  }
}
