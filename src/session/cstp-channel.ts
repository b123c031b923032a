// The CSTP channel driver: owns the TLS socket after the CONNECT reply, frames outgoing packets,
// parses incoming frames, and runs the DPD and keepalive timers.
//
// Output rule (ocserv 1.1 drops a session otherwise): exactly one CSTP frame per TLS record. Node
// merges queued writes into shared records, so the next `write()` starts only from the previous
// write's callback. Data, DPD and keepalive share that queue.
//
// One write per frame costs a TLS record, a send(2) and an event-loop trip per packet, which held
// uploads to a fraction of OpenConnect's rate. So a run of queued frames of the same length S
// (bulk traffic: MTU-sized packets) leaves in one write after setMaxSendFragment(S): OpenSSL then
// cuts that write into records of exactly S bytes, one frame each, and sends them with one
// send(2). Every other write first makes sure the fragment limit is at least its length.
//
//   TUN batch ──► sendPacket() ──► pooled frame buffer (header in headroom) ──► queue
//   queue ──► run of equal-length frames ──► one write, records of S bytes ──► socket
//         └─► any other frame ──► one write, one record ──► socket
//   socket ──► CstpFrameDecoder ──► DATA: onPacket()   DPD-REQ: queue DPD-RESP   BYE: onClosed()

import type { TLSSocket } from 'node:tls';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import {
  CstpFrameDecoder,
  FrameType,
  FRAME_HEADER_LENGTH,
  encodeControlFrame,
  writeFrameHeader,
} from '../cstp/frame.js';
import { describeDisconnect, encodeLogoutFrame, parseDisconnectPayload } from '../cstp/disconnect.js';
import { decideLiveness } from '../cstp/liveness.js';
import { armTimerAt } from './timer.js';

export interface CstpChannelOptions {
  dpdSeconds?: number;
  keepaliveSeconds?: number;
  /** Largest IP packet the channel carries (the tunnel MTU, with slack for oversize packets). */
  maxPacketBytes: number;
  /** Frame buffers in the pool; when all are in flight, further packets are dropped. */
  poolSize: number;
}

export interface CstpChannelEvents {
  /** An IP packet from the headend. The buffer is only valid during the call. */
  onPacket(packet: Buffer): void;
  /** The channel ended; `error` is undefined for a local close. */
  onClosed(error: AcvpnError | undefined): void;
  /**
   * Every frame buffer is in flight (`true`) or one came back (`false`). The session pauses the
   * TUN reader meanwhile, so the kernel queues packets instead of acvpn dropping them.
   */
  onBackpressure?(full: boolean): void;
}

export interface CstpStatistics {
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  packetsDropped: number;
  dpdRequestsSent: number;
}

/** OpenSSL's bounds for SSL_set_max_send_fragment, and its default (the TLS maximum). */
const MIN_SEND_FRAGMENT = 512;
const MAX_SEND_FRAGMENT = 16_384;
/** Most bytes per coalesced write: the TLS maximum record payload times four, about 43 MTU-sized frames. */
const MAX_RUN_BYTES = 4 * MAX_SEND_FRAGMENT;

export class CstpChannel {
  readonly statistics: CstpStatistics = {
    packetsSent: 0,
    bytesSent: 0,
    packetsReceived: 0,
    bytesReceived: 0,
    packetsDropped: 0,
    dpdRequestsSent: 0,
  };

  private readonly decoder: CstpFrameDecoder;
  private readonly freeBuffers: Buffer[] = [];
  /**
   * Frames waiting for the socket. `buffer` is the whole pooled buffer when `pooled` is set (it
   * returns to freeBuffers once written); only its first `length` bytes are the frame.
   */
  private readonly queue: Array<{ buffer: Buffer; length: number; pooled: boolean }> = [];
  private writing = false;
  /** The socket's current max send fragment; frames longer than it must not be written. */
  private sendFragment = MAX_SEND_FRAGMENT;
  /** Holds one run of equal-length frames from the write until its callback. */
  private readonly runBuffer = Buffer.allocUnsafe(MAX_RUN_BYTES);
  /** Cleared once setMaxSendFragment failed or is missing: every frame then leaves in its own write. */
  private coalescingAvailable = true;
  private closed = false;
  private poolExhausted = false;
  private started = false;
  /** Set once the BYE is queued: the headend closing the connection is then the expected end. */
  private loggingOff = false;
  private timer: NodeJS.Timeout | undefined;
  private lastReceivedMs: number;
  private lastSentMs: number;
  private lastDpdSentMs: number | undefined;

