import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { computeMasterSecret, computeVerifyData, expandKeys, prf, pskPremasterSecret } from '../../../src/dtls/prf.js';
import { CipherSuiteId, findCipherSuite, type PrfHash } from '../../../src/dtls/suites.js';

interface PrfCase {
  hash: PrfHash;
  secret: string;
  label: string;
  seed: string;
  output: string;
}

const prfVectors = JSON.parse(readFileSync(new URL('../../vectors/dtls/prf.json', import.meta.url), 'utf8')) as { cases: PrfCase[] };
const keySchedule = JSON.parse(readFileSync(new URL('../../vectors/dtls/keyschedule.json', import.meta.url), 'utf8')) as Record<string, string>;
const hex = (text: string): Buffer => Buffer.from(text, 'hex');

describe('prf', () => {
  it.each(prfVectors.cases)('matches the $hash test vector', (vector) => {
    const expected = hex(vector.output);
    const output = prf(vector.hash, hex(vector.secret), vector.label, hex(vector.seed), expected.length);
    expect(output.toString('hex')).toBe(vector.output);
  });

  it('returns a prefix for shorter outputs', () => {
    const vector = prfVectors.cases[0]!;
    const output = prf(vector.hash, hex(vector.secret), vector.label, hex(vector.seed), 16);
    expect(output.toString('hex')).toBe(vector.output.slice(0, 32));
  });
});

describe('PSK key schedule', () => {
  const psk = hex(keySchedule.psk!);
  const clientRandom = hex(keySchedule.clientRandom!);
  const serverRandom = hex(keySchedule.serverRandom!);

  it('builds the RFC 4279 premaster secret', () => {
    const premaster = pskPremasterSecret(Buffer.from([0xaa, 0xbb, 0xcc]));
    expect(premaster.toString('hex')).toBe('0003' + '000000' + '0003' + 'aabbcc');
  });

  it('derives the master secret with SHA-256', () => {
    expect(computeMasterSecret('sha256', psk, clientRandom, serverRandom).toString('hex')).toBe(keySchedule.masterSecretSha256);
  });

  it('derives the master secret with SHA-384', () => {
    expect(computeMasterSecret('sha384', psk, clientRandom, serverRandom).toString('hex')).toBe(keySchedule.masterSecretSha384);
  });

  it('splits the AES-128-GCM key block', () => {
    const suite = findCipherSuite(CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256)!;
    const block = hex(keySchedule.keyBlockAes128Gcm!);
    const keys = expandKeys(suite, hex(keySchedule.masterSecretSha256!), clientRandom, serverRandom);
    expect(keys.clientWriteKey.toString('hex')).toBe(block.subarray(0, 16).toString('hex'));
    expect(keys.serverWriteKey.toString('hex')).toBe(block.subarray(16, 32).toString('hex'));
    expect(keys.clientWriteIv.toString('hex')).toBe(block.subarray(32, 36).toString('hex'));
    expect(keys.serverWriteIv.toString('hex')).toBe(block.subarray(36, 40).toString('hex'));
  });

  it('computes verify_data over the hash of the messages', () => {
    const master = hex(keySchedule.masterSecretSha256!);
    const messages = [Buffer.from('first message'), Buffer.from('second')];
    const joined = computeVerifyData('sha256', master, 'client finished', [Buffer.concat(messages)]);
    expect(computeVerifyData('sha256', master, 'client finished', messages)).toEqual(joined);
    expect(joined).toHaveLength(12);
    expect(computeVerifyData('sha256', master, 'server finished', messages)).not.toEqual(joined);
  });
});
