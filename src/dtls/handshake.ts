// DTLS 1.2 plain-PSK client (RFC 6347, RFC 5246, RFC 4279) as a pure state machine: it takes
// datagrams and the time and returns datagrams to send, events and when to call tick() next.
// The caller (udp-driver.ts) owns the socket and the timer.
//
//   client                                   headend
//   ClientHello (session_id = App-ID)   -->                          flight 1
//                                       <--  HelloVerifyRequest       flight 2 (ocserv skips it)
//   ClientHello + cookie                -->                          flight 3
//                                       <--  ServerHello, [ServerKeyExchange], ServerHelloDone
//   ClientKeyExchange, ChangeCipherSpec,
//   Finished                            -->                          flight 5
//                                       <--  ChangeCipherSpec, Finished
//   application data                    <->  application data
//
// States: idle → awaiting-server-hello → awaiting-server-hello-done → awaiting-server-finished
// → established → closed, and failed from any handshake state. The first ClientHello and the
// HelloVerifyRequest stay out of the handshake hash. When the headend skips HelloVerifyRequest,
// the first ClientHello is the one that counts (RFC 6347 §4.2.1).
//
// Retransmission (RFC 6347 §4.2.4): the last flight goes out again when the timer expires,
// starting at 1 s and doubling up to 60 s, until the handshake deadline (12 s by default, as
// openconnect uses). A retransmitted ServerHelloDone shows that flight 5 was lost, so it is resent
// at once.

import { randomBytes, timingSafeEqual } from 'node:crypto';

import { AcvpnError } from '../core/errors.js';
import {
  AlertDescription,
  AlertLevel,
  alertName,
  encodeClientHello,
  encodeClientKeyExchange,
  encodeHandshakeMessage,
  fragmentHandshakeMessage,
  HANDSHAKE_HEADER_LENGTH,
  HandshakeType,
  parseHandshakeFragments,
  parseHelloVerifyRequest,
  parseServerHello,
  parseServerKeyExchange,
  RENEGOTIATION_INFO_EXTENSION,
} from './messages.js';
import { computeMasterSecret, computeVerifyData, expandKeys } from './prf.js';
import { HandshakeReassembler, type HandshakeMessage } from './reassembly.js';
import {
  ContentType,
  DTLS_1_0_VERSION,
  DTLS_1_2_VERSION,
  encodePlaintextRecord,
  MAX_SEQUENCE_NUMBER,
  parseRecords,
  RECORD_HEADER_LENGTH,
  RecordCipher,
  ReplayWindow,
  type AeadFactory,
  type DtlsRecord,
} from './record.js';
import { DEFAULT_SUITES, findCipherSuite, formatSuiteId, type CipherSuite } from './suites.js';

export interface DtlsClientOptions {
  /** The pre-shared key (for AnyConnect: 32 bytes exported from the CSTP TLS session). */
  psk: Buffer;
  /** PSK identity; ocserv ignores it and openconnect sends "psk". */
  identity?: string;
  /** ClientHello session_id, at most 32 bytes: the App-ID, by which ocserv finds the session. */
  sessionId: Buffer;
  /** Cipher suite code points to offer, most preferred first (default: all of DEFAULT_SUITES). */
  suites?: readonly number[];
  /**
   * Largest datagram to send, in bytes of UDP payload. Longer handshake messages are fragmented,
   * except the ClientHello (see sendClientHello).
   */
  mtu: number;
  /** Monotonic clock in milliseconds. */
  now: () => number;
  /** Source of the 32-byte ClientHello random (default: crypto.randomBytes). */
  random?: () => Buffer;
  /** Total time allowed for the handshake, in ms (default 12 000). */
  handshakeTimeoutMs?: number;
  /** First retransmission timeout, in ms (default 1000; doubles per retransmission). */
  initialRetransmitMs?: number;
  /** Upper bound of the retransmission timeout, in ms (default 60 000). */
  maxRetransmitMs?: number;
  /**
   * AEAD contexts for the epoch-1 records (default: node:crypto per record). With one, opened
   * records are decrypted in place, so a datagram passed to receive() is modified.
   */
  aead?: AeadFactory;
}

