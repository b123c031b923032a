// DTLS 1.2 record layer (RFC 6347 §4.1): record headers, splitting a datagram into records, AEAD
// protection of one epoch in one direction, and the anti-replay window.
//
//   0      1      2      3      4      5      6      7      8      9     10     11     12    13 ...
//  +------+------+------+------+------+------+------+------+------+------+------+------+------+-----
//  | type | version (0xFEFD)   | epoch (BE16)|        sequence number (BE48)       |length (BE16)| fragment
//  +------+------+------+------+------+------+------+------+------+------+------+------+------+-----
//
// Protected fragment layouts:
//   AES-GCM (RFC 5288 §3):            explicit nonce (8) ‖ ciphertext ‖ tag (16)
//   ChaCha20-Poly1305 (RFC 7905 §2):  ciphertext ‖ tag (16)
// The GCM explicit nonce is epoch ‖ sequence (unique per record, as RFC 6347 suggests), and the
// ChaCha20 nonce is the write IV XOR (4 zero bytes ‖ epoch ‖ sequence). The additional data of
// both is epoch ‖ sequence ‖ type ‖ version ‖ plaintext length (RFC 5246 §6.2.3.3 with the DTLS
// 64-bit epoch ‖ sequence as seq_num): the header fields in another order.

import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';

import type { CipherSuite } from './suites.js';

export const ContentType = {
  CHANGE_CIPHER_SPEC: 20,
  ALERT: 21,
  HANDSHAKE: 22,
  APPLICATION_DATA: 23,
} as const;

/** DTLS 1.2 on the wire (the one's complement of 1.2). */
export const DTLS_1_2_VERSION = 0xfefd;
/** DTLS 1.0; servers may use it in the record header of early handshake records (RFC 6347 §4.1). */
export const DTLS_1_0_VERSION = 0xfeff;

export const RECORD_HEADER_LENGTH = 13;
/** The largest sequence number a record may carry; the epoch must change before it wraps. */
export const MAX_SEQUENCE_NUMBER = 2 ** 48 - 1;

/** Bytes a caller must leave in front of the payload for sealInPlace: header plus the GCM explicit nonce. */
export const SEAL_HEADROOM = RECORD_HEADER_LENGTH + 8;
/** Bytes a caller must leave after the payload for sealInPlace: the AEAD tag. */
export const SEAL_TAILROOM = 16;

/**
 * An AEAD context for one key and direction that works in place (the addon's Aead). Without one,
 * RecordCipher uses node:crypto, which builds a new cipher context and key schedule per record.
 */
export interface AeadContext {
  /** Encrypts buffer[offset, offset + length) in place and writes the tag right behind it. */
  seal(buffer: Uint8Array, offset: number, length: number, nonce: Uint8Array, aad: Uint8Array): void;
  /** Decrypts buffer[offset, offset + length) in place; false when the tag behind it does not match. */
  open(buffer: Uint8Array, offset: number, length: number, nonce: Uint8Array, aad: Uint8Array): boolean;
}

/** Creates an AeadContext for a node:crypto cipher name; `encrypt` picks seal or open. */
export type AeadFactory = (cipher: CipherSuite['cipher'], key: Buffer, encrypt: boolean) => AeadContext;

/** One record of a datagram; `fragment` and `header` are views into the datagram. */
export interface DtlsRecord {
  type: number;
  version: number;
  epoch: number;
  sequence: number;
  header: Buffer;
  fragment: Buffer;
}

export interface ParsedDatagram {
  records: DtlsRecord[];
  /** True when trailing bytes did not form a whole record; they are dropped. */
  truncated: boolean;
}

/** Splits a datagram into records; a record whose length overruns the datagram ends the parse. */
export function parseRecords(datagram: Buffer): ParsedDatagram {
  const records: DtlsRecord[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    if (datagram.length - offset < RECORD_HEADER_LENGTH) return { records, truncated: true };
    const length = datagram.readUInt16BE(offset + 11);
    const end = offset + RECORD_HEADER_LENGTH + length;
    if (end > datagram.length) return { records, truncated: true };

    records.push({
      type: datagram[offset]!,
      version: datagram.readUInt16BE(offset + 1),
      epoch: datagram.readUInt16BE(offset + 3),
      sequence: datagram.readUIntBE(offset + 5, 6),
      header: datagram.subarray(offset, offset + RECORD_HEADER_LENGTH),
      fragment: datagram.subarray(offset + RECORD_HEADER_LENGTH, end),
    });
    offset = end;
  }
  return { records, truncated: false };
}

export function writeRecordHeader(
  buffer: Buffer,
  offset: number,
  type: number,
  epoch: number,
  sequence: number,
  length: number,
): void {
  buffer[offset] = type;
  buffer.writeUInt16BE(DTLS_1_2_VERSION, offset + 1);
  buffer.writeUInt16BE(epoch, offset + 3);
  buffer.writeUIntBE(sequence, offset + 5, 6);
  buffer.writeUInt16BE(length, offset + 11);
}