  constructor(
    private readonly socket: TLSSocket,
    private readonly options: CstpChannelOptions,
    private readonly events: CstpChannelEvents,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.decoder = new CstpFrameDecoder({ maxPayloadLength: Math.max(options.maxPacketBytes, 16 * 1024) });
    for (let index = 0; index < options.poolSize; index += 1) {
      this.freeBuffers.push(Buffer.allocUnsafe(FRAME_HEADER_LENGTH + options.maxPacketBytes));
    }
    this.lastReceivedMs = this.now();
    this.lastSentMs = this.lastReceivedMs;
  }

  /** True from start() until the channel closes. */
  get established(): boolean {
    return this.started && !this.closed;
  }

  /** Starts reading. `initial` contains any bytes that arrived together with the CONNECT reply. */
  start(initial: Buffer): void {
    this.started = true;
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.socket.on('error', (error) => {
      this.finish(new AcvpnError('TLS_FAILED', `the CSTP connection failed: ${error.message}`, {}, { cause: error }));
    });
    this.socket.on('close', () => {
      this.finish(this.loggingOff ? undefined : new AcvpnError('NETWORK_UNREACHABLE', 'the headend closed the CSTP connection'));
    });
    if (initial.length > 0) this.receive(initial);
    this.socket.resume();
    this.scheduleLiveness();
  }

  /**
   * Queues one IP packet. Copies it into a pooled frame buffer right behind the header, so the
   * caller's buffer may be reused as soon as this returns. Returns false when it was dropped.
   */
  sendPacket(source: Buffer, offset: number, length: number): boolean {
    if (this.closed) return false;
    const frame = length <= this.options.maxPacketBytes ? this.freeBuffers.pop() : undefined;
    if (frame === undefined) {
      this.statistics.packetsDropped += 1;
      return false;
    }
    writeFrameHeader(frame, 0, FrameType.DATA, length);
    source.copy(frame, FRAME_HEADER_LENGTH, offset, offset + length);
    this.queue.push({ buffer: frame, length: FRAME_HEADER_LENGTH + length, pooled: true });
    if (this.freeBuffers.length === 0 && !this.poolExhausted) {
      this.poolExhausted = true;
      this.events.onBackpressure?.(true);
    }
    this.statistics.packetsSent += 1;
    this.statistics.bytesSent += length;
    this.flush();
    return true;
  }