export type DtlsEvent =
  | { kind: 'established'; suite: string }
  | { kind: 'data'; payload: Buffer }
  | { kind: 'alert'; level: number; description: number; name: string }
  | { kind: 'closed' }
  | { kind: 'failed'; error: AcvpnError };

export interface DtlsOutput {
  datagrams: Buffer[];
  events: DtlsEvent[];
  /** Call tick() after this many ms; absent when no timer is needed. */
  nextTimerMs?: number;
}

/** Records dropped without ending the connection (malformed, forged, replayed or unexpected). */
export interface DtlsCounters {
  truncatedDatagrams: number;
  unknownTypeRecords: number;
  unexpectedEpochRecords: number;
  badRecords: number;
  replayedRecords: number;
  malformedHandshakeRecords: number;
  droppedHandshakeFragments: number;
}

export type DtlsState =
  | 'idle'
  | 'awaiting-server-hello'
  | 'awaiting-server-hello-done'
  | 'awaiting-server-finished'
  | 'established'
  | 'closed'
  | 'failed';

/** The smallest datagram size that still fits the encrypted Finished record. */
export const MIN_MTU = 64;
const DEFAULT_IDENTITY = 'psk';
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 12_000;
const DEFAULT_INITIAL_RETRANSMIT_MS = 1_000;
const DEFAULT_MAX_RETRANSMIT_MS = 60_000;
/** A headend that keeps sending new cookies is broken; stop after this many. */
const MAX_HELLO_VERIFY_REQUESTS = 3;
/** Epoch-1 records that arrive before the ChangeCipherSpec they depend on, kept until it comes. */
const MAX_EARLY_RECORDS = 16;

/** One record of a flight, kept unsealed so that a retransmission gets new sequence numbers. */
interface FlightRecord {
  type: number;
  epoch: 0 | 1;
  payload: Buffer;
}

/** A fatal condition found while handling input; turned into a failed event and an alert. */
class HandshakeFailure extends Error {
  constructor(
    readonly error: AcvpnError,
    readonly alert: number,
  ) {
    super(error.message);
  }
}

export class DtlsClient {
  readonly counters: DtlsCounters = {
    truncatedDatagrams: 0,
    unknownTypeRecords: 0,
    unexpectedEpochRecords: 0,
    badRecords: 0,
    replayedRecords: 0,
    malformedHandshakeRecords: 0,
    droppedHandshakeFragments: 0,
  };

  private stateValue: DtlsState = 'idle';
  private readonly psk: Buffer;
  private readonly identity: Buffer;
  private readonly sessionId: Buffer;
  private readonly offeredSuites: readonly number[];
  private readonly mtu: number;
  private readonly now: () => number;
  private readonly aead: AeadFactory | undefined;
  private readonly clientRandom: Buffer;
  private readonly handshakeTimeoutMs: number;
  private readonly initialRetransmitMs: number;
  private readonly maxRetransmitMs: number;

  // Handshake progress.
  private readonly reassembler = new HandshakeReassembler();
  private nextSendMessageSeq = 0;
  private cookie: Buffer = Buffer.alloc(0);
  private helloVerifyRequests = 0;
  private lastClientHello: Buffer = Buffer.alloc(0);
  private transcript: Buffer[] = [];
  private suite: CipherSuite | undefined;
  private serverRandom: Buffer | undefined;
  private expectedServerVerifyData: Buffer | undefined;
  private serverChangeCipherSpecSeen = false;
  private earlyRecords: DtlsRecord[] = [];

  // Retransmission.
  private flight: FlightRecord[] = [];
  private handshakeDeadline = 0;
  private retransmitAt = 0;
  private retransmitTimeoutMs = 0;

  // Record layer.
  private epoch0Sequence = 0;
  private epoch1Sequence = 0;
  private writeCipher: RecordCipher | undefined;
  private readCipher: RecordCipher | undefined;
  private readonly replayWindow = new ReplayWindow();

