// DTLS 1.2 handshake messages used by a plain-PSK client (RFC 5246 §7.4, RFC 6347 §4.2, RFC 4279
// §2), the handshake header with its fragment fields, and alert codes.
//
// Handshake header (RFC 6347 §4.2.2), 12 bytes, in front of every handshake fragment:
//
//  +------+--------------------+-------------+--------------------+--------------------+------
//  | type | length (BE24)      | message_seq | fragment_offset    | fragment_length    | body
//  +------+--------------------+-------------+--------------------+--------------------+------
//
// The handshake hash covers each message once, with fragment_offset 0 and fragment_length equal
// to length, however it was fragmented on the wire.

import { AcvpnError } from '../core/errors.js';
import { DTLS_1_2_VERSION } from './record.js';

export const HandshakeType = {
  HELLO_REQUEST: 0,
  CLIENT_HELLO: 1,
  SERVER_HELLO: 2,
  HELLO_VERIFY_REQUEST: 3,
  SERVER_KEY_EXCHANGE: 12,
  SERVER_HELLO_DONE: 14,
  CLIENT_KEY_EXCHANGE: 16,
  FINISHED: 20,
} as const;

export const HANDSHAKE_HEADER_LENGTH = 12;

export const AlertLevel = { WARNING: 1, FATAL: 2 } as const;

/** Alert descriptions (RFC 5246 §7.2, RFC 4279 §2, RFC 6066 §9). */
export const AlertDescription = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  handshake_failure: 40,
  bad_certificate: 42,
  illegal_parameter: 47,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  insufficient_security: 71,
  internal_error: 80,
  user_canceled: 90,
  no_renegotiation: 100,
  unsupported_extension: 110,
  unknown_psk_identity: 115,
} as const;

export function alertName(description: number): string {
  for (const [name, value] of Object.entries(AlertDescription)) {
    if (value === description) return name;
  }
  return `alert ${description}`;
}

const EXTENSION_RENEGOTIATION_INFO = 0xff01;

// ---- the handshake header -------------------------------------------------------------------

export interface HandshakeFragment {
  type: number;
  length: number;
  messageSeq: number;
  fragmentOffset: number;
  body: Buffer;
}

/** Builds one fragment of a message: header plus `body[offset, offset + fragmentLength)`. */
export function encodeHandshakeFragment(
  type: number,
  messageSeq: number,
  body: Buffer,
  fragmentOffset: number,
  fragmentLength: number,
): Buffer {
  const out = Buffer.alloc(HANDSHAKE_HEADER_LENGTH + fragmentLength);
  out[0] = type;
  out.writeUIntBE(body.length, 1, 3);
  out.writeUInt16BE(messageSeq, 4);
  out.writeUIntBE(fragmentOffset, 6, 3);
  out.writeUIntBE(fragmentLength, 9, 3);
  body.copy(out, HANDSHAKE_HEADER_LENGTH, fragmentOffset, fragmentOffset + fragmentLength);
  return out;
}

/** Builds the unfragmented form of a message, which is what the handshake hash covers. */
export function encodeHandshakeMessage(type: number, messageSeq: number, body: Buffer): Buffer {
  return encodeHandshakeFragment(type, messageSeq, body, 0, body.length);
}

/** Splits a message into fragments whose body part is at most `maxFragmentBody` bytes. */
export function fragmentHandshakeMessage(type: number, messageSeq: number, body: Buffer, maxFragmentBody: number): Buffer[] {
  if (maxFragmentBody < 1) throw new RangeError('a handshake fragment needs room for at least one body byte');
  if (body.length === 0) return [encodeHandshakeMessage(type, messageSeq, body)];
  const fragments: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += maxFragmentBody) {
    fragments.push(encodeHandshakeFragment(type, messageSeq, body, offset, Math.min(maxFragmentBody, body.length - offset)));
  }
  return fragments;
}

/**
 * Splits the plaintext of one handshake record into fragments. Returns null when a header is cut
 * short or its fragment does not fit inside the message length.
 */
export function parseHandshakeFragments(plaintext: Buffer): HandshakeFragment[] | null {
  const fragments: HandshakeFragment[] = [];
  let offset = 0;
  while (offset < plaintext.length) {
    if (plaintext.length - offset < HANDSHAKE_HEADER_LENGTH) return null;
    const length = plaintext.readUIntBE(offset + 1, 3);
    const fragmentOffset = plaintext.readUIntBE(offset + 6, 3);
    const fragmentLength = plaintext.readUIntBE(offset + 9, 3);
    const end = offset + HANDSHAKE_HEADER_LENGTH + fragmentLength;
    if (end > plaintext.length || fragmentOffset + fragmentLength > length) return null;
    fragments.push({
      type: plaintext[offset]!,
      length,
      messageSeq: plaintext.readUInt16BE(offset + 4),
      fragmentOffset,
      body: plaintext.subarray(offset + HANDSHAKE_HEADER_LENGTH, end),
    });
    offset = end;
  }
  return fragments;
}