  /**
   * Sends the logoff BYE and waits until it has been written (or `timeoutMs` passed), then
   * closes the socket. Called on SIGINT/SIGTERM.
   */
  async disconnect(reason: string, timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.loggingOff = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const bye = encodeLogoutFrame(reason);
      this.queue.push({ buffer: bye, length: bye.length, pooled: false });
      const waitForDrain = (): void => {
        if (this.queue.length === 0 && !this.writing) {
          clearTimeout(timer);
          resolve();
        } else {
          setTimeout(waitForDrain, 5);
        }
      };
      this.flush();
      waitForDrain();
    });
    this.close();
  }

  /** Closes the socket without a BYE; `error` gives the reason when this is not a normal end. */
  close(error?: AcvpnError): void {
    this.finish(error);
  }

  private flush(): void {
    if (this.writing || this.closed) return;
    const next = this.queue[0];
    if (next === undefined) return;
    this.writing = true;
    this.lastSentMs = this.now();

    const runLength = this.equalLengthRun();
    if (runLength > 1) {
      this.writeRun(next.length, runLength);
      return;
    }
    this.queue.shift();
    if (!this.allowRecordOf(next.length)) return;
    this.socket.write(next.buffer.subarray(0, next.length), (error) => {
      if (next.pooled) this.releaseBuffer(next.buffer);
      this.afterWrite(error);
    });
  }

  /** Number of frames at the head of the queue that can share one write; 1 when none can. */
  private equalLengthRun(): number {
    const first = this.queue[0]!;
    const length = first.length;
    if (!this.coalescingAvailable || !first.pooled || length < MIN_SEND_FRAGMENT || length > MAX_SEND_FRAGMENT) return 1;
    const maxFrames = Math.floor(MAX_RUN_BYTES / length);
    let count = 1;
    while (count < this.queue.length && count < maxFrames) {
      const frame = this.queue[count]!;
      if (!frame.pooled || frame.length !== length) break;
      count += 1;
    }
    return count;
  }

  /**
   * Copies `count` queued frames of `length` bytes into the run buffer and writes them at once,
   * with the record size set to one frame. The frame buffers return to the pool right away.
   */
  private writeRun(length: number, count: number): void {
    if (this.sendFragment !== length) {
      if (!this.setSendFragment(length)) {
        // Without the fragment limit the run would share records: send the frames one by one.
        this.writing = false;
        this.coalescingAvailable = false;
        this.flush();
        return;
      }
    }
    for (let index = 0; index < count; index += 1) {
      const frame = this.queue.shift()!;
      frame.buffer.copy(this.runBuffer, index * length, 0, length);
      this.releaseBuffer(frame.buffer);
    }
    this.socket.write(this.runBuffer.subarray(0, count * length), (error) => this.afterWrite(error));
  }

  /** Raises the fragment limit when a frame of `length` bytes would not fit one record; false after closing. */
  private allowRecordOf(length: number): boolean {
    if (length <= this.sendFragment) return true;
    if (this.setSendFragment(MAX_SEND_FRAGMENT)) return true;
    this.finish(new AcvpnError('INTERNAL', `could not restore the TLS record size to ${MAX_SEND_FRAGMENT} bytes for a ${length}-byte CSTP frame`));
    return false;
  }

  private setSendFragment(size: number): boolean {
    if (!this.coalescingAvailable && size !== MAX_SEND_FRAGMENT) return false;
    // Only called between writes: OpenSSL applies the limit to the next SSL_write.
    const applied = typeof this.socket.setMaxSendFragment === 'function' && this.socket.setMaxSendFragment(size);
    if (applied) this.sendFragment = size;
    return applied;
  }

  private releaseBuffer(buffer: Buffer): void {
    this.freeBuffers.push(buffer);
    if (this.poolExhausted) {
      this.poolExhausted = false;
      this.events.onBackpressure?.(false);
    }
  }

  private afterWrite(error: Error | null | undefined): void {
    this.writing = false;
    if (error) {
      this.finish(new AcvpnError('TLS_FAILED', `writing to the CSTP connection failed: ${error.message}`, {}, { cause: error }));
      return;
    }
    this.flush();
  }

  private queueControl(type: number, payload?: Buffer): void {
    const frame = encodeControlFrame(type, payload);
    this.queue.push({ buffer: frame, length: frame.length, pooled: false });
    this.flush();
  }

  private receive(chunk: Buffer): void {
    this.lastReceivedMs = this.now();
    this.lastDpdSentMs = undefined;
    try {
      this.decoder.push(chunk);
      for (let frame = this.decoder.next(); frame !== undefined; frame = this.decoder.next()) {
        this.handleFrame(frame.type, frame.payload);
        if (this.closed) return;
      }
    } catch (error) {
      this.finish(AcvpnError.is(error) ? error : new AcvpnError('CSTP_FRAME_INVALID', String(error)));
    }
  }

  private handleFrame(type: number, payload: Buffer): void {
    switch (type) {
      case FrameType.DATA:
        this.statistics.packetsReceived += 1;
        this.statistics.bytesReceived += payload.length;
        this.events.onPacket(payload);
        return;
      case FrameType.DPD_REQ:
        this.queueControl(FrameType.DPD_RESP, Buffer.from(payload));
        return;
      case FrameType.DPD_RESP:
      case FrameType.KEEPALIVE:
        return;
      case FrameType.DISCONNECT:
      case FrameType.TERMINATE: {
        const detail = type === FrameType.DISCONNECT ? describeDisconnect(parseDisconnectPayload(payload)) : 'TERMINATE frame';
        this.finish(new AcvpnError('SESSION_TERMINATED', `the headend ended the session (${detail})`, { detail }));
        return;
      }
      default:
        // Unknown control types are ignored rather than fatal: newer headends add types and an
        // unknown one carries no data we could mishandle.
        this.log.debug({ type }, 'ignoring CSTP frame of unknown type');
    }
  }

  private scheduleLiveness(): void {
    if (this.closed) return;
    const verdict = decideLiveness(
      {
        lastReceivedMs: this.lastReceivedMs,
        lastSentMs: this.lastSentMs,
        lastDpdSentMs: this.lastDpdSentMs,
        dpdSeconds: this.options.dpdSeconds,
        keepaliveSeconds: this.options.keepaliveSeconds,
      },
      this.now(),
    );
    switch (verdict.action) {
      case 'dpd':
        this.lastDpdSentMs = this.now();
        this.statistics.dpdRequestsSent += 1;
        this.queueControl(FrameType.DPD_REQ);
        break;
      case 'keepalive':
        this.queueControl(FrameType.KEEPALIVE);
        break;
      case 'dead':
        this.finish(
          new AcvpnError('CSTP_PEER_DEAD', `no reply from the headend to dead-peer detection for ${2 * (this.options.dpdSeconds ?? 0)} s; check the network path to the headend`),
        );
        return;
      case 'none':
        break;
    }
    // Infinity means no DPD and no keepalive, so no timer is armed.
    this.timer = armTimerAt(verdict.nextCheckMs, this.now(), () => this.scheduleLiveness());
  }

  private finish(error: AcvpnError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.socket.destroy();
    this.events.onClosed(error);
  }
}
