// Thin driver for DtlsClient: one UDP socket connected to the headend and one timer. All
// protocol decisions stay in DtlsClient; this file only moves datagrams and calls tick().
//
//   const driver = new DtlsUdpDriver({ host, port, client: { psk, sessionId, mtu: 1400 } });
//   driver.on('established', (suite) => ...).on('data', (payload) => ...).on('failed', (error) => ...);
//   await driver.start();

import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';

import { AcvpnError } from '../core/errors.js';
import { DtlsClient, type DtlsClientOptions, type DtlsOutput } from './handshake.js';

export interface DtlsUdpDriverOptions {
  /** Headend IP address (an address, not a name: the caller resolved it for CSTP already). */
  host: string;
  port: number;
  client: Omit<DtlsClientOptions, 'now'> & { now?: () => number };
}

export interface DtlsUdpDriverEvents {
  established: [suite: string];
  data: [payload: Buffer];
  alert: [level: number, description: number, name: string];
  closed: [];
  failed: [error: AcvpnError];
}

/** Receive buffer size: some headends send records larger than the negotiated MTU. */
const RECEIVE_BUFFER_BYTES = 256 * 1024;

export class DtlsUdpDriver extends EventEmitter<DtlsUdpDriverEvents> {
  readonly client: DtlsClient;
  private readonly socket: Socket;
  private readonly host: string;
  private readonly port: number;
  private timer: NodeJS.Timeout | undefined;
  private socketClosed = false;

  constructor(options: DtlsUdpDriverOptions) {
    super();
    this.host = options.host;
    this.port = options.port;
    this.client = new DtlsClient({ now: () => performance.now(), ...options.client });
    this.socket = createSocket({ type: isIPv6(options.host) ? 'udp6' : 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
    this.socket.on('message', (datagram) => this.apply(this.client.receive(datagram)));
    this.socket.on('error', (error) => this.abort(error));
  }

  /** Connects the socket and sends the first ClientHello; the outcome arrives as an event. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.socket.once('error', onError);
      this.socket.connect(this.port, this.host, () => {
        this.socket.off('error', onError);
        resolve();
      });
    }).catch((error: unknown) => {
      throw new AcvpnError('NETWORK_UNREACHABLE', `connecting the DTLS socket to ${this.host}:${this.port} failed: ${String(error)}`, {}, { cause: error });
    });
    this.apply(this.client.start());
  }

  /** Encrypts and sends one application-data record; returns false when DTLS is not established. */
  send(payload: Buffer): boolean {
    if (this.client.state !== 'established' || this.socketClosed) return false;
    this.socket.send(this.client.sealApplicationData(payload));
    return true;
  }

  /** Sends close_notify if possible and closes the socket. Safe to call more than once. */
  close(): void {
    if (this.socketClosed) return;
    this.apply(this.client.close());
    this.closeSocket();
  }

  private apply(output: DtlsOutput): void {
    for (const datagram of output.datagrams) {
      if (!this.socketClosed) this.socket.send(datagram);
    }

    this.clearTimer();
    if (output.nextTimerMs !== undefined && !this.socketClosed) {
      this.timer = setTimeout(() => this.apply(this.client.tick()), output.nextTimerMs);
    }

    for (const event of output.events) {
      switch (event.kind) {
        case 'established':
          this.emit('established', event.suite);
          break;
        case 'data':
          this.emit('data', event.payload);
          break;
        case 'alert':
          this.emit('alert', event.level, event.description, event.name);
          break;
        case 'closed':
          this.closeSocket();
          this.emit('closed');
          break;
        case 'failed':
          this.closeSocket();
          this.emit('failed', event.error);
          break;
      }
    }
  }

  private abort(error: Error): void {
    if (this.socketClosed) return;
    this.closeSocket();
    this.emit('failed', new AcvpnError('NETWORK_UNREACHABLE', `the DTLS socket to ${this.host}:${this.port} failed: ${error.message}`, {}, { cause: error }));
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private closeSocket(): void {
    this.clearTimer();
    if (this.socketClosed) return;
    this.socketClosed = true;
    // A close_notify sent just before still leaves: libuv writes a UDP send at once when its queue
    // is empty, which it is for a handful of handshake-sized datagrams.
    this.socket.close();
  }
}
