// The control socket: a Unix domain socket speaking newline-delimited JSON-RPC 2.0 (jsonrpc.ts)
// to any number of clients at once. Each request line goes to the Daemon; a client that calls
// `subscribe` also receives every event as a notification.
//
// Access control is the file mode: the socket is 0660 (owner and group), created with a umask
// so it never exists with looser permissions, and its directory is created 0700 when missing.

import { lstat, mkdir, chmod, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Daemon, DaemonEvent } from './daemon.js';
import {
  LineSplitter,
  MAX_LINE_BYTES,
  RpcError,
  RpcErrorCode,
  encodeMessage,
  errorResponse,
  lineTooLongError,
  notification,
  parseRequestLine,
  resultResponse,
  type RpcRequest,
} from './jsonrpc.js';

export const SOCKET_MODE = 0o660;

export interface ControlServerOptions {
  socketPath: string;
  daemon: Daemon;
  log: Logger;
  maxLineBytes?: number;
  /**
   * A client whose unsent output grows past this many bytes is disconnected: a subscriber that
   * does not read its events, or a client that sends requests without reading the responses.
   */
  maxOutputBufferBytes?: number;
  maxClients?: number;
  /** Requests of one client running at the same time; more are answered with an error. */
  maxRequestsInFlight?: number;
}

const DEFAULTS = {
  maxOutputBufferBytes: 1024 * 1024,
  maxClients: 64,
  maxRequestsInFlight: 16,
};

/** How long a client that sent an over-long line may keep the connection before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

/** How long the probe for another daemon on the socket path waits for a connection. */
const PROBE_TIMEOUT_MS = 2000;