  constructor(options: DtlsClientOptions) {
    this.psk = Buffer.from(options.psk);
    this.identity = Buffer.from(options.identity ?? DEFAULT_IDENTITY, 'utf8');
    this.sessionId = Buffer.from(options.sessionId);
    this.aead = options.aead;
    this.offeredSuites = options.suites ?? DEFAULT_SUITES;
    this.mtu = options.mtu;
    this.now = options.now;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.initialRetransmitMs = options.initialRetransmitMs ?? DEFAULT_INITIAL_RETRANSMIT_MS;
    this.maxRetransmitMs = options.maxRetransmitMs ?? DEFAULT_MAX_RETRANSMIT_MS;
    validateOptions(this.psk, this.identity, this.sessionId, this.offeredSuites, this.mtu);
    this.clientRandom = makeClientRandom(options.random ?? (() => randomBytes(32)));
  }

  get state(): DtlsState {
    return this.stateValue;
  }

  /** The negotiated suite's IANA name once the ServerHello arrived. */
  get suiteName(): string | undefined {
    return this.suite?.name;
  }

  /** Bytes one application-data record adds to its payload (header, explicit nonce, tag). */
  get recordOverhead(): number | undefined {
    return this.writeCipher?.recordOverhead;
  }

  // ---- handshake --------------------------------------------------------------------------

  /** Sends the first ClientHello and arms the handshake deadline. */
  start(): DtlsOutput {
    if (this.stateValue !== 'idle') throw new AcvpnError('INTERNAL', `DtlsClient.start() called in state ${this.stateValue}`);
    const out = emptyOutput();
    this.handshakeDeadline = this.now() + this.handshakeTimeoutMs;
    this.stateValue = 'awaiting-server-hello';
    this.sendClientHello(out);
    return this.finish(out);
  }

  /** Handles one datagram from the headend. */
  receive(datagram: Buffer): DtlsOutput {
    const out = emptyOutput();
    if (this.stateValue === 'idle' || this.stateValue === 'closed' || this.stateValue === 'failed') return out;

    const { records, truncated } = parseRecords(datagram);
    if (truncated) this.counters.truncatedDatagrams++;
    try {
      for (const record of records) {
        this.handleRecord(record, out);
        if (this.isFinal()) break;
      }
    } catch (error) {
      if (error instanceof HandshakeFailure) {
        this.fail(out, error.error, error.alert);
      } else if (AcvpnError.is(error)) {
        // A message parser found a malformed body; it names the alert in details.
        const alert = typeof error.details.alert === 'number' ? error.details.alert : AlertDescription.decode_error;
        this.fail(out, error, alert);
      } else {
        throw error;
      }
    }
    return this.finish(out);
  }

  /** Retransmits the last flight or gives up, depending on the time; call when nextTimerMs elapsed. */
  tick(): DtlsOutput {
    const out = emptyOutput();
    if (!this.isHandshaking()) return out;

    const now = this.now();
    if (now >= this.handshakeDeadline) {
      const seconds = Math.round(this.handshakeTimeoutMs / 1000);
      const error = new AcvpnError(
        'NETWORK_UNREACHABLE',
        `DTLS handshake with the headend timed out after ${seconds} s in state ${this.stateValue}; ` +
          (this.stateValue === 'awaiting-server-finished'
            ? 'the headend did not accept our Finished, which usually means the PSK differs (derive it again from the current CSTP session)'
            : 'UDP to the headend may be blocked, so keep using CSTP and retry DTLS later'),
        { state: this.stateValue, timeoutMs: this.handshakeTimeoutMs },
      );
      this.fail(out, error, undefined);
      return this.finish(out);
    }
    if (now >= this.retransmitAt) {
      this.retransmitTimeoutMs = Math.min(2 * this.retransmitTimeoutMs, this.maxRetransmitMs);
      this.retransmitAt = now + this.retransmitTimeoutMs;
      this.sealFlight(out);
    }
    return this.finish(out);
  }

