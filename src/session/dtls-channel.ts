// The DTLS channel driver: one UDP socket to the headend, the DtlsClient, the AnyConnect packet
// type byte, and the channel's own DPD and keepalive timers.
//
//   sendBatch() ──► slot i of the send buffer [headroom | type 00 | packet | tailroom]
//               ──► seal in place (OpenSSL context in the addon) ──► one sendmmsg(2) per batch
//   UDP batch ──► DtlsClient (opens in place) ──► data [type | payload] ──► DATA: onPacket()
//                                                DPD-REQ: DPD-RESP   BYE: closed
//
// The socket and the cipher contexts live in the addon (src/net/tun/udp-socket.ts); every
// decision stays here and in DtlsClient. sendmmsg(2) copies the datagrams into the kernel before
// it returns, so one send buffer serves every batch and no send needs a completion callback.
//
// A failed handshake, a dead peer or a send error closes only this channel: the session falls back
// to CSTP and tries DTLS again later.

import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { FrameType } from '../cstp/frame.js';
import { decideLiveness } from '../cstp/liveness.js';
import { armTimerAt } from './timer.js';
import { DtlsClient, type DtlsOutput } from '../dtls/handshake.js';
import { SEAL_HEADROOM, SEAL_TAILROOM } from '../dtls/record.js';
import type { TunHandle, TunSystemError } from '../net/tun/tun-addon.js';
import { errnoName } from '../net/tun/tun-errors.js';
import { createNativeAead, openUdpSocket } from '../net/tun/udp-socket.js';

export interface DtlsChannelOptions {
  host: string;
  port: number;
  psk: Buffer;
  /** X-DTLS-App-ID bytes: the ClientHello session_id by which ocserv finds the session. */
  sessionId: Buffer;
  /** Largest datagram to send during the handshake. */
  handshakeMtu: number;
  /** Offered cipher suites (code points); the client's defaults when omitted. */
  suites?: readonly number[];
  dpdSeconds?: number;
  keepaliveSeconds?: number;
  /** Largest IP packet the channel sends. */
  maxPacketBytes: number;
  /**
   * Datagrams sealed and sent per sendmmsg(2); a larger batch from the TUN device goes out in
   * several calls. Read as the receive batch size too.
   */
  poolSize: number;
}

export interface DtlsChannelEvents {
  onEstablished(suite: string): void;
  /** An IP packet from the headend. The buffer is only valid during the call. */
  onPacket(packet: Buffer): void;
  /** The channel ended; `error` is undefined for a local close. */
  onClosed(error: AcvpnError | undefined): void;
}

export interface DtlsStatistics {
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  packetsDropped: number;
  dpdRequestsSent: number;
}

// Each send slot: record header and explicit nonce, the type byte, the packet, the AEAD tag.
const typeByteOffset = SEAL_HEADROOM;
const packetOffset = SEAL_HEADROOM + 1;

/** Most datagrams per sendmmsg(2) and per read batch; a 64-packet TUN batch fits in one. */
const MAX_BATCH = 64;
/** Datagrams the reader accepts: ocserv's DPD probes are MTU-sized, so this leaves wide slack. */
const MAX_DATAGRAM_BYTES = 16 * 1024;
const SOCKET_BUFFER_BYTES = 1024 * 1024;
/** errno values after which a send only loses the datagrams (UDP may drop them anyway). */
const EAGAIN = 11;
const ENOBUFS = 105;
const EINTR = 4;

export class DtlsChannel {
  readonly statistics: DtlsStatistics = {
    packetsSent: 0,
    bytesSent: 0,
    packetsReceived: 0,
    bytesReceived: 0,
    packetsDropped: 0,
    dpdRequestsSent: 0,
  };

  private readonly client: DtlsClient;
  private socket: TunHandle | undefined;
  private readonly slotBytes: number;
  private readonly sendBuffer: Buffer;
  private readonly sendOffsets = new Uint32Array(MAX_BATCH);
  private readonly sendLengths = new Uint32Array(MAX_BATCH);
  /** IP packet length of each slot, to take the unsent ones off bytesSent. */
  private readonly sendPacketLengths = new Uint32Array(MAX_BATCH);
  private readonly sendStatus = new Int32Array(1);
  /** The lengths array of a one-packet batch (sendPacket). */
  private readonly singleLength = new Uint32Array(1);
  /** Date.now() read once per received batch, so records in it cost no clock read. */
  private receiveClockMs = Date.now();
  private handshakeTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastReceivedMs = Date.now();
  private lastSentMs = Date.now();
  private lastDpdSentMs: number | undefined;
  /** Last DPD-RESP (or the handshake): the only proof that our datagrams reach the headend. */
  private lastUpstreamProofMs = Date.now();
  /** Set by sendBatch; read by the liveness timer. */
  private lastDataSentMs = 0;

