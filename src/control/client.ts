// A client of the control socket, for the CLI commands (acvpn status, disconnect, events, ...):
// sends requests with increasing ids, matches responses by id, and passes event notifications to
// a listener.

import { createConnection, type Socket } from 'node:net';
import { AcvpnError, ExitCode } from '../core/errors.js';
import { JSONRPC_VERSION, LineSplitter, RpcErrorCode, type RpcErrorObject } from './jsonrpc.js';

/** Responses and events may be much larger than requests (a status with many routes). */
const MAX_RESPONSE_LINE_BYTES = 4 * 1024 * 1024;

/** An error response of the daemon, with the exit code the CLI should end with. */
export class DaemonError extends Error {
  readonly exitCode: number;
  readonly rpcCode: number;
  readonly data: Record<string, unknown> | undefined;

  constructor(error: RpcErrorObject) {
    super(error.message);
    this.name = 'DaemonError';
    this.rpcCode = error.code;
    this.data = error.data;
    // JSON-RPC's own errors carry no exit code: bad parameters are a usage error, the rest a bug.
    const exitCode = error.data?.exitCode;
    if (typeof exitCode === 'number') this.exitCode = exitCode;
    else if (error.code === RpcErrorCode.invalidParams) this.exitCode = ExitCode.usage;
    else this.exitCode = ExitCode.internal;
  }

  /** The stable acvpn error code (data.code), when the daemon sent one. */
  get code(): string | undefined {
    return typeof this.data?.code === 'string' ? this.data.code : undefined;
  }
}

interface PendingCall {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

export class ControlClient {
  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private eventListener: ((event: Record<string, unknown>) => void) | undefined;
  private closeListener: (() => void) | undefined;

  private constructor(private readonly socket: Socket) {
    const splitter = new LineSplitter(MAX_RESPONSE_LINE_BYTES);
    socket.on('data', (chunk: Buffer) => {
      const { lines, overflow } = splitter.push(chunk);
      for (const line of lines) this.receive(line);
      if (overflow) socket.destroy(new Error(`the daemon sent a line longer than ${MAX_RESPONSE_LINE_BYTES} bytes`));
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      for (const call of this.pending.values()) call.reject(new AcvpnError('NETWORK_UNREACHABLE', 'the acvpn daemon closed the connection before it responded'));
      this.pending.clear();
      this.closeListener?.();
    });
  }

  /**
   * Connects to the daemon's socket. Raises NETWORK_UNREACHABLE (exit 6) when no daemon listens there,
   * and ENV_COMMAND_FAILED (exit 7) when the socket's permissions keep this user out.
   */
  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new ControlClient(socket));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'EACCES' || error.code === 'EPERM') {
          reject(new AcvpnError('ENV_COMMAND_FAILED', `permission denied on the control socket ${path}; run as root or as a member of the socket's group`));
        } else {
          reject(new AcvpnError('NETWORK_UNREACHABLE', `no acvpn daemon is listening on ${path}; start one with acvpn daemon`, { reason: error.code }));
        }
      });
    });
  }

  /** Sends one request and resolves with its result; rejects with DaemonError on an error response. */
  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ jsonrpc: JSONRPC_VERSION, id, method, params })}\n`);
    });
  }

  onEvent(listener: (event: Record<string, unknown>) => void): void {
    this.eventListener = listener;
  }

  onClose(listener: () => void): void {
    this.closeListener = listener;
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private receive(line: string): void {
    let message: { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: RpcErrorObject };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return;
    }
    if (message.method === 'event' && typeof message.params === 'object' && message.params !== null) {
      this.eventListener?.(message.params as Record<string, unknown>);
      return;
    }
    if (typeof message.id !== 'number') return;
    const call = this.pending.get(message.id);
    if (call === undefined) return;
    this.pending.delete(message.id);
    if (message.error !== undefined) call.reject(new DaemonError(message.error));
    else call.resolve(message.result);
  }
}
