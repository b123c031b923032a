import { createDecipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  ContentType,
  encodePlaintextRecord,
  MAX_SEQUENCE_NUMBER,
  parseRecords,
  RecordCipher,
  ReplayWindow,
  SEAL_HEADROOM,
  SEAL_TAILROOM,
  type AeadFactory,
} from '../../../src/dtls/record.js';
import { createNativeAead } from '../../../src/net/tun/udp-socket.js';
import { CipherSuiteId, findCipherSuite, type CipherSuite } from '../../../src/dtls/suites.js';

interface RecordCase {
  suite: string;
  key: string;
  writeIv: string;
  epoch: number;
  sequence: number;
  type: number;
  plaintext: string;
  record: string;
}

const vectors = JSON.parse(readFileSync(new URL('../../vectors/dtls/records.json', import.meta.url), 'utf8')) as { cases: RecordCase[] };
const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const suiteByName = (name: string): CipherSuite => {
  const id = CipherSuiteId[name as keyof typeof CipherSuiteId];
  return findCipherSuite(id)!;
};

describe('parseRecords', () => {
  it('splits a datagram with several records', () => {
    const datagram = Buffer.concat([
      encodePlaintextRecord(ContentType.HANDSHAKE, 7, Buffer.from('abc')),
      encodePlaintextRecord(ContentType.CHANGE_CIPHER_SPEC, 0x0102030405, Buffer.from([1])),
    ]);
    const { records, truncated } = parseRecords(datagram);
    expect(truncated).toBe(false);
    expect(records).toHaveLength(2);
    expect(records[0]!.type).toBe(ContentType.HANDSHAKE);
    expect(records[0]!.sequence).toBe(7);
    expect(records[0]!.fragment.toString()).toBe('abc');
    expect(records[1]!.type).toBe(ContentType.CHANGE_CIPHER_SPEC);
    expect(records[1]!.sequence).toBe(0x0102030405);
    expect(records[1]!.version).toBe(0xfefd);
  });

  it('keeps whole records before a truncated one', () => {
    const whole = encodePlaintextRecord(ContentType.HANDSHAKE, 1, Buffer.from('abc'));
    const cut = encodePlaintextRecord(ContentType.HANDSHAKE, 2, Buffer.from('defgh')).subarray(0, 15);
    const { records, truncated } = parseRecords(Buffer.concat([whole, cut]));
    expect(records).toHaveLength(1);
    expect(truncated).toBe(true);
  });

  it('flags a datagram shorter than a header', () => {
    expect(parseRecords(Buffer.from([22, 0xfe, 0xfd]))).toEqual({ records: [], truncated: true });
  });
});

describe('RecordCipher known answers', () => {
  it.each(vectors.cases)('seals $suite like an independent implementation', (vector) => {
    const cipher = new RecordCipher(suiteByName(vector.suite), hex(vector.key), hex(vector.writeIv), vector.epoch);
    const sealed = cipher.seal(vector.type, vector.sequence, hex(vector.plaintext));
    expect(sealed.toString('hex')).toBe(vector.record);
  });

  it.each(vectors.cases)('opens the $suite vector', (vector) => {
    const cipher = new RecordCipher(suiteByName(vector.suite), hex(vector.key), hex(vector.writeIv), vector.epoch);
    const record = parseRecords(hex(vector.record)).records[0]!;
    expect(cipher.open(record)?.toString('hex')).toBe(vector.plaintext);
  });

  it('matches node:crypto AES-128-GCM with a hand-built nonce and AAD', () => {
    const suite = findCipherSuite(CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256)!;
    const key = Buffer.alloc(16, 0x42);
    const salt = Buffer.from([9, 8, 7, 6]);
    const plaintext = Buffer.from('one AnyConnect packet');
    const sealed = new RecordCipher(suite, key, salt, 1).seal(ContentType.APPLICATION_DATA, 0xabcdef, plaintext);

    const explicit = sealed.subarray(13, 21);
    expect(explicit.toString('hex')).toBe('0001000000abcdef');
    const aad = Buffer.concat([hex('0001000000abcdef'), Buffer.from([23, 0xfe, 0xfd, 0, plaintext.length])]);
    const decipher = createDecipheriv('aes-128-gcm', key, Buffer.concat([salt, explicit]), { authTagLength: 16 });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    const opened = Buffer.concat([decipher.update(sealed.subarray(21, sealed.length - 16)), decipher.final()]);
    expect(opened.toString()).toBe('one AnyConnect packet');
    expect(sealed.readUInt16BE(11)).toBe(8 + plaintext.length + 16);
  });
});

