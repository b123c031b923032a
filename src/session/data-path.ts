// The data path between the TUN device and the tunnel channels.
//
//   TUN batch ──► DTLS channel when it is established (preferred: no TCP-over-TCP)
//             └─► CSTP channel otherwise
//             └─► dropped and counted while no channel is up (reconnecting)
//   channel ──► deliver() ──► pending list ──► one TUN writeBatch per receive callback
//
// ocserv sends downstream on whichever channel it last heard data from, so sending on CSTP while
// DTLS is healthy would move the downstream to TCP as well. One rule picks the channel per packet.

import type { TunDevice } from '../net/tun/tun-device.js';

/** The part of a channel (CSTP or DTLS) that the data path uses. */
export interface PacketChannel {
  /** True while the channel can carry data. */
  readonly established: boolean;
  /** Queues one IP packet; false when it was dropped. The source may be reused after the call. */
  sendPacket(source: Buffer, offset: number, length: number): boolean;
  /**
   * Sends a TUN batch at once: `count` packets back to back from byte 0 of `source`, packet i
   * being lengths[i] bytes long. Optional: without it, the data path calls sendPacket per packet.
   */
  sendBatch?(source: Buffer, lengths: Uint32Array, count: number): void;
}

/** Max packets per TUN writeBatch call. */
const MAX_PENDING = 256;

export interface DataPathStatistics {
  /** Packets read from the TUN device while no channel was up. */
  droppedWithoutChannel: number;
  /** Packets from the headend that the TUN device did not accept. */
  droppedByTun: number;
}

export class DataPath {
  readonly statistics: DataPathStatistics = { droppedWithoutChannel: 0, droppedByTun: 0 };
  private cstp: PacketChannel | undefined;
  private dtls: PacketChannel | undefined;

  // Packets from the headend waiting for the TUN device, as views into one ArrayBuffer: the
  // channel's receive buffer stays valid until its callback returns, and the flush runs as a
  // microtask right after that callback, before the next read can reuse the buffer.
  private pendingBuffer: ArrayBufferLike | undefined;
  private pendingView: Uint8Array | undefined;
  private pendingCount = 0;
  private flushQueued = false;
  private readonly pendingOffsets = new Uint32Array(MAX_PENDING);
  private readonly pendingLengths = new Uint32Array(MAX_PENDING);

  constructor(private readonly tun: TunDevice) {
    tun.onPackets((buffer, lengths, count) => this.sendBatch(buffer, lengths, count));
  }

  setCstp(channel: PacketChannel | undefined): void {
    this.cstp = channel;
  }

  setDtls(channel: PacketChannel | undefined): void {
    this.dtls = channel;
  }

  /** The channel that carries data now. */
  get activeChannel(): 'dtls' | 'cstp' | 'none' {
    const channel = this.channelInUse();
    if (channel === undefined) return 'none';
    return channel === this.dtls ? 'dtls' : 'cstp';
  }

  /**
   * Writes one packet from the headend to the TUN device: at once without writeBatch, else
   * together with the other packets of the same receive callback, which must not reuse the
   * packet's memory before its microtasks have run.
   */
  deliver(packet: Buffer): void {
    if (this.tun.writeBatch === undefined) {
      if (!this.tun.write(packet, 0, packet.length)) this.statistics.droppedByTun += 1;
      return;
    }
    if (this.pendingCount > 0 && (packet.buffer !== this.pendingBuffer || this.pendingCount === MAX_PENDING)) {
      this.flushDeliveries();
    }
    if (this.pendingCount === 0 && packet.buffer !== this.pendingBuffer) {
      this.pendingBuffer = packet.buffer;
      this.pendingView = new Uint8Array(packet.buffer);
    }
    this.pendingOffsets[this.pendingCount] = packet.byteOffset;
    this.pendingLengths[this.pendingCount] = packet.length;
    this.pendingCount += 1;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushDeliveries);
    }
  }

  private readonly flushDeliveries = (): void => {
    this.flushQueued = false;
    const count = this.pendingCount;
    if (count === 0) return;
    this.pendingCount = 0;
    this.statistics.droppedByTun += this.tun.writeBatch!(this.pendingView!, this.pendingOffsets, this.pendingLengths, count);
  };

  private sendBatch(buffer: Buffer, lengths: Uint32Array, count: number): void {
    const channel = this.channelInUse();
    if (channel === undefined) {
      this.statistics.droppedWithoutChannel += count;
      return;
    }
    if (channel.sendBatch !== undefined) {
      channel.sendBatch(buffer, lengths, count);
      return;
    }
    let offset = 0;
    for (let index = 0; index < count; index += 1) {
      const length = lengths[index] ?? 0;
      channel.sendPacket(buffer, offset, length);
      offset += length;
    }
  }

  /** The channel that takes data now: DTLS while it is established, else CSTP, else none. */
  private channelInUse(): PacketChannel | undefined {
    if (this.dtls?.established) return this.dtls;
    if (this.cstp?.established) return this.cstp;
    return undefined;
  }
}