  private sendClientHello(out: DtlsOutput): void {
    const body = encodeClientHello({
      random: this.clientRandom,
      sessionId: this.sessionId,
      cookie: this.cookie,
      suites: this.offeredSuites,
    });
    const messageSeq = this.nextSendMessageSeq++;
    this.lastClientHello = encodeHandshakeMessage(HandshakeType.CLIENT_HELLO, messageSeq, body);
    // The ClientHello always leaves whole, whatever the MTU: servers read it statelessly from one
    // datagram. GnuTLS 3.7 with cookies drops a fragmented one (tested), and ocserv's main process
    // takes the session_id from it before any DTLS state exists. It is at most about 400 bytes.
    const record: FlightRecord = { type: ContentType.HANDSHAKE, epoch: 0, payload: this.lastClientHello };
    this.sendFlight(out, [record]);
  }

  private handleRecord(record: DtlsRecord, out: DtlsOutput): void {
    if (record.epoch === 0) {
      this.handleEpoch0Record(record, out);
    } else if (record.epoch === 1 && this.readCipher !== undefined) {
      this.handleEpoch1Record(record, out);
    } else {
      this.counters.unexpectedEpochRecords++;
    }
  }

  private handleEpoch0Record(record: DtlsRecord, out: DtlsOutput): void {
    // After the handshake nothing unprotected is accepted: it could come from anyone.
    if (this.stateValue === 'established' || (record.version !== DTLS_1_2_VERSION && record.version !== DTLS_1_0_VERSION)) {
      this.counters.unexpectedEpochRecords++;
      return;
    }

    switch (record.type) {
      case ContentType.HANDSHAKE:
        this.handleHandshakeRecord(record.fragment, 0, out);
        return;
      case ContentType.CHANGE_CIPHER_SPEC:
        this.handleChangeCipherSpec(record.fragment, out);
        return;
      case ContentType.ALERT:
        this.handleAlert(record.fragment, out);
        return;
      default:
        this.counters.unknownTypeRecords++;
    }
  }

  private handleChangeCipherSpec(fragment: Buffer, out: DtlsOutput): void {
    if (fragment.length !== 1 || fragment[0] !== 1) {
      this.counters.malformedHandshakeRecords++;
      return;
    }
    // Only meaningful once our flight 5 is out: before that the headend has nothing to switch to.
    if (this.stateValue !== 'awaiting-server-finished' || this.serverChangeCipherSpecSeen) return;
    this.serverChangeCipherSpecSeen = true;

    const early = this.earlyRecords;
    this.earlyRecords = [];
    for (const record of early) {
      this.handleEpoch1Record(record, out);
      if (this.isFinal()) return;
    }
  }

  private handleEpoch1Record(record: DtlsRecord, out: DtlsOutput): void {
    const readCipher = this.readCipher!;
    if (this.stateValue === 'awaiting-server-finished' && !this.serverChangeCipherSpecSeen) {
      // Reordered ahead of the ChangeCipherSpec; keep it (a copy, the datagram buffer may be reused).
      if (this.earlyRecords.length < MAX_EARLY_RECORDS) {
        const copy = Buffer.concat([record.header, record.fragment]);
        this.earlyRecords.push({ ...record, header: copy.subarray(0, RECORD_HEADER_LENGTH), fragment: copy.subarray(RECORD_HEADER_LENGTH) });
      }
      return;
    }
    if (this.replayWindow.isReplay(record.sequence)) {
      this.counters.replayedRecords++;
      return;
    }
    const plaintext = readCipher.open(record);
    if (plaintext === null) {
      this.counters.badRecords++;
      return;
    }
    this.replayWindow.markReceived(record.sequence);

    switch (record.type) {
      case ContentType.APPLICATION_DATA:
        // The headend sends data only after its Finished, so data before that is not trusted yet.
        if (this.stateValue === 'established') out.events.push({ kind: 'data', payload: plaintext });
        else this.counters.unexpectedEpochRecords++;
        return;
      case ContentType.HANDSHAKE:
        if (this.stateValue === 'awaiting-server-finished') this.handleHandshakeRecord(plaintext, 1, out);
        // NOTE: a HelloRequest (renegotiation) after the handshake is ignored; ocserv never sends one.
        return;
      case ContentType.ALERT:
        this.handleAlert(plaintext, out);
        return;
      case ContentType.CHANGE_CIPHER_SPEC:
        return;
      default:
        this.counters.unknownTypeRecords++;
    }
  }