describe('RecordCipher round trip', () => {
  const suites = [
    CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256,
    CipherSuiteId.TLS_PSK_WITH_AES_256_GCM_SHA384,
    CipherSuiteId.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  ].map((id) => findCipherSuite(id)!);

  const pair = (suite: CipherSuite): RecordCipher =>
    new RecordCipher(suite, Buffer.alloc(suite.keyLength, 3), Buffer.alloc(suite.fixedIvLength, 4), 1);

  it.each(suites)('seals in place and opens with $name', (suite) => {
    const payload = Buffer.from('\x00 an IP packet');
    const buffer = Buffer.alloc(SEAL_HEADROOM + payload.length + SEAL_TAILROOM);
    payload.copy(buffer, SEAL_HEADROOM);
    const start = pair(suite).sealInPlace(buffer, SEAL_HEADROOM, payload.length, ContentType.APPLICATION_DATA, 5);

    expect(start).toBe(SEAL_HEADROOM - 13 - suite.explicitNonceLength);
    const { records, truncated } = parseRecords(buffer.subarray(start));
    expect(truncated).toBe(false);
    expect(records).toHaveLength(1);
    expect(records[0]!.sequence).toBe(5);
    expect(pair(suite).open(records[0]!)?.equals(payload)).toBe(true);
  });

  it.each(suites)('rejects a flipped bit with $name', (suite) => {
    const sealed = pair(suite).seal(ContentType.APPLICATION_DATA, 1, Buffer.from('payload'));
    for (const position of [3, 12, 20, sealed.length - 1]) {
      const damaged = Buffer.from(sealed);
      damaged[position] = damaged[position]! ^ 0x01;
      const record = parseRecords(damaged).records[0];
      if (record === undefined) continue;
      expect(pair(suite).open(record), `bit flip at byte ${position}`).toBeNull();
    }
  });

  it('rejects a fragment shorter than nonce plus tag', () => {
    const suite = suites[0]!;
    const record = parseRecords(encodePlaintextRecord(ContentType.APPLICATION_DATA, 0, Buffer.alloc(10))).records[0]!;
    expect(pair(suite).open({ ...record, epoch: 1 })).toBeNull();
  });

  it('refuses a buffer without headroom', () => {
    const buffer = Buffer.alloc(40);
    expect(() => pair(suites[0]!).sealInPlace(buffer, 4, 10, ContentType.APPLICATION_DATA, 0)).toThrow(RangeError);
  });
});

describe('RecordCipher with the addon AEAD', () => {
  const suites = [
    CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256,
    CipherSuiteId.TLS_PSK_WITH_AES_256_GCM_SHA384,
    CipherSuiteId.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  ].map((id) => findCipherSuite(id)!);
  const key = (suite: CipherSuite): Buffer => Buffer.alloc(suite.keyLength, 3);
  const iv = (suite: CipherSuite): Buffer => Buffer.alloc(suite.fixedIvLength, 4);
  const native: AeadFactory = (cipher, aeadKey, encrypt) => createNativeAead(cipher, aeadKey, encrypt);

  it.each(suites)('seals the same bytes as node:crypto with $name', (suite) => {
    const payload = Buffer.from('\x00 an IP packet of some length');
    const seal = (cipher: RecordCipher): Buffer => {
      const buffer = Buffer.alloc(SEAL_HEADROOM + payload.length + SEAL_TAILROOM);
      payload.copy(buffer, SEAL_HEADROOM);
      const start = cipher.sealInPlace(buffer, SEAL_HEADROOM, payload.length, ContentType.APPLICATION_DATA, 77);
      return buffer.subarray(start);
    };
    const expected = seal(new RecordCipher(suite, key(suite), iv(suite), 1));
    expect(seal(new RecordCipher(suite, key(suite), iv(suite), 1, native)).toString('hex')).toBe(expected.toString('hex'));
  });

  it.each(suites)('opens in place what node:crypto sealed with $name', (suite) => {
    const payload = Buffer.from('\x00 another packet');
    const sealed = new RecordCipher(suite, key(suite), iv(suite), 1).seal(ContentType.APPLICATION_DATA, 9, payload);
    const record = parseRecords(sealed).records[0]!;
    const plaintext = new RecordCipher(suite, key(suite), iv(suite), 1, native).open(record);
    expect(plaintext?.toString('hex')).toBe(payload.toString('hex'));
    expect(plaintext?.buffer).toBe(sealed.buffer);
  });

  it.each(suites)('rejects a flipped bit with $name', (suite) => {
    const sealed = new RecordCipher(suite, key(suite), iv(suite), 1, native).seal(ContentType.APPLICATION_DATA, 1, Buffer.from('payload'));
    for (const position of [3, 12, 20, sealed.length - 1]) {
      const damaged = Buffer.from(sealed);
      damaged[position] = damaged[position]! ^ 0x01;
      const record = parseRecords(damaged).records[0];
      if (record === undefined) continue;
      expect(new RecordCipher(suite, key(suite), iv(suite), 1, native).open(record), `bit flip at byte ${position}`).toBeNull();
    }
  });

  it('reuses one context for many records', () => {
    const suite = suites[0]!;
    const sender = new RecordCipher(suite, key(suite), iv(suite), 1, native);
    const receiver = new RecordCipher(suite, key(suite), iv(suite), 1, native);
    for (let sequence = 0; sequence < 50; sequence += 1) {
      const payload = Buffer.alloc(1 + sequence * 29, sequence);
      const record = parseRecords(sender.seal(ContentType.APPLICATION_DATA, sequence, payload)).records[0]!;
      expect(receiver.open(record)?.equals(payload), `record ${sequence}`).toBe(true);
    }
  });

  it('rejects a key of the wrong length', () => {
    expect(() => createNativeAead('aes-128-gcm', Buffer.alloc(15), true)).toThrow(RangeError);
  });
});