  constructor(
    private readonly options: DtlsChannelOptions,
    private readonly events: DtlsChannelEvents,
    private readonly log: Logger,
  ) {
    this.client = new DtlsClient({
      psk: options.psk,
      sessionId: options.sessionId,
      mtu: options.handshakeMtu,
      ...(options.suites === undefined ? {} : { suites: [...options.suites] }),
      now: () => performance.now(),
      aead: (cipher, key, encrypt) => createNativeAead(cipher, key, encrypt),
    });
    this.slotBytes = packetOffset + options.maxPacketBytes + SEAL_TAILROOM;
    this.sendBuffer = Buffer.allocUnsafe(this.slotBytes * MAX_BATCH);
  }

  get established(): boolean {
    return !this.closed && this.client.state === 'established';
  }

  get suiteName(): string | undefined {
    return this.client.suiteName;
  }

  /** Bytes one record adds around an IP packet (header, nonce, tag, type byte), once established. */
  get packetOverhead(): number | undefined {
    const overhead = this.client.recordOverhead;
    return overhead === undefined ? undefined : overhead + 1;
  }

  /** Opens the UDP socket and sends the ClientHello; a failure closes the channel with the error. */
  start(): void {
    if (this.closed) return;
    try {
      this.socket = openUdpSocket({
        host: this.options.host,
        port: this.options.port,
        maxDatagramBytes: MAX_DATAGRAM_BYTES,
        maxBatch: Math.min(MAX_BATCH, Math.max(1, this.options.poolSize)),
        socketBufferBytes: SOCKET_BUFFER_BYTES,
      });
      this.socket.start(this.receiveBatch, this.socketFailed);
    } catch (error) {
      this.finish(AcvpnError.is(error) ? error : new AcvpnError('NETWORK_UNREACHABLE', `the DTLS socket failed: ${String(error)}`, {}, { cause: error }));
      return;
    }
    this.apply(this.client.start());
  }

  /** Seals one IP packet and sends it; false when it was dropped. */
  sendPacket(source: Buffer, offset: number, length: number): boolean {
    this.singleLength[0] = length;
    const dropped = this.statistics.packetsDropped;
    this.sendBatchFrom(source, offset, this.singleLength, 1);
    return this.statistics.packetsDropped === dropped && this.established;
  }

  /**
   * Seals and sends a batch of packets laid out as the TUN reader delivers them: `count` packets
   * back to back in `source` from byte 0, packet i being lengths[i] bytes long.
   */
  sendBatch(source: Buffer, lengths: Uint32Array, count: number): void {
    this.sendBatchFrom(source, 0, lengths, count);
  }

  /** Sends close_notify and closes the socket. */
  close(error?: AcvpnError): void {
    if (this.closed) return;
    const output = this.client.close();
    for (const datagram of output.datagrams) this.sendDatagram(datagram, 0, datagram.length);
    this.finish(error);
  }

  private sendBatchFrom(source: Buffer, firstOffset: number, lengths: Uint32Array, count: number): void {
    if (!this.established || this.socket === undefined) return;
    const maxPacketBytes = this.options.maxPacketBytes;
    let offset = firstOffset;
    let index = 0;
    while (index < count) {
      let slots = 0;
      let bytes = 0;
      for (; index < count && slots < MAX_BATCH; index += 1) {
        const length = lengths[index] ?? 0;
        const packetStart = offset;
        offset += length;
        if (length > maxPacketBytes) {
          this.statistics.packetsDropped += 1;
          continue;
        }
        const slot = slots * this.slotBytes;
        this.sendBuffer[slot + typeByteOffset] = FrameType.DATA;
        source.copy(this.sendBuffer, slot + packetOffset, packetStart, packetStart + length);
        const start = this.client.sealApplicationDataInPlace(this.sendBuffer, slot + typeByteOffset, length + 1);
        this.sendOffsets[slots] = start;
        this.sendLengths[slots] = slot + packetOffset + length + SEAL_TAILROOM - start;
        this.sendPacketLengths[slots] = length;
        slots += 1;
        bytes += length;
      }
      if (slots === 0) continue;
      const sent = this.writeSealed(slots);
      if (sent < 0) return;
      for (let unsent = sent; unsent < slots; unsent += 1) bytes -= this.sendPacketLengths[unsent] ?? 0;
      this.statistics.packetsSent += sent;
      this.statistics.packetsDropped += slots - sent;
      this.statistics.bytesSent += bytes;
    }
    this.lastSentMs = Date.now();
    this.lastDataSentMs = this.lastSentMs;
  }