  private handleHandshakeRecord(plaintext: Buffer, epoch: 0 | 1, out: DtlsOutput): void {
    const fragments = parseHandshakeFragments(plaintext);
    if (fragments === null) {
      this.counters.malformedHandshakeRecords++;
      return;
    }

    let peerRetransmittedFlight = false;
    for (const fragment of fragments) {
      // Finished must be encrypted and everything else must not, or an attacker could inject one.
      if ((fragment.type === HandshakeType.FINISHED) !== (epoch === 1)) {
        this.counters.droppedHandshakeFragments++;
        continue;
      }
      const verdict = this.reassembler.add(fragment);
      if (verdict === 'old' && fragment.type === HandshakeType.SERVER_HELLO_DONE) peerRetransmittedFlight = true;
      else if (verdict !== 'buffered' && verdict !== 'old') this.counters.droppedHandshakeFragments++;
    }

    if (peerRetransmittedFlight && this.stateValue === 'awaiting-server-finished') this.sealFlight(out);

    for (let message = this.reassembler.takeNext(); message !== undefined; message = this.reassembler.takeNext()) {
      this.handleMessage(message, out);
      if (this.isFinal()) return;
    }
  }

  private handleMessage(message: HandshakeMessage, out: DtlsOutput): void {
    const unfragmented = encodeHandshakeMessage(message.type, message.messageSeq, message.body);

    switch (this.stateValue) {
      case 'awaiting-server-hello':
        if (message.type === HandshakeType.HELLO_VERIFY_REQUEST) {
          this.handleHelloVerifyRequest(message.body, out);
          return;
        }
        if (message.type === HandshakeType.SERVER_HELLO) {
          this.handleServerHello(message.body);
          this.transcript = [this.lastClientHello, unfragmented];
          this.stateValue = 'awaiting-server-hello-done';
          return;
        }
        break;

      case 'awaiting-server-hello-done':
        if (message.type === HandshakeType.SERVER_KEY_EXCHANGE && this.transcript.length === 2) {
          // The PSK identity hint is parsed for validity only: ocserv sends none and acvpn has one PSK.
          parseServerKeyExchange(message.body);
          this.transcript.push(unfragmented);
          return;
        }
        if (message.type === HandshakeType.SERVER_HELLO_DONE) {
          if (message.body.length !== 0) {
            throw failure('TLS_FAILED', 'DTLS ServerHelloDone from the headend has a non-empty body', AlertDescription.decode_error);
          }
          this.transcript.push(unfragmented);
          this.sendClientFinishedFlight(out);
          return;
        }
        break;

      case 'awaiting-server-finished':
        if (message.type === HandshakeType.FINISHED) {
          this.handleServerFinished(message.body, out);
          return;
        }
        break;

      default:
        return;
    }

    throw failure(
      'TLS_FAILED',
      `DTLS handshake message type ${message.type} from the headend was not expected in state ${this.stateValue}`,
      AlertDescription.unexpected_message,
    );
  }

  private handleHelloVerifyRequest(body: Buffer, out: DtlsOutput): void {
    const request = parseHelloVerifyRequest(body);
    this.helloVerifyRequests++;
    if (this.helloVerifyRequests > MAX_HELLO_VERIFY_REQUESTS) {
      throw failure(
        'TLS_FAILED',
        `the headend sent ${this.helloVerifyRequests} DTLS HelloVerifyRequests in a row and never accepted the cookie`,
        AlertDescription.handshake_failure,
      );
    }
    this.cookie = request.cookie;
    this.retransmitTimeoutMs = 0;
    this.sendClientHello(out);
  }