// ---- message bodies -------------------------------------------------------------------------

/** A bounds-checked reader; every overrun becomes a decode_error for the caller to report. */
class BodyReader {
  private offset = 0;

  constructor(
    private readonly body: Buffer,
    private readonly messageName: string,
  ) {}

  uint8(): number {
    return this.take(1)[0]!;
  }

  uint16(): number {
    return this.take(2).readUInt16BE(0);
  }

  bytes(length: number): Buffer {
    return this.take(length);
  }

  vector8(): Buffer {
    return this.take(this.uint8());
  }

  vector16(): Buffer {
    return this.take(this.uint16());
  }

  get remaining(): number {
    return this.body.length - this.offset;
  }

  expectEnd(): void {
    if (this.remaining !== 0) throw decodeError(this.messageName, `${this.remaining} unexpected trailing bytes`);
  }

  private take(length: number): Buffer {
    if (this.offset + length > this.body.length) {
      throw decodeError(this.messageName, `needs ${length} more bytes at offset ${this.offset}, has ${this.remaining}`);
    }
    const out = this.body.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }
}

function decodeError(messageName: string, problem: string): AcvpnError {
  return new AcvpnError(
    'TLS_FAILED',
    `DTLS ${messageName} from the headend is malformed: ${problem}; the headend does not speak standard DTLS 1.2`,
    { alert: AlertDescription.decode_error },
  );
}

export interface ClientHelloFields {
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  suites: readonly number[];
}

export function encodeClientHello(fields: ClientHelloFields): Buffer {
  const suites = Buffer.alloc(2 + 2 * fields.suites.length);
  suites.writeUInt16BE(2 * fields.suites.length, 0);
  fields.suites.forEach((suite, i) => suites.writeUInt16BE(suite, 2 + 2 * i));

  // renegotiation_info with an empty renegotiated_connection (RFC 5746 §3.4): GnuTLS servers warn
  // or refuse without it, depending on their priority string.
  const extensions = Buffer.from([0x00, 0x05, EXTENSION_RENEGOTIATION_INFO >> 8, EXTENSION_RENEGOTIATION_INFO & 0xff, 0x00, 0x01, 0x00]);

  const version = Buffer.alloc(2);
  version.writeUInt16BE(DTLS_1_2_VERSION, 0);
  return Buffer.concat([
    version,
    fields.random,
    Buffer.from([fields.sessionId.length]),
    fields.sessionId,
    Buffer.from([fields.cookie.length]),
    fields.cookie,
    suites,
    Buffer.from([0x01, 0x00]), // one compression method: null
    extensions,
  ]);
}

export interface HelloVerifyRequest {
  serverVersion: number;
  cookie: Buffer;
}

export function parseHelloVerifyRequest(body: Buffer): HelloVerifyRequest {
  const reader = new BodyReader(body, 'HelloVerifyRequest');
  const serverVersion = reader.uint16();
  const cookie = Buffer.from(reader.vector8());
  reader.expectEnd();
  return { serverVersion, cookie };
}

export interface ServerHello {
  serverVersion: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuite: number;
  compressionMethod: number;
  extensionTypes: number[];
  /** The renegotiation_info body when the extension is present. */
  renegotiationInfo?: Buffer;
}

export function parseServerHello(body: Buffer): ServerHello {
  const reader = new BodyReader(body, 'ServerHello');
  const serverVersion = reader.uint16();
  const random = Buffer.from(reader.bytes(32));
  const sessionId = Buffer.from(reader.vector8());
  const cipherSuite = reader.uint16();
  const compressionMethod = reader.uint8();
  const hello: ServerHello = { serverVersion, random, sessionId, cipherSuite, compressionMethod, extensionTypes: [] };
  if (reader.remaining === 0) return hello;

  const extensions = new BodyReader(reader.vector16(), 'ServerHello extensions');
  reader.expectEnd();
  while (extensions.remaining > 0) {
    const type = extensions.uint16();
    const data = extensions.vector16();
    if (hello.extensionTypes.includes(type)) throw decodeError('ServerHello', `extension ${type} appears twice`);
    hello.extensionTypes.push(type);
    if (type === EXTENSION_RENEGOTIATION_INFO) hello.renegotiationInfo = Buffer.from(data);
  }
  return hello;
}

export const RENEGOTIATION_INFO_EXTENSION = EXTENSION_RENEGOTIATION_INFO;

/** Returns the PSK identity hint of a plain-PSK ServerKeyExchange (RFC 4279 §2). */
export function parseServerKeyExchange(body: Buffer): Buffer {
  const reader = new BodyReader(body, 'ServerKeyExchange');
  const hint = Buffer.from(reader.vector16());
  reader.expectEnd();
  return hint;
}

export function encodeClientKeyExchange(identity: Buffer): Buffer {
  const body = Buffer.alloc(2 + identity.length);
  body.writeUInt16BE(identity.length, 0);
  identity.copy(body, 2);
  return body;
}