  /**
   * Sends the sealed slots; returns how many left, or -1 after closing the channel. A full
   * socket buffer drops the rest of the batch as a congested link would, and the tunnelled
   * TCP recovers. NOTE: it does not pause the TUN reader as CSTP does, so a sender faster than
   * the link loses packets here instead of queueing them in the kernel.
   */
  private writeSealed(slots: number): number {
    const sent = this.socket!.writeBatch(this.sendBuffer, this.sendOffsets, this.sendLengths, slots, this.sendStatus);
    if (sent === slots) return sent;
    const errno = this.sendStatus[0] ?? 0;
    if (errno === EAGAIN || errno === ENOBUFS || errno === EINTR) return sent;
    this.finish(new AcvpnError('NETWORK_UNREACHABLE', `sending on the DTLS channel failed with ${errnoName(errno)}`, { errno }));
    return -1;
  }

  /** Sends one datagram outside the data batches: handshake flights, alerts, DPD and keepalive. */
  private sendDatagram(buffer: Buffer, offset: number, length: number): void {
    if (this.socket === undefined) return;
    const result = this.socket.write(buffer, offset, length);
    this.lastSentMs = Date.now();
    // Handshake flights are retransmitted and DPD probes repeated, so a full buffer only delays.
    if (result < 0 && -result !== EAGAIN && -result !== ENOBUFS && -result !== EINTR && !this.closed) {
      this.finish(new AcvpnError('NETWORK_UNREACHABLE', `sending on the DTLS channel failed with ${errnoName(-result)}`, { errno: -result }));
    }
  }

  private sendControl(type: number, payload?: Buffer): void {
    if (!this.established) return;
    const length = 1 + (payload?.length ?? 0);
    const buffer = Buffer.allocUnsafe(typeByteOffset + length + SEAL_TAILROOM);
    buffer[typeByteOffset] = type;
    payload?.copy(buffer, packetOffset);
    const start = this.client.sealApplicationDataInPlace(buffer, typeByteOffset, length);
    this.sendDatagram(buffer, start, typeByteOffset + length + SEAL_TAILROOM - start);
  }

  // Bound once: the addon keeps these two functions for the socket's life.
  private readonly receiveBatch = (buffer: Buffer, lengths: Uint32Array, count: number): void => {
    this.receiveClockMs = Date.now();
    let offset = 0;
    for (let index = 0; index < count && !this.closed; index += 1) {
      const length = lengths[index] ?? 0;
      const datagram = buffer.subarray(offset, offset + length);
      offset += length;
      // The batch buffer is reused by the next read. During the handshake DtlsClient may keep
      // views of a datagram (fragments being reassembled), so it gets a copy of its own.
      this.apply(this.client.receive(this.client.state === 'established' ? datagram : Buffer.from(datagram)));
    }
  };

  private readonly socketFailed = (error: TunSystemError): void => {
    this.finish(new AcvpnError('NETWORK_UNREACHABLE', `the DTLS socket failed: ${error.syscall} returned ${error.code}`, { code: error.code }, { cause: error }));
  };

  private apply(output: DtlsOutput): void {
    for (const datagram of output.datagrams) {
      if (!this.closed) this.sendDatagram(datagram, 0, datagram.length);
    }
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    if (output.nextTimerMs !== undefined && !this.closed) {
      this.handshakeTimer = setTimeout(() => this.apply(this.client.tick()), output.nextTimerMs);
    }

    for (const event of output.events) {
      switch (event.kind) {
        case 'established':
          this.lastReceivedMs = Date.now();
          this.lastUpstreamProofMs = this.lastReceivedMs;
          this.scheduleLiveness();
          this.events.onEstablished(event.suite);
          break;
        case 'data':
          this.handleRecord(event.payload);
          break;
        case 'alert':
          this.log.debug({ level: event.level, alert: event.name }, 'DTLS alert received');
          break;
        case 'closed':
          this.finish(new AcvpnError('NETWORK_UNREACHABLE', 'the headend closed the DTLS channel'));
          break;
        case 'failed':
          this.finish(event.error);
          break;
      }
      if (this.closed) return;
    }
  }

