// The TUN device as the rest of acvpn uses it: batches of IP packets in, single packets out.
//
//   kernel ──► addon (uv_poll, up to maxBatch read()s into one reused buffer) ──► onPackets
//   write(packet) ──► addon (one write(2) per packet) ──► kernel
//   writeBatch(buffer, offsets, lengths) ──► addon (a loop of write(2), one call from JS) ──► kernel
//
// Closing the device deletes the interface, with its addresses and routes.

import { AcvpnError } from '../../core/errors.js';
import { loadTunAddon, type TunAddon, type TunHandle, type TunSystemError } from './tun-addon.js';
import { deviceError, isDroppedPacketErrno, openError, validateInterfaceName, writeError } from './tun-errors.js';

/**
 * Receives one batch of packets read from the device.
 *
 * `buffer` contains `count` packets back to back: packet i starts at byte
 * lengths[0] + … + lengths[i - 1] and is lengths[i] bytes long. Entries of `lengths` past
 * `count` are stale. Both `buffer` and `lengths` are reused for the next batch, so the handler
 * must copy what it keeps before it returns. A `subarray()` view is not a copy.
 */
export type PacketHandler = (buffer: Buffer, lengths: Uint32Array, count: number) => void;

export interface TunDevice {
  /** The interface name, e.g. "tun0" when the kernel picked it. */
  readonly name: string;
  /**
   * Sets the handler of incoming batches. The first call starts reading; later calls replace
   * the handler. A handler that throws raises 'uncaughtException', as any event callback does.
   */
  onPackets(handler: PacketHandler): void;
  /**
   * Sets the handler called once when reading stops because the device failed, for example
   * when the interface was deleted. Without a handler the error is thrown from the event loop.
   */
  onError(handler: (error: AcvpnError) => void): void;
  /** Stops reading until resume(); the kernel queues packets meanwhile (500 by default, then drops). */
  pause(): void;
  resume(): void;
  /**
   * Writes one IP packet: `length` bytes of `packet` from `offset` (default: the rest of it).
   * Returns false when this packet was dropped while the device stays usable: kernel queue
   * full, interface down, not an IPv4 or IPv6 packet, or device closed. Throws an AcvpnError
   * when the device itself failed (deleted interface).
   */
  write(packet: Buffer, offset?: number, length?: number): boolean;
  /**
   * Writes `count` packets, packet i being buffer[offsets[i], offsets[i] + lengths[i]), with one
   * call into the addon. Returns how many were dropped for the reasons write() returns false
   * for. Throws like write() when the device failed. Optional: callers fall back to write().
   */
  writeBatch?(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  /** Stops reading and deletes the interface. Safe to call more than once. */
  close(): void;
}

export interface OpenTunOptions {
  /**
   * Interface name: at most 15 bytes, optionally with one "%d" that the kernel replaces with
   * the first free number. Empty or omitted: the kernel picks "tunN". A persistent TUN
   * interface of that name (created with "ip tuntap add") is attached when no process has it open.
   */
  name?: string;
  /**
   * Maximum size of a packet the reader accepts, in bytes (68 to 65535). Keep it at or above the
   * interface MTU: longer packets are dropped and counted in `droppedOversize`. The default
   * of 65535 never drops one; its cost is mostly address space, because the buffer is only
   * touched as far as batches fill it.
   */
  maxPacketSize?: number;
  /** Most packets read per readability event and passed in one batch (1 to 1024). */
  maxBatch?: number;
}

export const defaultMaxPacketSize = 65535;
export const defaultMaxBatch = 64;

/**
 * Opens (creating it if needed) a TUN interface in the network namespace of this process.
 * The interface starts down and without addresses.
 *
 * Throws an AcvpnError: CONFIG_INVALID for a bad name or limit, ENV_NO_TUN without
 * /dev/net/tun, ENV_NOT_ROOT without CAP_NET_ADMIN, ENV_COMMAND_FAILED when the name is held
 * by another process or another kind of interface, INTERNAL when the addon is not built.
 */
export function openTun(options: OpenTunOptions = {}, addon?: TunAddon): TunDevice {
  const name = options.name ?? '';
  const maxPacketSize = options.maxPacketSize ?? defaultMaxPacketSize;
  const maxBatch = options.maxBatch ?? defaultMaxBatch;
  validateInterfaceName(name);
  checkLimit('maxPacketSize', maxPacketSize, 68, 65535);
  checkLimit('maxBatch', maxBatch, 1, 1024);

  const tunAddon = addon ?? loadTunAddon();
  let handle: TunHandle;
  try {
    handle = tunAddon.open(name, maxPacketSize, maxBatch);
  } catch (error) {
    throw openError(error, name);
  }
  return new NativeTunDevice(handle);
}

function checkLimit(option: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new AcvpnError('CONFIG_INVALID', `TUN option ${option} is ${value}, expected an integer from ${min} to ${max}`, {
      option,
      value,
    });
  }
}

/** The TunDevice backed by the addon; openTun() returns one. */
export class NativeTunDevice implements TunDevice {
  readonly name: string;
  readonly #handle: TunHandle;
  #packetHandler: PacketHandler | undefined;
  #errorHandler: ((error: AcvpnError) => void) | undefined;
  #reading = false;
  #closed = false;

  constructor(handle: TunHandle) {
    this.#handle = handle;
    this.name = handle.name;
  }

  /** Packets dropped because they were longer than maxPacketSize. */
  get droppedOversize(): number {
    return this.#handle.droppedOversize;
  }

  onPackets(handler: PacketHandler): void {
    this.#packetHandler = handler;
    if (this.#reading || this.#closed) return;
    this.#reading = true;
    this.#handle.start(this.#deliver, this.#fail);
  }

  onError(handler: (error: AcvpnError) => void): void {
    this.#errorHandler = handler;
  }

  pause(): void {
    this.#handle.pause();
  }

  resume(): void {
    this.#handle.resume();
  }

  write(packet: Buffer, offset = 0, length = packet.length - offset): boolean {
    if (this.#closed) return false;
    const result = this.#handle.write(packet, offset, length);
    if (result >= 0) return true;
    if (isDroppedPacketErrno(-result)) return false;
    throw writeError(-result, this.name);
  }

  writeBatch(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    if (this.#closed) return count;
    let dropped = 0;
    let first = 0;
    while (first < count) {
      // The addon stops at the first failed packet; the rest go in another call after it.
      const batchOffsets = first === 0 ? offsets : offsets.subarray(first);
      const batchLengths = first === 0 ? lengths : lengths.subarray(first);
      const written = this.#handle.writeBatch(buffer, batchOffsets, batchLengths, count - first, this.#status);
      first += written;
      if (first >= count) break;
      const errno = this.#status[0] ?? 0;
      if (!isDroppedPacketErrno(errno)) throw writeError(errno, this.name);
      dropped += 1;
      first += 1;
    }
    return dropped;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
  }

  readonly #status = new Int32Array(1);

  // Arrow properties: bound once, so the addon keeps the same two functions for the device's
  // life and no closure is created per batch.
  readonly #deliver = (buffer: Buffer, lengths: Uint32Array, count: number): void => {
    this.#packetHandler?.(buffer, lengths, count);
  };

  readonly #fail = (error: TunSystemError): void => {
    const mapped = deviceError(error, this.name);
    if (this.#errorHandler === undefined) throw mapped;
    this.#errorHandler(mapped);
  };
}
