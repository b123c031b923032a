// An in-memory TunDevice for unit tests of the modules that use one (session, data path).
//
// It keeps the contracts of the real device that consumers can get wrong:
//  - batches arrive asynchronously, one per event-loop turn (setImmediate), at most maxBatch
//    packets each, packed back to back in one reused buffer;
//  - after the handler returns, the buffer is overwritten with 0xEE, so a consumer that kept a
//    view instead of copying reads garbage in its test;
//  - packets injected while paused, or before onPackets(), wait in a queue;
//  - write() validates offset and length like the addon and returns false once closed.

import type { AcvpnError } from '../../src/core/errors.js';
import type { PacketHandler, TunDevice } from '../../src/net/tun/tun-device.js';

export interface FakeTunOptions {
  name?: string;
  /** Longer injected packets are dropped and counted in droppedOversize, as the addon does. */
  maxPacketSize?: number;
  maxBatch?: number;
}

const poison = 0xee;

export class FakeTun implements TunDevice {
  readonly name: string;
  readonly maxPacketSize: number;
  readonly maxBatch: number;

  /** Copies of the packets written, in order. */
  readonly written: Buffer[] = [];
  /** Sizes of the batches delivered so far, in order. */
  readonly batchSizes: number[] = [];
  /** When false, write() drops the packet and returns false, like a full kernel queue. */
  acceptWrites = true;
  droppedWrites = 0;
  droppedOversize = 0;
  paused = false;
  closed = false;

  readonly #buffer: Buffer;
  readonly #lengths: Uint32Array;
  readonly #queue: Buffer[] = [];
  #packetHandler: PacketHandler | undefined;
  #errorHandler: ((error: AcvpnError) => void) | undefined;
  #failed = false;
  #scheduled = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: FakeTunOptions = {}) {
    this.name = options.name ?? 'tun0';
    this.maxPacketSize = options.maxPacketSize ?? 65535;
    this.maxBatch = options.maxBatch ?? 64;
    this.#buffer = Buffer.alloc(this.maxPacketSize * this.maxBatch, poison);
    this.#lengths = new Uint32Array(this.maxBatch);
  }

  // ---- the test's side ----

  /**
   * Queues packets as if the kernel had routed them into the interface. The promise resolves
   * once every queued packet has been delivered, or dropped by close() or a failure; while
   * paused or without a handler it waits.
   */
  inject(...packets: Buffer[]): Promise<void> {
    for (const packet of packets) {
      if (packet.length > this.maxPacketSize) {
        this.droppedOversize++;
      } else {
        this.#queue.push(Buffer.from(packet));
      }
    }
    const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    this.#schedule();
    this.#settleIfIdle();
    return idle;
  }

  /**
   * Fails the device as a deleted interface does: reading stops, queued packets are dropped and
   * the error goes to the onError handler. Without a handler it is thrown from the event loop,
   * as the addon does.
   */
  fail(error: AcvpnError): void {
    this.#failed = true;
    this.#queue.length = 0;
    this.#settleIfIdle();
    const handler = this.#errorHandler;
    setImmediate(() => {
      if (handler === undefined) throw error;
      handler(error);
    });
  }

  // ---- the TunDevice side ----

  onPackets(handler: PacketHandler): void {
    this.#packetHandler = handler;
    this.#schedule();
  }

  onError(handler: (error: AcvpnError) => void): void {
    this.#errorHandler = handler;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.#schedule();
  }

  write(packet: Buffer, offset = 0, length = packet.length - offset): boolean {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > packet.length) {
      throw new RangeError(
        `write(buffer, offset, length): offset and length must select bytes inside the ${packet.length}-byte buffer`,
      );
    }
    if (this.closed || !this.acceptWrites) {
      this.droppedWrites++;
      return false;
    }
    this.written.push(Buffer.from(packet.subarray(offset, offset + length)));
    return true;
  }

  close(): void {
    this.closed = true;
    this.#queue.length = 0;
    this.#settleIfIdle();
  }

  // ---- delivery ----

  #schedule(): void {
    if (this.#scheduled || !this.#canDeliver()) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#canDeliver()) this.#deliverBatch();
      this.#schedule();
      this.#settleIfIdle();
    });
  }

  #canDeliver(): boolean {
    return !this.paused && !this.closed && !this.#failed && this.#packetHandler !== undefined && this.#queue.length > 0;
  }

  #deliverBatch(): void {
    const packets = this.#queue.splice(0, this.maxBatch);
    let offset = 0;
    packets.forEach((packet, index) => {
      packet.copy(this.#buffer, offset);
      this.#lengths[index] = packet.length;
      offset += packet.length;
    });
    this.batchSizes.push(packets.length);
    try {
      this.#packetHandler?.(this.#buffer, this.#lengths, packets.length);
    } finally {
      this.#buffer.fill(poison, 0, offset);
    }
  }

  #settleIfIdle(): void {
    if (this.#queue.length > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