  private handleRecord(record: Buffer): void {
    const type = record[0];
    this.lastReceivedMs = this.receiveClockMs;
    if (type === FrameType.DPD_RESP) {
      this.lastUpstreamProofMs = this.lastReceivedMs;
      this.lastDpdSentMs = undefined;
    } else if (!this.upstreamUnconfirmed(this.lastReceivedMs)) {
      this.lastDpdSentMs = undefined;
    }
    const payload = record.subarray(1);
    switch (type) {
      case FrameType.DATA:
        this.statistics.packetsReceived += 1;
        this.statistics.bytesReceived += payload.length;
        this.events.onPacket(payload);
        return;
      case FrameType.DPD_REQ:
        if (this.log.isLevelEnabled('trace')) this.log.trace({ length: payload.length }, 'DTLS DPD request received');
        // ocserv probes with full-size DPDs; the echo proves the path carries that size.
        this.sendControl(FrameType.DPD_RESP, Buffer.from(payload));
        return;
      case FrameType.DISCONNECT:
        this.finish(new AcvpnError('NETWORK_UNREACHABLE', 'the headend sent DISCONNECT on the DTLS channel'));
        return;
      default:
        // DPD-RESP and KEEPALIVE only prove life; unknown types are dropped, never fatal.
        if (this.log.isLevelEnabled('trace')) this.log.trace({ type, length: payload.length }, 'DTLS control record received');
        return;
    }
  }

  /**
   * True when data went out after the last DPD-RESP and that answer is older than half the DPD
   * interval. Records that keep arriving prove only the downstream direction: with UDP cut toward
   * the headend, ocserv's own probes and stray packets still arrive, and dead-peer detection by
   * received records alone would never fire.
   */
  private upstreamUnconfirmed(now: number): boolean {
    const dpdMs = (this.options.dpdSeconds ?? 0) * 1000;
    return dpdMs > 0 && this.lastDataSentMs > this.lastUpstreamProofMs && now - this.lastUpstreamProofMs >= dpdMs / 2;
  }

  private scheduleLiveness(): void {
    if (this.closed) return;
    const now = Date.now();
    const dpdMs = (this.options.dpdSeconds ?? 0) * 1000;

    // While sending without recent proof that the headend hears us, probe with a DPD-REQ and give
    // up when it stays unanswered for a DPD interval. With checks every quarter interval, a cut is
    // noticed within two intervals: at most 1/2 + 1/4 until the probe, then 1 + 1/4 until dead.
    if (this.upstreamUnconfirmed(now)) {
      if (this.lastDpdSentMs === undefined) {
        this.lastDpdSentMs = now;
        this.statistics.dpdRequestsSent += 1;
        this.sendControl(FrameType.DPD_REQ);
      } else if (now - this.lastDpdSentMs >= dpdMs) {
        this.finish(new AcvpnError('CSTP_PEER_DEAD', `the headend did not answer DTLS dead-peer detection within ${this.options.dpdSeconds} s`));
        return;
      }
    }

    const verdict = decideLiveness(
      {
        lastReceivedMs: this.lastReceivedMs,
        lastSentMs: this.lastSentMs,
        lastDpdSentMs: this.lastDpdSentMs,
        dpdSeconds: this.options.dpdSeconds,
        keepaliveSeconds: this.options.keepaliveSeconds,
      },
      now,
    );
    switch (verdict.action) {
      case 'dpd':
        this.lastDpdSentMs = now;
        this.statistics.dpdRequestsSent += 1;
        this.sendControl(FrameType.DPD_REQ);
        break;
      case 'keepalive':
        this.sendControl(FrameType.KEEPALIVE);
        break;
      case 'dead':
        this.finish(new AcvpnError('CSTP_PEER_DEAD', `no reply on the DTLS channel for ${2 * (this.options.dpdSeconds ?? 0)} s`));
        return;
      case 'none':
        break;
    }
    // Check at least every quarter DPD interval, so the upstream probe above runs on time.
    const next = dpdMs > 0 ? Math.min(verdict.nextCheckMs, Date.now() + dpdMs / 4) : verdict.nextCheckMs;
    this.livenessTimer = armTimerAt(next, Date.now(), () => this.scheduleLiveness());
  }

  private finish(error: AcvpnError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    if (this.livenessTimer !== undefined) clearTimeout(this.livenessTimer);
    this.socket?.close();
    this.events.onClosed(error);
  }
}
