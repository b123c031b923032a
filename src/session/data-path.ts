// The data path between the TUN device and the tunnel channels.
//
//   TUN batch ──► DTLS channel when it is established (preferred: no TCP-over-TCP)
//             └─► CSTP channel otherwise
//             └─► dropped and counted while no channel is up (reconnecting)
//   channel ──► deliver() ──► TUN write
//
// ocserv sends downstream on whichever channel it last heard data from, so sending on CSTP while
// DTLS is healthy would move the downstream to TCP as well. One rule picks the channel per packet.

import type { TunDevice } from '../net/tun/tun-device.js';

/** What the data path needs from a channel (CSTP or DTLS). */
export interface PacketChannel {
  /** True while the channel can carry data. */
  readonly established: boolean;
  /** Queues one IP packet; false when it was dropped. The source may be reused after the call. */
  sendPacket(source: Buffer, offset: number, length: number): boolean;
}

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
    if (this.dtls?.established) return 'dtls';
    if (this.cstp?.established) return 'cstp';
    return 'none';
  }

  /** Writes one packet from the headend to the TUN device. */
  deliver(packet: Buffer): void {
    if (!this.tun.write(packet, 0, packet.length)) this.statistics.droppedByTun += 1;
  }

  private sendBatch(buffer: Buffer, lengths: Uint32Array, count: number): void {
    const channel = this.dtls?.established ? this.dtls : this.cstp?.established ? this.cstp : undefined;
    if (channel === undefined) {
      this.statistics.droppedWithoutChannel += count;
      return;
    }
    let offset = 0;
    for (let index = 0; index < count; index += 1) {
      const length = lengths[index] ?? 0;
      channel.sendPacket(buffer, offset, length);
      offset += length;
    }
  }
}