describe('ReplayWindow', () => {
  it('accepts sequence 0 first', () => {
    const window = new ReplayWindow();
    expect(window.isReplay(0)).toBe(false);
    window.markReceived(0);
    expect(window.isReplay(0)).toBe(true);
  });

  it('rejects a duplicate', () => {
    const window = new ReplayWindow();
    window.markReceived(10);
    window.markReceived(7);
    expect(window.isReplay(10)).toBe(true);
    expect(window.isReplay(7)).toBe(true);
    expect(window.isReplay(8)).toBe(false);
  });

  it('accepts late records inside the window and rejects older ones', () => {
    const window = new ReplayWindow();
    window.markReceived(100);
    expect(window.isReplay(37)).toBe(false); // offset 63: the oldest slot
    expect(window.isReplay(36)).toBe(true); // offset 64: too old
    window.markReceived(37);
    expect(window.isReplay(37)).toBe(true);
    expect(window.isReplay(68)).toBe(false); // offset 32: the word boundary
    window.markReceived(68);
    expect(window.isReplay(68)).toBe(true);
    expect(window.isReplay(69)).toBe(false);
  });

  it('slides and forgets bits that leave the window', () => {
    const window = new ReplayWindow();
    for (const sequence of [1, 2, 3, 31, 32, 33]) window.markReceived(sequence);
    window.markReceived(65); // shift by 32 exactly
    expect(window.isReplay(33)).toBe(true);
    expect(window.isReplay(32)).toBe(true);
    expect(window.isReplay(2)).toBe(true); // offset 63, seen
    expect(window.isReplay(3)).toBe(true);
    expect(window.isReplay(4)).toBe(false);
    expect(window.isReplay(1)).toBe(true); // offset 64: out of the window
    window.markReceived(96); // shift by 31
    expect(window.isReplay(33)).toBe(true);
    expect(window.isReplay(34)).toBe(false);
    expect(window.isReplay(65)).toBe(true);
    window.markReceived(1000); // shift beyond the window clears it
    expect(window.isReplay(999)).toBe(false);
    expect(window.isReplay(936)).toBe(true);
    expect(window.isReplay(937)).toBe(false);
  });

  it('handles the largest sequence number', () => {
    const window = new ReplayWindow();
    window.markReceived(MAX_SEQUENCE_NUMBER - 1);
    expect(window.isReplay(MAX_SEQUENCE_NUMBER)).toBe(false);
    window.markReceived(MAX_SEQUENCE_NUMBER);
    expect(window.isReplay(MAX_SEQUENCE_NUMBER)).toBe(true);
    expect(window.isReplay(MAX_SEQUENCE_NUMBER - 1)).toBe(true);
    expect(window.isReplay(MAX_SEQUENCE_NUMBER - 2)).toBe(false);
    expect(window.isReplay(MAX_SEQUENCE_NUMBER - 64)).toBe(true);
  });

  it('matches a set-based model on a random walk', () => {
    const window = new ReplayWindow();
    const seen = new Set<number>();
    let highest = -1;
    let state = 12345;
    const next = (): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state;
    };
    for (let i = 0; i < 5000; i++) {
      const sequence = Math.max(0, highest + (next() % 100) - 70);
      const expected = seen.has(sequence) || (highest >= 0 && highest - sequence >= 64);
      expect(window.isReplay(sequence), `sequence ${sequence} with highest ${highest}`).toBe(expected);
      if (!expected) {
        window.markReceived(sequence);
        seen.add(sequence);
        highest = Math.max(highest, sequence);
      }
    }
  });
});