/** Builds an epoch-0 (unprotected) record. */
export function encodePlaintextRecord(type: number, sequence: number, fragment: Buffer): Buffer {
  const record = Buffer.alloc(RECORD_HEADER_LENGTH + fragment.length);
  writeRecordHeader(record, 0, type, 0, sequence, fragment.length);
  fragment.copy(record, RECORD_HEADER_LENGTH);
  return record;
}

/**
 * AEAD protection for one epoch in one direction. The caller owns the sequence numbers (a
 * retransmitted record needs a new one) and the replay check, so one instance serves both the
 * handshake and the data path.
 */
export class RecordCipher {
  readonly suite: CipherSuite;
  readonly epoch: number;
  private readonly key: Buffer;
  // The cipher-name union matches no single createCipheriv overload. The GCM and ChaCha20-Poly1305
  // overloads return objects with the same methods, so typing it as GCM is safe.
  private readonly aeadName: CipherGCMTypes;
  private readonly writeIv: Buffer;
  // Reused per record: createCipheriv and setAAD copy their input before returning.
  private readonly nonce = Buffer.alloc(12);
  private readonly additionalData = Buffer.alloc(RECORD_HEADER_LENGTH);
  // Created on first use: one instance serves one direction, so only one of them is ever needed.
  private sealContext: AeadContext | undefined;
  private openContext: AeadContext | undefined;

  constructor(
    suite: CipherSuite,
    key: Buffer,
    writeIv: Buffer,
    epoch: number,
    private readonly aead?: AeadFactory,
  ) {
    if (key.length !== suite.keyLength || writeIv.length !== suite.fixedIvLength) {
      throw new RangeError(`${suite.name} needs a ${suite.keyLength}-byte key and a ${suite.fixedIvLength}-byte IV`);
    }
    this.suite = suite;
    this.aeadName = suite.cipher as CipherGCMTypes;
    this.key = Buffer.from(key);
    this.writeIv = Buffer.from(writeIv);
    this.epoch = epoch;
  }

  /** Bytes a protected record adds in front of the plaintext (header plus explicit nonce). */
  get headerOverhead(): number {
    return RECORD_HEADER_LENGTH + this.suite.explicitNonceLength;
  }

  /** Bytes a protected record adds in total, so a datagram of size S carries S minus this in plaintext. */
  get recordOverhead(): number {
    return this.headerOverhead + this.suite.tagLength;
  }

  /**
   * Encrypts `buffer[payloadOffset, payloadOffset + payloadLength)` in place and writes the header
   * and explicit nonce in front and the tag behind it. Needs SEAL_HEADROOM bytes before the payload
   * and SEAL_TAILROOM after it. Returns the offset where the record starts. The record ends at
   * payloadOffset + payloadLength + SEAL_TAILROOM for every suite, because ChaCha20 has no explicit
   * nonce and its record starts 8 bytes later instead.
   */
  sealInPlace(buffer: Buffer, payloadOffset: number, payloadLength: number, type: number, sequence: number): number {
    const start = payloadOffset - this.headerOverhead;
    if (start < 0 || payloadOffset + payloadLength + this.suite.tagLength > buffer.length) {
      throw new RangeError('sealInPlace needs SEAL_HEADROOM bytes before and SEAL_TAILROOM bytes after the payload');
    }

    this.fillAdditionalData(this.epoch, sequence, type, DTLS_1_2_VERSION, payloadLength);
    this.fillNonce(this.epoch, sequence);
    if (this.aead !== undefined) {
      this.sealContext ??= this.aead(this.suite.cipher, this.key, true);
      this.sealContext.seal(buffer, payloadOffset, payloadLength, this.nonce, this.additionalData);
    } else {
      this.sealWithNodeCrypto(buffer, payloadOffset, payloadLength);
    }

    const fragmentLength = this.suite.explicitNonceLength + payloadLength + this.suite.tagLength;
    writeRecordHeader(buffer, start, type, this.epoch, sequence, fragmentLength);
    if (this.suite.explicitNonceLength > 0) {
      this.additionalData.copy(buffer, start + RECORD_HEADER_LENGTH, 0, 8);
    }
    return start;
  }

  private sealWithNodeCrypto(buffer: Buffer, payloadOffset: number, payloadLength: number): void {
    const cipher = createCipheriv(this.aeadName, this.key, this.nonce, { authTagLength: this.suite.tagLength });
    cipher.setAAD(this.additionalData, { plaintextLength: payloadLength });
    const ciphertext = cipher.update(buffer.subarray(payloadOffset, payloadOffset + payloadLength));
    cipher.final();
    ciphertext.copy(buffer, payloadOffset);
    cipher.getAuthTag().copy(buffer, payloadOffset + payloadLength);
  }

  /** Builds a protected record in a new buffer (handshake and alerts; the data path uses sealInPlace). */
  seal(type: number, sequence: number, payload: Buffer): Buffer {
    const buffer = Buffer.alloc(this.recordOverhead + payload.length);
    const payloadOffset = this.headerOverhead;
    payload.copy(buffer, payloadOffset);
    this.sealInPlace(buffer, payloadOffset, payload.length, type, sequence);
    return buffer;
  }