  private handleServerHello(body: Buffer): void {
    const hello = parseServerHello(body);
    if (hello.serverVersion !== DTLS_1_2_VERSION) {
      throw failure(
        'TLS_FAILED',
        `the headend chose DTLS version 0x${hello.serverVersion.toString(16)}, but acvpn supports only DTLS 1.2 (0xfefd); ` +
          'allow DTLS 1.2 on the headend or stay on CSTP',
        AlertDescription.protocol_version,
      );
    }
    const suite = findCipherSuite(hello.cipherSuite);
    if (suite === undefined || !this.offeredSuites.includes(hello.cipherSuite)) {
      throw failure(
        'TLS_FAILED',
        `the headend chose DTLS cipher suite ${formatSuiteId(hello.cipherSuite)}, which acvpn did not offer ` +
          `(offered: ${this.offeredSuites.map(formatSuiteId).join(', ')})`,
        AlertDescription.illegal_parameter,
      );
    }
    if (hello.compressionMethod !== 0) {
      throw failure('TLS_FAILED', `the headend chose DTLS compression method ${hello.compressionMethod}, but acvpn offered none`, AlertDescription.illegal_parameter);
    }
    const unsolicited = hello.extensionTypes.filter((type) => type !== RENEGOTIATION_INFO_EXTENSION);
    if (unsolicited.length > 0) {
      throw failure('TLS_FAILED', `the DTLS ServerHello contains extensions acvpn did not offer: ${unsolicited.join(', ')}`, AlertDescription.unsupported_extension);
    }
    if (hello.renegotiationInfo !== undefined && !hello.renegotiationInfo.equals(Buffer.from([0]))) {
      throw failure('TLS_FAILED', 'the DTLS ServerHello has a non-empty renegotiation_info on a new connection', AlertDescription.handshake_failure);
    }
    this.suite = suite;
    this.serverRandom = hello.random;
  }

  private sendClientFinishedFlight(out: DtlsOutput): void {
    const suite = this.suite!;
    const master = computeMasterSecret(suite.prfHash, this.psk, this.clientRandom, this.serverRandom!);
    const keys = expandKeys(suite, master, this.clientRandom, this.serverRandom!);
    this.writeCipher = new RecordCipher(suite, keys.clientWriteKey, keys.clientWriteIv, 1, this.aead);
    this.readCipher = new RecordCipher(suite, keys.serverWriteKey, keys.serverWriteIv, 1, this.aead);
    keys.clientWriteKey.fill(0);
    keys.serverWriteKey.fill(0);

    const keyExchangeSeq = this.nextSendMessageSeq++;
    const keyExchange = encodeClientKeyExchange(this.identity);
    this.transcript.push(encodeHandshakeMessage(HandshakeType.CLIENT_KEY_EXCHANGE, keyExchangeSeq, keyExchange));

    const finishedSeq = this.nextSendMessageSeq++;
    const verifyData = computeVerifyData(suite.prfHash, master, 'client finished', this.transcript);
    this.transcript.push(encodeHandshakeMessage(HandshakeType.FINISHED, finishedSeq, verifyData));
    this.expectedServerVerifyData = computeVerifyData(suite.prfHash, master, 'server finished', this.transcript);
    master.fill(0);
    this.transcript = [];

    this.stateValue = 'awaiting-server-finished';
    this.retransmitTimeoutMs = 0;
    this.sendFlight(out, [
      ...this.handshakeRecords(HandshakeType.CLIENT_KEY_EXCHANGE, keyExchangeSeq, keyExchange, 0),
      { type: ContentType.CHANGE_CIPHER_SPEC, epoch: 0, payload: Buffer.from([1]) },
      ...this.handshakeRecords(HandshakeType.FINISHED, finishedSeq, verifyData, 1),
    ]);
  }

  private handleServerFinished(verifyData: Buffer, out: DtlsOutput): void {
    const expected = this.expectedServerVerifyData!;
    if (verifyData.length !== expected.length || !timingSafeEqual(verifyData, expected)) {
      throw failure(
        'TLS_FAILED',
        'DTLS Finished from the headend does not match: the headend and acvpn hold different PSKs ' +
          '(the PSK must be exported from the current CSTP TLS session, with no exporter context)',
        AlertDescription.decrypt_error,
      );
    }
    this.stateValue = 'established';
    this.flight = [];
    this.earlyRecords = [];
    out.events.push({ kind: 'established', suite: this.suite!.name });
  }

