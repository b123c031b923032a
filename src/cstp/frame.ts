// CSTP framing: the 8-byte header in front of every packet inside the TLS stream.
//
//   0      1      2      3      4      5      6      7      8 ...
//  +------+------+------+------+------+------+------+------+-----------
//  | 0x53 | 0x54 | 0x46 | 0x01 | length (BE16) | type | 0x00 | payload
//  | 'S'  | 'T'  | 'F'  |      | payload only  |      |      | (length bytes)
//  +------+------+------+------+------+------+------+------+-----------
//
// Sending: ocserv 1.1 reads one TLS record and drops the session unless the record contains
// exactly one frame (record length == 8 + length). So every frame leaves in one write() of one
// buffer and must fit in one TLS record. Callers build data frames in place: the packet sits at
// offset + 8 of a pooled buffer and writeFrameHeader fills the 8 bytes of headroom in front.
//
// Receiving: the TLS stream arrives in arbitrary chunks, so CstpFrameDecoder reassembles frames
// by the length field. A frame inside one chunk comes back as a view into that chunk, and only a
// frame that spans chunks is copied.

import { AcvpnError } from '../core/errors.js';

/** Packet types, shared by CSTP and DTLS (DTLS sends the type as a 1-byte prefix instead). */
export const FrameType = {
  /** One IPv4 or IPv6 packet. */
  DATA: 0x00,
  /** Dead-peer-detection request; the peer replies with DPD_RESP. Payload optional. */
  DPD_REQ: 0x03,
  /** Dead-peer-detection response: ocserv echoes the request payload, some ASAs only its length. */
  DPD_RESP: 0x04,
  /** Disconnect ("BYE"), optionally a reason byte plus text (see disconnect.ts). */
  DISCONNECT: 0x05,
  /** One-way keepalive: the peer sends no reply. */
  KEEPALIVE: 0x07,
  /** Compressed IP packet, only after compression was negotiated (acvpn never offers it). */
  COMPRESSED: 0x08,
  /** Headend kick without reconnect. ocserv never sends it (it uses DISCONNECT). */
  TERMINATE: 0x09,
} as const;

export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_HEADER_LENGTH = 8;

/** Largest payload the 16-bit length field can carry. */
export const MAX_FRAME_LENGTH_FIELD = 0xffff;

/**
 * Largest payload acvpn sends in one frame: a TLS record carries at most 16384 bytes of
 * plaintext (RFC 8446 and RFC 5246), and the frame, header included, must fit in one record.
 */
export const MAX_SEND_PAYLOAD_LENGTH = 16384 - FRAME_HEADER_LENGTH;

/**
 * Default receive limit. A frame from ocserv fits in one TLS record, but some headends send
 * packets larger than the negotiated MTU, so the limit stays well above any MTU.
 */
export const DEFAULT_MAX_RECEIVE_PAYLOAD_LENGTH = 16384;

const magic0 = 0x53; // 'S'
const magic1 = 0x54; // 'T'
const magic2 = 0x46; // 'F'
const magic3 = 0x01;

/**
 * Writes the 8-byte CSTP header at `offset` for a payload of `payloadLength` bytes that already
 * sits at `offset + 8`. Returns the frame length (8 + payloadLength), so the caller can write
 * `buffer.subarray(offset, offset + frameLength)` in one call.
 *
 * Throws INTERNAL when the payload is too large for one TLS record or does not fit in the
 * buffer: both are caller bugs, and sending anyway would make ocserv drop the session.
 */
export function writeFrameHeader(buffer: Buffer, offset: number, type: number, payloadLength: number): number {
  if (!Number.isInteger(payloadLength) || payloadLength < 0 || payloadLength > MAX_SEND_PAYLOAD_LENGTH) {
    throw new AcvpnError(
      'INTERNAL',
      `CSTP payload length ${payloadLength} is outside 0..${MAX_SEND_PAYLOAD_LENGTH}; a frame must fit in one TLS record`,
      { payloadLength },
    );
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + FRAME_HEADER_LENGTH + payloadLength > buffer.length) {
    throw new AcvpnError(
      'INTERNAL',
      `CSTP frame of ${FRAME_HEADER_LENGTH + payloadLength} bytes at offset ${offset} ` +
        `does not fit in a buffer of ${buffer.length} bytes`,
      { offset, payloadLength, bufferLength: buffer.length },
    );
  }

  buffer[offset] = magic0;
  buffer[offset + 1] = magic1;
  buffer[offset + 2] = magic2;
  buffer[offset + 3] = magic3;
  buffer[offset + 4] = payloadLength >>> 8;
  buffer[offset + 5] = payloadLength & 0xff;
  buffer[offset + 6] = type & 0xff;
  buffer[offset + 7] = 0;
  return FRAME_HEADER_LENGTH + payloadLength;
}

/** Builds a whole frame in a new buffer: for control frames (DPD, keepalive, disconnect), not data. */
export function encodeControlFrame(type: number, payload?: Uint8Array): Buffer {
  const payloadLength = payload?.length ?? 0;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + payloadLength);
  if (payload !== undefined) frame.set(payload, FRAME_HEADER_LENGTH);
  writeFrameHeader(frame, 0, type, payloadLength);
  return frame;
}

export interface CstpFrame {
  type: number;
  /**
   * The payload. When the frame arrived inside one chunk this is a view into that chunk, so it
   * stays valid only as long as the caller does not reuse the chunk's memory.
   */
  payload: Buffer;
}

export interface CstpFrameDecoderOptions {
  /** Largest payload accepted, at most 65535; DEFAULT_MAX_RECEIVE_PAYLOAD_LENGTH when omitted. */
  maxPayloadLength?: number;
}

