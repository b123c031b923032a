// The DTLS channel driver: one UDP socket to the headend, the DtlsClient, the AnyConnect packet
// type byte, and the channel's own DPD and keepalive timers.
//
//   sendPacket() ──► pooled buffer [headroom | type 00 | packet | tailroom] ──► seal in place ──► UDP
//   UDP ──► DtlsClient ──► data [type | payload] ──► DATA: onPacket()   DPD-REQ: DPD-RESP   BYE: closed
//
// A failed handshake, a dead peer or a send error closes only this channel: the session falls back
// to CSTP and tries DTLS again later.

import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { FrameType } from '../cstp/frame.js';
import { decideLiveness } from '../cstp/liveness.js';
import { DtlsClient, type DtlsOutput } from '../dtls/handshake.js';
import { SEAL_HEADROOM, SEAL_TAILROOM } from '../dtls/record.js';

export interface DtlsChannelOptions {
  host: string;
  port: number;
  psk: Buffer;
  /** X-DTLS-App-ID bytes: the ClientHello session_id by which ocserv finds the session. */
  sessionId: Buffer;
  /** Largest datagram to send during the handshake. */
  handshakeMtu: number;
  dpdSeconds?: number;
  keepaliveSeconds?: number;
  /** Largest IP packet the channel sends. */
  maxPacketBytes: number;
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

// Each pooled buffer: record header and explicit nonce, the type byte, the packet, the AEAD tag.
const typeByteOffset = SEAL_HEADROOM;
const packetOffset = SEAL_HEADROOM + 1;

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
  private readonly socket: Socket;
  private readonly freeBuffers: Buffer[] = [];
  private handshakeTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastReceivedMs = Date.now();
  private lastSentMs = Date.now();
  private lastDpdSentMs: number | undefined;
  /** Last DPD-RESP (or the handshake): the only proof that our datagrams reach the headend. */
  private lastUpstreamProofMs = Date.now();
  /** Set by sendPacket; read by the liveness timer. */
  private lastDataSentMs = 0;

  constructor(
    private readonly options: DtlsChannelOptions,
    private readonly events: DtlsChannelEvents,
    private readonly log: Logger,
  ) {
    this.client = new DtlsClient({ psk: options.psk, sessionId: options.sessionId, mtu: options.handshakeMtu, now: () => performance.now() });
    for (let index = 0; index < options.poolSize; index += 1) {
      this.freeBuffers.push(Buffer.allocUnsafe(packetOffset + options.maxPacketBytes + SEAL_TAILROOM));
    }
    this.socket = createSocket({ type: isIPv6(options.host) ? 'udp6' : 'udp4', recvBufferSize: 1024 * 1024, sendBufferSize: 1024 * 1024 });
    this.socket.on('message', (datagram) => this.receive(datagram));
    this.socket.on('error', (error) => this.finish(new AcvpnError('NETWORK_UNREACHABLE', `the DTLS socket failed: ${error.message}`, {}, { cause: error })));
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

  start(): void {
    this.socket.connect(this.options.port, this.options.host, () => {
      if (this.closed) return;
      this.apply(this.client.start());
    });
  }

  /** Seals one IP packet into a pooled buffer and sends it; false when it was dropped. */
  sendPacket(source: Buffer, offset: number, length: number): boolean {
    if (!this.established) return false;
    const buffer = length <= this.options.maxPacketBytes ? this.freeBuffers.pop() : undefined;
    if (buffer === undefined) {
      this.statistics.packetsDropped += 1;
      return false;
    }
    buffer[typeByteOffset] = FrameType.DATA;
    source.copy(buffer, packetOffset, offset, offset + length);
    this.sendSealed(buffer, length + 1, true);
    this.lastDataSentMs = this.lastSentMs;
    this.statistics.packetsSent += 1;
    this.statistics.bytesSent += length;
    return true;
  }

  /** Sends close_notify and closes the socket. */
  close(error?: AcvpnError): void {
    if (this.closed) return;
    const output = this.client.close();
    for (const datagram of output.datagrams) this.socket.send(datagram);
    this.finish(error);
  }

  private sendSealed(buffer: Buffer, payloadLength: number, pooled: boolean): void {
    const start = this.client.sealApplicationDataInPlace(buffer, typeByteOffset, payloadLength);
    const end = typeByteOffset + payloadLength + SEAL_TAILROOM;
    this.lastSentMs = Date.now();
    this.socket.send(buffer, start, end - start, (error) => {
      if (pooled) this.freeBuffers.push(buffer);
      if (error) this.finish(new AcvpnError('NETWORK_UNREACHABLE', `sending on the DTLS channel failed: ${error.message}`, {}, { cause: error }));
    });
  }

  private sendControl(type: number, payload?: Buffer): void {
    if (!this.established) return;
    const length = 1 + (payload?.length ?? 0);
    const buffer = Buffer.allocUnsafe(typeByteOffset + length + SEAL_TAILROOM);
    buffer[typeByteOffset] = type;
    payload?.copy(buffer, packetOffset);
    this.sendSealed(buffer, length, false);
  }

  private receive(datagram: Buffer): void {
    if (this.closed) return;
    this.apply(this.client.receive(datagram));
  }

  private apply(output: DtlsOutput): void {
    for (const datagram of output.datagrams) {
      if (!this.closed) this.socket.send(datagram);
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
    this.lastReceivedMs = Date.now();
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
   * True when data went out after the last DPD-RESP and that answer is older than the DPD
   * interval. Records that keep arriving prove only the downstream direction: with UDP cut toward
   * the headend, ocserv's own probes and stray packets still arrive, and dead-peer detection by
   * received records alone would never fire.
   */
  private upstreamUnconfirmed(now: number): boolean {
    const dpdMs = (this.options.dpdSeconds ?? 0) * 1000;
    return dpdMs > 0 && this.lastDataSentMs > this.lastUpstreamProofMs && now - this.lastUpstreamProofMs >= dpdMs;
  }

  private scheduleLiveness(): void {
    if (this.closed) return;
    const now = Date.now();
    const dpdMs = (this.options.dpdSeconds ?? 0) * 1000;

    // While sending without proof that the headend hears us, probe with a DPD-REQ and give up when
    // it stays unanswered for a DPD interval: a cut is noticed within two intervals.
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
    // Check at least every half DPD interval, so the upstream probe above runs on time.
    const next = dpdMs > 0 ? Math.min(verdict.nextCheckMs, Date.now() + dpdMs / 2) : verdict.nextCheckMs;
    if (!Number.isFinite(next)) return;
    const delay = Math.min(2 ** 31 - 1, Math.max(100, next - Date.now()));
    this.livenessTimer = setTimeout(() => this.scheduleLiveness(), delay);
    this.livenessTimer.unref();
  }

  private finish(error: AcvpnError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    if (this.livenessTimer !== undefined) clearTimeout(this.livenessTimer);
    this.socket.close();
    this.events.onClosed(error);
  }
}