  /**
   * Decrypts a record of this epoch; returns null when it is too short or fails authentication.
   * With an AeadFactory the plaintext is decrypted in place and returned as a view into the
   * record's fragment, so the datagram's bytes change (also when authentication fails).
   */
  open(record: DtlsRecord): Buffer | null {
    const { explicitNonceLength, tagLength } = this.suite;
    const fragment = record.fragment;
    const plaintextLength = fragment.length - explicitNonceLength - tagLength;
    if (plaintextLength < 0) return null;

    this.fillAdditionalData(record.epoch, record.sequence, record.type, record.version, plaintextLength);
    if (explicitNonceLength > 0) {
      this.writeIv.copy(this.nonce, 0);
      fragment.copy(this.nonce, this.writeIv.length, 0, explicitNonceLength);
    } else {
      this.fillNonce(record.epoch, record.sequence);
    }

    if (this.aead !== undefined) {
      this.openContext ??= this.aead(this.suite.cipher, this.key, false);
      const authentic = this.openContext.open(fragment, explicitNonceLength, plaintextLength, this.nonce, this.additionalData);
      return authentic ? fragment.subarray(explicitNonceLength, explicitNonceLength + plaintextLength) : null;
    }

    const decipher = createDecipheriv(this.aeadName, this.key, this.nonce, { authTagLength: tagLength });
    decipher.setAAD(this.additionalData, { plaintextLength });
    decipher.setAuthTag(fragment.subarray(fragment.length - tagLength));
    const plaintext = decipher.update(fragment.subarray(explicitNonceLength, fragment.length - tagLength));
    try {
      decipher.final();
    } catch {
      return null;
    }
    return plaintext;
  }

  private fillAdditionalData(epoch: number, sequence: number, type: number, version: number, length: number): void {
    this.additionalData.writeUInt16BE(epoch, 0);
    this.additionalData.writeUIntBE(sequence, 2, 6);
    this.additionalData[8] = type;
    this.additionalData.writeUInt16BE(version, 9);
    this.additionalData.writeUInt16BE(length, 11);
  }

  private fillNonce(epoch: number, sequence: number): void {
    if (this.suite.explicitNonceLength > 0) {
      // GCM: 4-byte salt from the key block, then epoch ‖ sequence as the explicit part.
      this.writeIv.copy(this.nonce, 0);
      this.nonce.writeUInt16BE(epoch, 4);
      this.nonce.writeUIntBE(sequence, 6, 6);
      return;
    }
    // ChaCha20: the 12-byte IV XOR the left-padded 64-bit epoch ‖ sequence.
    this.nonce.fill(0, 0, 4);
    this.nonce.writeUInt16BE(epoch, 4);
    this.nonce.writeUIntBE(sequence, 6, 6);
    for (let i = 0; i < 12; i++) this.nonce[i] = this.nonce[i]! ^ this.writeIv[i]!;
  }
}

/**
 * Anti-replay window of RFC 6347 §4.1.2.6: the highest sequence number accepted so far plus a
 * 64-bit bitmap of the 64 numbers up to and including it (bit i = highest - i). Check a record
 * with isReplay before decrypting and call markReceived only after it authenticated, so forged
 * records cannot move the window.
 */
export class ReplayWindow {
  static readonly SIZE = 64;
  private highest = -1;
  // The bitmap as two 32-bit words, so the hot path needs no BigInt.
  private low = 0;
  private high = 0;

  /** True when the number was already accepted or is older than the window. */
  isReplay(sequence: number): boolean {
    if (sequence > this.highest) return false;
    const offset = this.highest - sequence;
    if (offset >= ReplayWindow.SIZE) return true;
    return this.testBit(offset);
  }

  markReceived(sequence: number): void {
    if (sequence > this.highest) {
      this.shift(this.highest < 0 ? ReplayWindow.SIZE : sequence - this.highest);
      this.highest = sequence;
      this.low = (this.low | 1) >>> 0;
      return;
    }
    const offset = this.highest - sequence;
    if (offset >= ReplayWindow.SIZE) return;
    if (offset < 32) this.low = (this.low | (1 << offset)) >>> 0;
    else this.high = (this.high | (1 << (offset - 32))) >>> 0;
  }

  reset(): void {
    this.highest = -1;
    this.low = 0;
    this.high = 0;
  }

  private testBit(offset: number): boolean {
    if (offset < 32) return ((this.low >>> offset) & 1) === 1;
    return ((this.high >>> (offset - 32)) & 1) === 1;
  }

  private shift(count: number): void {
    if (count >= 64) {
      this.low = 0;
      this.high = 0;
    } else if (count >= 32) {
      // JavaScript masks shift counts to 5 bits, so a shift by 32 must not go through `<< count`.
      this.high = (this.low << (count - 32)) >>> 0;
      this.low = 0;
    } else {
      this.high = ((this.high << count) | (this.low >>> (32 - count))) >>> 0;
      this.low = (this.low << count) >>> 0;
    }
  }
}
