// TLS 1.2 key schedule for plain PSK suites: PRF (RFC 5246 §5), the PSK premaster secret
// (RFC 4279 §2), the master secret (RFC 5246 §8.1), the AEAD key block (RFC 5246 §6.3) and the
// Finished verify_data (RFC 5246 §7.4.9). DTLS 1.2 uses all of these unchanged (RFC 6347 §4.2).

import { createHash, createHmac } from 'node:crypto';

import type { CipherSuite, PrfHash } from './suites.js';

export const MASTER_SECRET_LENGTH = 48;
export const VERIFY_DATA_LENGTH = 12;

/**
 * Computes PRF(secret, label, seed) = P_hash(secret, label ‖ seed) truncated to `length` bytes,
 * where P_hash chains A(i) = HMAC(secret, A(i-1)) and outputs HMAC(secret, A(i) ‖ label ‖ seed).
 */
export function prf(hash: PrfHash, secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelAndSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const output = Buffer.alloc(length);
  let a = labelAndSeed;
  let filled = 0;
  while (filled < length) {
    a = createHmac(hash, secret).update(a).digest();
    const block = createHmac(hash, secret).update(a).update(labelAndSeed).digest();
    filled += block.copy(output, filled);
  }
  return output;
}

/**
 * Builds the plain-PSK premaster secret: uint16 N ‖ N zero bytes ‖ uint16 N ‖ psk, where N is the
 * PSK length (RFC 4279 §2: other_secret is N zeros when there is no Diffie-Hellman part).
 */
export function pskPremasterSecret(psk: Buffer): Buffer {
  const n = psk.length;
  const premaster = Buffer.alloc(4 + 2 * n);
  premaster.writeUInt16BE(n, 0);
  premaster.writeUInt16BE(n, 2 + n);
  psk.copy(premaster, 4 + n);
  return premaster;
}

export function computeMasterSecret(hash: PrfHash, psk: Buffer, clientRandom: Buffer, serverRandom: Buffer): Buffer {
  const premaster = pskPremasterSecret(psk);
  const master = prf(hash, premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), MASTER_SECRET_LENGTH);
  premaster.fill(0);
  return master;
}

/** Traffic keys of one connection; AEAD suites have no MAC keys. */
export interface KeyBlock {
  clientWriteKey: Buffer;
  serverWriteKey: Buffer;
  clientWriteIv: Buffer;
  serverWriteIv: Buffer;
}

/** Expands the master secret into the key block; note the seed order is server random first. */
export function expandKeys(suite: CipherSuite, master: Buffer, clientRandom: Buffer, serverRandom: Buffer): KeyBlock {
  const keyLength = suite.keyLength;
  const ivLength = suite.fixedIvLength;
  const block = prf(suite.prfHash, master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 2 * keyLength + 2 * ivLength);
  return {
    clientWriteKey: block.subarray(0, keyLength),
    serverWriteKey: block.subarray(keyLength, 2 * keyLength),
    clientWriteIv: block.subarray(2 * keyLength, 2 * keyLength + ivLength),
    serverWriteIv: block.subarray(2 * keyLength + ivLength, 2 * keyLength + 2 * ivLength),
  };
}

/** Computes verify_data = PRF(master, label, Hash(handshake messages)) for a Finished message. */
export function computeVerifyData(
  hash: PrfHash,
  master: Buffer,
  label: 'client finished' | 'server finished',
  handshakeMessages: readonly Buffer[],
): Buffer {
  const digest = createHash(hash);
  for (const message of handshakeMessages) digest.update(message);
  return prf(hash, master, label, digest.digest(), VERIFY_DATA_LENGTH);
}
