// A scripted DTLS 1.2 plain-PSK server for unit tests of DtlsClient. It returns one record per
// datagram, so a test can drop, reorder or duplicate single records. It shares the key schedule
// and record code with the client, which their own tests check against independent vectors.
// Interoperability with a real implementation is checked by the GnuTLS integration test.

import { timingSafeEqual } from 'node:crypto';

import {
  encodeHandshakeMessage,
  fragmentHandshakeMessage,
  HandshakeType,
  parseHandshakeFragments,
} from '../../../src/dtls/messages.js';
import { computeMasterSecret, computeVerifyData, expandKeys } from '../../../src/dtls/prf.js';
import { HandshakeReassembler } from '../../../src/dtls/reassembly.js';
import { ContentType, encodePlaintextRecord, parseRecords, RecordCipher } from '../../../src/dtls/record.js';
import { findCipherSuite, type CipherSuite } from '../../../src/dtls/suites.js';

export interface FakeServerOptions {
  psk: Buffer;
  /** Send a HelloVerifyRequest first, as RFC 6347 servers do (ocserv does not). */
  cookie?: boolean;
  /** Suite to choose; defaults to the client's first offer. */
  suite?: number;
  /** Version to put in the ServerHello (default DTLS 1.2). */
  serverVersion?: number;
  /** Send a ServerKeyExchange carrying this PSK identity hint. */
  identityHint?: string;
  /** Largest handshake fragment body the server sends (default: no fragmentation). */
  fragmentBody?: number;
  /** Flip a bit of the server's verify_data. */
  corruptFinished?: boolean;
}

export interface ParsedClientHello {
  messageSeq: number;
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  suites: number[];
  compressionMethods: Buffer;
  extensions: Buffer;
}

export function parseClientHello(body: Buffer, messageSeq: number): ParsedClientHello {
  let offset = 0;
  const version = body.readUInt16BE(offset);
  offset += 2;
  const random = body.subarray(offset, offset + 32);
  offset += 32;
  const sessionId = body.subarray(offset + 1, offset + 1 + body[offset]!);
  offset += 1 + sessionId.length;
  const cookie = body.subarray(offset + 1, offset + 1 + body[offset]!);
  offset += 1 + cookie.length;
  const suitesLength = body.readUInt16BE(offset);
  const suites: number[] = [];
  for (let i = 0; i < suitesLength; i += 2) suites.push(body.readUInt16BE(offset + 2 + i));
  offset += 2 + suitesLength;
  const compressionMethods = body.subarray(offset + 1, offset + 1 + body[offset]!);
  offset += 1 + compressionMethods.length;
  const extensions = body.subarray(offset);
  return { messageSeq, version, random, sessionId, cookie, suites, compressionMethods, extensions };
}

const COOKIE = Buffer.from('c00k1e-for-the-test');

export class FakeDtlsServer {
  readonly clientHellos: ParsedClientHello[] = [];
  readonly received: Buffer[] = [];
  clientIdentity: string | undefined;
  clientFinishedOk = false;
  alertsReceived: Array<[number, number]> = [];
  flight6Sends = 0;
  badRecords = 0;

  private readonly reassembler = new HandshakeReassembler();
  private readonly options: FakeServerOptions;
  private suite: CipherSuite | undefined;
  private serverRandom = Buffer.alloc(32, 0x5a);
  private clientRandom: Buffer | undefined;
  private transcript: Buffer[] = [];
  private sendSeq = 0;
  private epoch0Sequence = 0;
  private epoch1Sequence = 0;
  private writeCipher: RecordCipher | undefined;
  private readCipher: RecordCipher | undefined;
  private master: Buffer | undefined;
  private lastFlight: Buffer[] = [];
  private flight6: Buffer[] = [];

  constructor(options: FakeServerOptions) {
    this.options = options;
  }

  get established(): boolean {
    return this.flight6.length > 0;
  }

  /** Handles one datagram from the client; returns the datagrams the server sends back. */
  receive(datagram: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (const record of parseRecords(datagram).records) {
      if (record.epoch === 0 && record.type === ContentType.HANDSHAKE) {
        this.handleHandshake(record.fragment, out);
      } else if (record.epoch === 1 && this.readCipher !== undefined) {
        const plaintext = this.readCipher.open(record);
        // GnuTLS 3.7 drops a DTLS record that fails authentication without sending an alert (seen
        // in the integration test with a wrong PSK), and so does this fake.
        if (plaintext === null) {
          this.badRecords++;
          continue;
        }
        if (record.type === ContentType.HANDSHAKE) this.handleHandshake(plaintext, out);
        else if (record.type === ContentType.APPLICATION_DATA) {
          this.received.push(plaintext);
          out.push(this.writeCipher!.seal(ContentType.APPLICATION_DATA, this.epoch1Sequence++, plaintext));
        } else if (record.type === ContentType.ALERT) this.alertsReceived.push([plaintext[0]!, plaintext[1]!]);
      } else if (record.type === ContentType.ALERT) {
        this.alertsReceived.push([record.fragment[0]!, record.fragment[1]!]);
      }
    }
    return out;
  }

  /** Sends application data to the client (after the handshake). */
  sealData(payload: Buffer): Buffer {
    return this.writeCipher!.seal(ContentType.APPLICATION_DATA, this.epoch1Sequence++, payload);
  }

  sealRecord(type: number, payload: Buffer, sequence?: number): Buffer {
    return this.writeCipher!.seal(type, sequence ?? this.epoch1Sequence++, payload);
  }

  /** Returns copies of the records of the last flight, as a server retransmission sends them. */
  retransmitLastFlight(): Buffer[] {
    return this.lastFlight.map((record) => Buffer.from(record));
  }