/**
 * Incremental CSTP deframer. Call push() with each chunk read from the TLS socket, then call
 * next() until it returns undefined. Chunks are kept by reference and never modified.
 *
 * A bad header throws CSTP_FRAME_INVALID. The stream is then out of sync, so the error is sticky:
 * every later next() throws it again, and the caller must close the connection.
 */
export class CstpFrameDecoder {
  readonly maxPayloadLength: number;

  private chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private offset = 0;
  /** Unread bytes over all chunks. */
  private buffered = 0;
  private failure: AcvpnError | undefined;
  /** Scratch space for a header that spans chunks, so that case allocates nothing either. */
  private readonly headerScratch = Buffer.alloc(FRAME_HEADER_LENGTH);

  constructor(options: CstpFrameDecoderOptions = {}) {
    const limit = options.maxPayloadLength ?? DEFAULT_MAX_RECEIVE_PAYLOAD_LENGTH;
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_FRAME_LENGTH_FIELD) {
      throw new AcvpnError('INTERNAL', `CSTP maxPayloadLength ${limit} is outside 0..${MAX_FRAME_LENGTH_FIELD}`);
    }
    this.maxPayloadLength = limit;
  }

  /** Number of bytes received but not yet returned as frames. */
  get bufferedLength(): number {
    return this.buffered;
  }

  /** Adds a chunk; ignored after an error, because the stream can no longer be decoded. */
  push(chunk: Buffer): void {
    if (chunk.length === 0 || this.failure !== undefined) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Returns the next complete frame, or undefined when more bytes are needed. */
  next(): CstpFrame | undefined {
    if (this.failure !== undefined) throw this.failure;
    if (this.buffered < FRAME_HEADER_LENGTH) return undefined;

    // Validate the header as soon as it is complete, before waiting for (and buffering) a
    // payload whose length the receiver rejects.
    const header = this.peekHeader();
    const headerOffset = header === this.headerScratch ? 0 : this.offset;
    this.validateHeader(header, headerOffset);
    const payloadLength = (header[headerOffset + 4]! << 8) | header[headerOffset + 5]!;
    const type = header[headerOffset + 6]!;

    const frameLength = FRAME_HEADER_LENGTH + payloadLength;
    if (this.buffered < frameLength) return undefined;

    const first = this.chunks[0]!;
    if (first.length - this.offset >= frameLength) {
      const start = this.offset + FRAME_HEADER_LENGTH;
      const payload = first.subarray(start, start + payloadLength);
      this.consume(frameLength);
      return { type, payload };
    }

    this.consume(FRAME_HEADER_LENGTH);
    const payload = Buffer.allocUnsafe(payloadLength);
    this.copyOut(payload);
    return { type, payload };
  }

  /** Returns the buffer with the 8 header bytes: chunks[0] when they lie inside it, else headerScratch. */
  private peekHeader(): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= FRAME_HEADER_LENGTH) return first;

    let filled = 0;
    let chunkIndex = 0;
    let position = this.offset;
    while (filled < FRAME_HEADER_LENGTH) {
      const chunk = this.chunks[chunkIndex]!;
      const count = Math.min(chunk.length - position, FRAME_HEADER_LENGTH - filled);
      chunk.copy(this.headerScratch, filled, position, position + count);
      filled += count;
      chunkIndex += 1;
      position = 0;
    }
    return this.headerScratch;
  }

  private validateHeader(header: Buffer, at: number): void {
    const valid =
      header[at] === magic0 &&
      header[at + 1] === magic1 &&
      header[at + 2] === magic2 &&
      header[at + 3] === magic3 &&
      header[at + 7] === 0;
    if (!valid) {
      const received = header.subarray(at, at + FRAME_HEADER_LENGTH).toString('hex').replace(/(..)(?!$)/g, '$1 ');
      this.fail(
        `invalid CSTP frame header: expected 53 54 46 01 <length> <type> 00, received ${received}. ` +
          'The TLS stream is out of sync; the connection must be reopened',
        { header: received },
      );
    }

    const payloadLength = (header[at + 4]! << 8) | header[at + 5]!;
    if (payloadLength > this.maxPayloadLength) {
      this.fail(
        `CSTP frame payload of ${payloadLength} bytes exceeds the receive limit of ${this.maxPayloadLength} bytes; ` +
          'the connection must be reopened',
        { payloadLength, maxPayloadLength: this.maxPayloadLength },
      );
    }
  }

  private fail(message: string, details: Record<string, unknown>): never {
    this.failure = new AcvpnError('CSTP_FRAME_INVALID', message, details);
    // Drop the references so a dead decoder does not pin the received chunks.
    this.chunks = [];
    this.offset = 0;
    this.buffered = 0;
    throw this.failure;
  }

  /** Skips `count` bytes; the caller has checked that they are buffered. */
  private consume(count: number): void {
    let remaining = count;
    this.buffered -= count;
    while (remaining > 0) {
      const first = this.chunks[0]!;
      const available = first.length - this.offset;
      if (available > remaining) {
        this.offset += remaining;
        return;
      }
      remaining -= available;
      this.chunks.shift();
      this.offset = 0;
    }
  }

  /** Moves the next `target.length` bytes into `target`; they are buffered (checked by the caller). */
  private copyOut(target: Buffer): void {
    let filled = 0;
    while (filled < target.length) {
      const first = this.chunks[0]!;
      const count = Math.min(first.length - this.offset, target.length - filled);
      first.copy(target, filled, this.offset, this.offset + count);
      filled += count;
      this.consume(count);
    }
  }
}