export class ControlServer {
  private readonly clients = new Set<Socket>();
  private nextClientId = 1;
  private closed: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private readonly options: ControlServerOptions,
  ) {}

  /** Prepares the socket path (refusing a live daemon, removing a stale socket) and listens. */
  static async start(options: ControlServerOptions): Promise<ControlServer> {
    await prepareSocketPath(options.socketPath);
    const server = createServer();
    const control = new ControlServer(server, options);
    server.on('connection', (socket) => control.accept(socket));
    server.on('error', (error) => options.log.error({ err: error }, 'control socket error'));

    // The umask makes the socket 0660 from the moment it exists; the chmod is for file systems
    // that ignore it.
    const previousUmask = process.umask(0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      throw new AcvpnError('ENV_COMMAND_FAILED', `cannot listen on the control socket ${options.socketPath} (${(error as NodeJS.ErrnoException).code ?? 'error'}); check the directory and its permissions`);
    } finally {
      process.umask(previousUmask);
    }
    await chmod(options.socketPath, SOCKET_MODE);
    options.log.info({ socket: options.socketPath }, 'control socket listening');
    return control;
  }

  /** Stops accepting, closes every client and removes the socket file; safe to call twice. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const socket of this.clients) socket.destroy();
      await stopped;
      await unlink(this.options.socketPath).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') this.options.log.warn({ socket: this.options.socketPath, code: error.code }, 'cannot remove the control socket');
      });
      this.options.log.info({ socket: this.options.socketPath }, 'control socket closed');
    })();
    return this.closed;
  }

  // ── one client ────────────────────────────────────────────────────────────────────────────

  private accept(socket: Socket): void {
    const { log, daemon } = this.options;
    const clientId = this.nextClientId++;
    const maxClients = this.options.maxClients ?? DEFAULTS.maxClients;
    if (this.clients.size >= maxClients) {
      socket.on('error', () => {});
      log.warn({ client: clientId, maxClients }, 'control client rejected: too many clients');
      socket.end(encodeMessage(errorResponse(null, new RpcError(RpcErrorCode.internalError, `the daemon serves at most ${maxClients} clients at once; try again later`))));
      return;
    }
    this.clients.add(socket);
    log.debug({ client: clientId }, 'control client connected');

    const maxLineBytes = this.options.maxLineBytes ?? MAX_LINE_BYTES;
    const maxBuffer = this.options.maxOutputBufferBytes ?? DEFAULTS.maxOutputBufferBytes;
    const maxInFlight = this.options.maxRequestsInFlight ?? DEFAULTS.maxRequestsInFlight;
    const splitter = new LineSplitter(maxLineBytes);
    let unsubscribe: (() => void) | undefined;
    let inFlight = 0;
    let closing = false;

    const send = (message: Parameters<typeof encodeMessage>[0]): void => {
      if (socket.destroyed || closing) return;
      socket.write(encodeMessage(message));
      // A client that does not read would make the daemon hold every event and response for it.
      if (socket.writableLength > maxBuffer) {
        log.warn({ client: clientId, bufferedBytes: socket.writableLength, maxBytes: maxBuffer }, 'disconnecting a control client that does not read its output');
        socket.destroy();
      }
    };

    const sendEvent = (event: DaemonEvent): void => send(notification('event', event));

    const handle = {
      id: clientId,
      subscribe: (): void => {
        if (unsubscribe !== undefined) return;
        unsubscribe = daemon.onEvent(sendEvent);
        log.debug({ client: clientId }, 'control client subscribed to events');
      },
    };

    const run = async (request: RpcRequest): Promise<void> => {
      // Only the method name is logged: parameters may contain a password.
      log.debug({ client: clientId, method: request.method }, 'control request');
      const wasSubscribed = unsubscribe !== undefined;
      try {
        const result = await daemon.handle(request.method, request.params, handle);
        if (request.id !== undefined) send(resultResponse(request.id, result));
        if (!wasSubscribed && unsubscribe !== undefined) for (const event of daemon.currentEvents()) sendEvent(event);
      } catch (error) {
        logFailure(log, clientId, request.method, error);
        if (request.id !== undefined) send(errorResponse(request.id, error));
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      const { lines, overflow } = splitter.push(chunk);
      for (const line of lines) {
        const parsed = parseRequestLine(line);
        if (parsed.kind === 'error') {
          log.debug({ client: clientId, code: 'error' in parsed.response ? parsed.response.error.code : undefined }, 'invalid control request');
          send(parsed.response);
          continue;
        }
        if (inFlight >= maxInFlight) {
          if (parsed.request.id !== undefined) {
            send(errorResponse(parsed.request.id, new RpcError(RpcErrorCode.invalidRequest, `more than ${maxInFlight} requests are running on this connection; wait for their responses`)));
          }
          continue;
        }
        inFlight += 1;
        void run(parsed.request).finally(() => (inFlight -= 1));
      }
      if (overflow) {
        log.warn({ client: clientId, maxLineBytes }, 'control client sent an over-long line; closing the connection');
        send(errorResponse(null, lineTooLongError(maxLineBytes)));
        closing = true;
        socket.end();
        setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => log.debug({ client: clientId, code: error.code }, 'control client connection error'));
    socket.on('close', () => {
      unsubscribe?.();
      this.clients.delete(socket);
      log.debug({ client: clientId }, 'control client disconnected');
    });
  }
}

function logFailure(log: Logger, clientId: number, method: string, error: unknown): void {
  if (error instanceof RpcError) {
    log.debug({ client: clientId, method, code: error.code }, error.message);
  } else if (AcvpnError.is(error)) {
    log.info({ client: clientId, method, code: error.code }, error.message);
  } else {
    log.error({ client: clientId, method, err: error }, 'control method failed with an internal error');
  }
}

/**
 * Makes `path` ready for listen(): creates its directory (0700) when missing, raises when a
 * daemon listens on it, and removes a socket file that no process listens on.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!isSocket) {
    throw new AcvpnError('CONFIG_INVALID', `${path} exists and is not a socket; remove it or choose another path with --socket`);
  }
  const probe = await probeSocket(path);
  if (probe === 'listening') {
    throw new AcvpnError('CONFIG_INVALID', `another acvpn daemon is already listening on ${path}; stop it first or choose another path with --socket`, { reason: 'DAEMON_RUNNING' });
  }
  if (probe !== 'ECONNREFUSED') {
    throw new AcvpnError('ENV_COMMAND_FAILED', `cannot check whether a daemon listens on ${path} (${probe}); check the permissions of the path`);
  }
  await unlink(path);
}

/** Connects to `path` once: 'listening', or the error code of the failed connection. */
function probeSocket(path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    const timer = setTimeout(() => {
      socket.destroy();
      // A listener that accepts nothing within the limit is still a live process holding the path.
      resolve('listening');
    }, PROBE_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('listening');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? 'error');
    });
  });
}