  private handleHandshake(plaintext: Buffer, out: Buffer[]): void {
    for (const fragment of parseHandshakeFragments(plaintext) ?? []) {
      const verdict = this.reassembler.add(fragment);
      // A retransmitted client Finished means flight 6 was lost: send it again.
      if (verdict === 'old' && fragment.type === HandshakeType.FINISHED && this.flight6.length > 0) {
        this.sendFlight6(out);
      }
      // A retransmitted ClientHello means our last flight was lost.
      if (verdict === 'old' && fragment.type === HandshakeType.CLIENT_HELLO && fragment.fragmentOffset === 0) {
        out.push(...this.retransmitLastFlight());
      }
    }
    for (let message = this.reassembler.takeNext(); message !== undefined; message = this.reassembler.takeNext()) {
      const unfragmented = encodeHandshakeMessage(message.type, message.messageSeq, message.body);
      if (message.type === HandshakeType.CLIENT_HELLO) this.handleClientHello(message.body, message.messageSeq, unfragmented, out);
      else if (message.type === HandshakeType.CLIENT_KEY_EXCHANGE) this.handleClientKeyExchange(message.body, unfragmented);
      else if (message.type === HandshakeType.FINISHED) this.handleClientFinished(message.body, unfragmented, out);
    }
  }

  private handleClientHello(body: Buffer, messageSeq: number, unfragmented: Buffer, out: Buffer[]): void {
    const hello = parseClientHello(body, messageSeq);
    this.clientHellos.push(hello);
    if (this.options.cookie === true && !hello.cookie.equals(COOKIE)) {
      const verify = Buffer.concat([Buffer.from([0xfe, 0xff, COOKIE.length]), COOKIE]);
      this.sendSeq = messageSeq;
      this.lastFlight = this.handshakeRecords(HandshakeType.HELLO_VERIFY_REQUEST, verify);
      out.push(...this.lastFlight);
      return;
    }

    this.sendSeq = messageSeq;
    this.clientRandom = Buffer.from(hello.random);
    const suiteId = this.options.suite ?? hello.suites[0]!;
    this.suite = findCipherSuite(suiteId);
    this.transcript = [unfragmented];

    const serverHello = Buffer.alloc(2 + 32 + 1 + 2 + 1);
    serverHello.writeUInt16BE(this.options.serverVersion ?? 0xfefd, 0);
    this.serverRandom.copy(serverHello, 2);
    serverHello[34] = 0;
    serverHello.writeUInt16BE(suiteId, 35);
    serverHello[37] = 0;
    const flight = this.handshakeRecords(HandshakeType.SERVER_HELLO, serverHello);
    if (this.options.identityHint !== undefined) {
      const hint = Buffer.from(this.options.identityHint);
      const body = Buffer.alloc(2 + hint.length);
      body.writeUInt16BE(hint.length, 0);
      hint.copy(body, 2);
      flight.push(...this.handshakeRecords(HandshakeType.SERVER_KEY_EXCHANGE, body));
    }
    flight.push(...this.handshakeRecords(HandshakeType.SERVER_HELLO_DONE, Buffer.alloc(0)));
    this.lastFlight = flight;
    out.push(...flight);
  }

  private handleClientKeyExchange(body: Buffer, unfragmented: Buffer): void {
    this.clientIdentity = body.subarray(2, 2 + body.readUInt16BE(0)).toString();
    this.transcript.push(unfragmented);
    const suite = this.suite!;
    this.master = computeMasterSecret(suite.prfHash, this.options.psk, this.clientRandom!, this.serverRandom);
    const keys = expandKeys(suite, this.master, this.clientRandom!, this.serverRandom);
    this.readCipher = new RecordCipher(suite, keys.clientWriteKey, keys.clientWriteIv, 1);
    this.writeCipher = new RecordCipher(suite, keys.serverWriteKey, keys.serverWriteIv, 1);
  }

  private handleClientFinished(body: Buffer, unfragmented: Buffer, out: Buffer[]): void {
    const suite = this.suite!;
    const expected = computeVerifyData(suite.prfHash, this.master!, 'client finished', this.transcript);
    this.clientFinishedOk = expected.length === body.length && timingSafeEqual(expected, body);
    if (!this.clientFinishedOk) {
      // decrypt_error is the alert RFC 5246 §7.4.9 names for a Finished mismatch.
      out.push(this.writeCipher!.seal(ContentType.ALERT, this.epoch1Sequence++, Buffer.from([2, 51])));
      return;
    }
    this.transcript.push(unfragmented);
    const verifyData = computeVerifyData(suite.prfHash, this.master!, 'server finished', this.transcript);
    if (this.options.corruptFinished === true) verifyData[0] = verifyData[0]! ^ 1;
    this.flight6 = [Buffer.from([1]), encodeHandshakeMessage(HandshakeType.FINISHED, this.sendSeq++, verifyData)];
    this.sendFlight6(out);
  }

  private sendFlight6(out: Buffer[]): void {
    this.flight6Sends++;
    out.push(encodePlaintextRecord(ContentType.CHANGE_CIPHER_SPEC, this.epoch0Sequence++, this.flight6[0]!));
    out.push(this.writeCipher!.seal(ContentType.HANDSHAKE, this.epoch1Sequence++, this.flight6[1]!));
  }

  private handshakeRecords(type: number, body: Buffer): Buffer[] {
    const messageSeq = this.sendSeq++;
    if (type !== HandshakeType.HELLO_VERIFY_REQUEST) this.transcript.push(encodeHandshakeMessage(type, messageSeq, body));
    const fragments = fragmentHandshakeMessage(type, messageSeq, body, this.options.fragmentBody ?? 0xffff);
    return fragments.map((fragment) => encodePlaintextRecord(ContentType.HANDSHAKE, this.epoch0Sequence++, fragment));
  }
}