  private handleAlert(fragment: Buffer, out: DtlsOutput): void {
    if (fragment.length !== 2) {
      this.counters.malformedHandshakeRecords++;
      return;
    }
    const level = fragment[0]!;
    const description = fragment[1]!;
    const name = alertName(description);
    out.events.push({ kind: 'alert', level, description, name });

    if (description === AlertDescription.close_notify) {
      if (this.stateValue === 'established') this.sendAlert(out, AlertLevel.WARNING, AlertDescription.close_notify);
      this.enterClosed(out);
      return;
    }
    if (level === AlertLevel.FATAL) {
      const error = new AcvpnError(
        'TLS_FAILED',
        `the headend ended DTLS with fatal alert ${name} (${description}) in state ${this.stateValue}` +
          (description === AlertDescription.decrypt_error || description === AlertDescription.bad_record_mac
            ? '; this usually means the PSK differs, so derive it again from the current CSTP session'
            : ''),
        { alert: description, state: this.stateValue },
      );
      this.fail(out, error, undefined);
    }
  }

  // ---- application data -------------------------------------------------------------------

  /** Encrypts one application-data record into a new buffer (one AnyConnect packet: type byte plus payload). */
  sealApplicationData(payload: Buffer): Buffer {
    const cipher = this.requireEstablished();
    return cipher.seal(ContentType.APPLICATION_DATA, this.takeEpoch1Sequence(), payload);
  }

  /**
   * Encrypts one application-data record in place; see RecordCipher.sealInPlace for the headroom
   * and tailroom contract. Returns the offset where the record starts; it ends at
   * payloadOffset + payloadLength + SEAL_TAILROOM.
   */
  sealApplicationDataInPlace(buffer: Buffer, payloadOffset: number, payloadLength: number): number {
    const cipher = this.requireEstablished();
    return cipher.sealInPlace(buffer, payloadOffset, payloadLength, ContentType.APPLICATION_DATA, this.takeEpoch1Sequence());
  }

  /** Sends close_notify (encrypted when established) and ends the connection. */
  close(): DtlsOutput {
    const out = emptyOutput();
    if (this.isFinal()) return out;
    if (this.stateValue !== 'idle') this.sendAlert(out, AlertLevel.WARNING, AlertDescription.close_notify);
    this.enterClosed(out);
    return out;
  }

  // ---- output helpers ---------------------------------------------------------------------

  private handshakeRecords(type: number, messageSeq: number, body: Buffer, epoch: 0 | 1): FlightRecord[] {
    const protection = epoch === 1 ? this.writeCipher!.recordOverhead : RECORD_HEADER_LENGTH;
    const maxFragmentBody = this.mtu - protection - HANDSHAKE_HEADER_LENGTH;
    return fragmentHandshakeMessage(type, messageSeq, body, maxFragmentBody).map((payload) => ({
      type: ContentType.HANDSHAKE,
      epoch,
      payload,
    }));
  }

  private sendFlight(out: DtlsOutput, flight: FlightRecord[]): void {
    this.flight = flight;
    this.retransmitTimeoutMs = this.initialRetransmitMs;
    this.retransmitAt = this.now() + this.retransmitTimeoutMs;
    this.sealFlight(out);
  }

  /** Seals the current flight with fresh sequence numbers and packs its records into datagrams of at most mtu bytes. */
  private sealFlight(out: DtlsOutput): void {
    let pending: Buffer[] = [];
    let pendingLength = 0;
    for (const item of this.flight) {
      const record =
        item.epoch === 0
          ? encodePlaintextRecord(item.type, this.takeEpoch0Sequence(), item.payload)
          : this.writeCipher!.seal(item.type, this.takeEpoch1Sequence(), item.payload);
      if (pendingLength + record.length > this.mtu && pending.length > 0) {
        out.datagrams.push(Buffer.concat(pending));
        pending = [];
        pendingLength = 0;
      }
      pending.push(record);
      pendingLength += record.length;
    }
    if (pending.length > 0) out.datagrams.push(Buffer.concat(pending));
  }

