// The DTLS 1.2 PSK cipher suites acvpn offers, with the key sizes the record layer and the key
// expansion need. Only AEAD suites: each record is one AEAD seal, so there is no MAC key and no
// CBC padding to get wrong.

/** The PRF hash of a suite (RFC 5246 §5, RFC 5288 §3). */
export type PrfHash = 'sha256' | 'sha384';

export interface CipherSuite {
  /** The two-byte code point on the wire. */
  id: number;
  /** IANA name, used in events and logs. */
  name: string;
  /** node:crypto cipher name. */
  cipher: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';
  prfHash: PrfHash;
  keyLength: number;
  /** Bytes of the write IV from the key expansion: the 4-byte GCM salt, or the 12-byte ChaCha20 IV. */
  fixedIvLength: number;
  /** Bytes of nonce sent in each record: 8 for GCM (RFC 5288 §3), 0 for ChaCha20 (RFC 7905 §2). */
  explicitNonceLength: number;
  tagLength: number;
}

export const CipherSuiteId = {
  TLS_PSK_WITH_AES_128_GCM_SHA256: 0x00a8,
  TLS_PSK_WITH_AES_256_GCM_SHA384: 0x00a9,
  TLS_PSK_WITH_CHACHA20_POLY1305_SHA256: 0xccab,
} as const;

const suites: readonly CipherSuite[] = [
  {
    id: CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256,
    name: 'TLS_PSK_WITH_AES_128_GCM_SHA256',
    cipher: 'aes-128-gcm',
    prfHash: 'sha256',
    keyLength: 16,
    fixedIvLength: 4,
    explicitNonceLength: 8,
    tagLength: 16,
  },
  {
    id: CipherSuiteId.TLS_PSK_WITH_AES_256_GCM_SHA384,
    name: 'TLS_PSK_WITH_AES_256_GCM_SHA384',
    cipher: 'aes-256-gcm',
    prfHash: 'sha384',
    keyLength: 32,
    fixedIvLength: 4,
    explicitNonceLength: 8,
    tagLength: 16,
  },
  {
    id: CipherSuiteId.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    name: 'TLS_PSK_WITH_CHACHA20_POLY1305_SHA256',
    cipher: 'chacha20-poly1305',
    prfHash: 'sha256',
    keyLength: 32,
    fixedIvLength: 12,
    explicitNonceLength: 0,
    tagLength: 16,
  },
];

/** Suites offered when the caller names none, most preferred first. */
export const DEFAULT_SUITES: readonly number[] = [
  CipherSuiteId.TLS_PSK_WITH_AES_256_GCM_SHA384,
  CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256,
  CipherSuiteId.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
];

/** Suites allowed in FIPS mode: AES-GCM only (ChaCha20-Poly1305 is not FIPS-approved). */
export const FIPS_SUITES: readonly number[] = [
  CipherSuiteId.TLS_PSK_WITH_AES_256_GCM_SHA384,
  CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256,
];

/** Returns the suite with this code point, or undefined when acvpn does not implement it. */
export function findCipherSuite(id: number): CipherSuite | undefined {
  return suites.find((suite) => suite.id === id);
}

export function formatSuiteId(id: number): string {
  return `0x${id.toString(16).padStart(4, '0').toUpperCase()}`;
}