  private sendAlert(out: DtlsOutput, level: number, description: number): void {
    const payload = Buffer.from([level, description]);
    // The write cipher exists only once our ChangeCipherSpec is out, and every record after it
    // uses the new keys (RFC 5246 §7.1), so alerts are encrypted from then on.
    if (this.writeCipher !== undefined) {
      out.datagrams.push(this.writeCipher.seal(ContentType.ALERT, this.takeEpoch1Sequence(), payload));
    } else {
      out.datagrams.push(encodePlaintextRecord(ContentType.ALERT, this.takeEpoch0Sequence(), payload));
    }
  }

  private fail(out: DtlsOutput, error: AcvpnError, alert: number | undefined): void {
    if (alert !== undefined) this.sendAlert(out, AlertLevel.FATAL, alert);
    this.stateValue = 'failed';
    this.flight = [];
    this.earlyRecords = [];
    out.events.push({ kind: 'failed', error });
  }

  private enterClosed(out: DtlsOutput): void {
    this.stateValue = 'closed';
    this.flight = [];
    this.earlyRecords = [];
    out.events.push({ kind: 'closed' });
  }

  private finish(out: DtlsOutput): DtlsOutput {
    if (this.isHandshaking()) {
      const deadline = Math.min(this.retransmitAt, this.handshakeDeadline);
      out.nextTimerMs = Math.max(0, deadline - this.now());
    }
    return out;
  }

  private takeEpoch0Sequence(): number {
    return this.epoch0Sequence++;
  }

  private takeEpoch1Sequence(): number {
    if (this.epoch1Sequence > MAX_SEQUENCE_NUMBER) {
      // NOTE: 2^48 records is about 90 years at 100k records/s; a new handshake is the remedy.
      throw new AcvpnError('TLS_FAILED', 'DTLS record sequence numbers are exhausted; start a new DTLS handshake');
    }
    return this.epoch1Sequence++;
  }

  private requireEstablished(): RecordCipher {
    if (this.stateValue !== 'established') {
      throw new AcvpnError('INTERNAL', `DTLS application data can be sent only when established, not in state ${this.stateValue}`);
    }
    return this.writeCipher!;
  }

  private isHandshaking(): boolean {
    return (
      this.stateValue === 'awaiting-server-hello' ||
      this.stateValue === 'awaiting-server-hello-done' ||
      this.stateValue === 'awaiting-server-finished'
    );
  }

  private isFinal(): boolean {
    return this.stateValue === 'failed' || this.stateValue === 'closed';
  }
}

function emptyOutput(): DtlsOutput {
  return { datagrams: [], events: [] };
}

function failure(code: 'TLS_FAILED', message: string, alert: number): HandshakeFailure {
  return new HandshakeFailure(new AcvpnError(code, message, { alert }), alert);
}

function validateOptions(psk: Buffer, identity: Buffer, sessionId: Buffer, suites: readonly number[], mtu: number): void {
  const problems: string[] = [];
  if (psk.length === 0 || psk.length > 0xffff) problems.push(`the PSK must be 1 to 65535 bytes, got ${psk.length}`);
  if (identity.length > 0xffff) problems.push(`the PSK identity must be at most 65535 bytes, got ${identity.length}`);
  if (sessionId.length > 32) problems.push(`the session_id (App-ID) must be at most 32 bytes, got ${sessionId.length}`);
  if (suites.length === 0) problems.push('at least one cipher suite must be offered');
  const unknown = suites.filter((id) => findCipherSuite(id) === undefined);
  if (unknown.length > 0) problems.push(`unsupported cipher suites ${unknown.map(formatSuiteId).join(', ')}`);
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > 0xffff) problems.push(`the DTLS MTU must be an integer from ${MIN_MTU} to 65535, got ${mtu}`);
  if (problems.length > 0) throw new AcvpnError('CONFIG_INVALID', `invalid DTLS client settings: ${problems.join('; ')}`);
}

/** Takes 32 bytes from the source; ocserv rejects an all-zero random, so one is never sent. */
function makeClientRandom(source: () => Buffer): Buffer {
  const random = Buffer.from(source());
  if (random.length !== 32) throw new AcvpnError('INTERNAL', `the ClientHello random must be 32 bytes, got ${random.length}`);
  if (random.every((byte) => byte === 0)) random[31] = 1;
  return random;
}
