import { describe, expect, it } from 'vitest';
import type { CertificateDetails, ChainStatus, ChainVerdict, Reason } from '../../../src/trust/chain.js';
import type { OcspResult, OcspStatus } from '../../../src/trust/ocsp.js';
import { decideTrust, DEFAULT_TRUST_SETTINGS, rejectionError, type TrustDecision, type TrustSettings } from '../../../src/trust/policy.js';

const HOST = 'vpn.example.test';

const leaf: CertificateDetails = {
  der: Buffer.from([0x30, 0x00]),
  subject: `CN=${HOST}`,
  issuer: 'CN=Example CA',
  serialNumber: '1000',
  validFrom: new Date('2025-01-01T00:00:00Z'),
  validTo: new Date('2027-01-01T00:00:00Z'),
  subjectAltNames: [`DNS:${HOST}`],
  fingerprintSha256: 'AA:BB',
  publicKeyPin: 'pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  publicKey: { type: 'ec', curve: 'prime256v1' },
  signatureAlgorithm: '1.2.840.10045.4.3.2',
  ocspUrls: ['http://ocsp.example.test/'],
  selfIssued: false,
};

const reasonByStatus: Record<ChainStatus, Reason[]> = {
  trusted: [],
  untrusted: [
    { code: 'self-signed', severity: 'untrusted', message: 'the certificate is self-signed', certificateIndex: 0, subject: leaf.subject },
  ],
  invalid: [{ code: 'expired', severity: 'invalid', message: 'the certificate expired', certificateIndex: 0, subject: leaf.subject }],
};

function verdictOf(status: ChainStatus, extraReasons: Reason[] = []): ChainVerdict {
  return {
    status,
    host: HOST,
    reasons: [...reasonByStatus[status], ...extraReasons],
    leaf,
    chain: [leaf],
    trustedBy: status === 'trusted' ? 'root' : null,
  };
}

function ocspOf(status: OcspStatus): OcspResult[] {
  return [
    {
      certificateIndex: 0,
      subject: leaf.subject,
      serialNumber: leaf.serialNumber,
      responderUrl: 'http://ocsp.example.test/',
      status,
      message: `OCSP says ${status}`,
      ...(status === 'unreachable' ? { problem: 'timeout' as const } : {}),
    },
  ];
}

/** Returns 'accept', 'reject', or 'ask:' followed by the allowed TrustAnswer values. */
function summarize(decision: TrustDecision): string {
  if (decision.action === 'ask') return `ask:${decision.allowed.join(',')}`;
  return decision.action;
}

const BLOCKED = 'ask:abort,change-setting';
const UNTRUSTED_CHOICES = 'ask:abort,continue,import-and-continue,view';
const INVALID_CHOICES = 'ask:abort,continue,view';

const OCSP_COLUMNS = ['none', 'good', 'not-checked', 'unknown', 'unreachable', 'revoked'] as const;
type OcspColumn = (typeof OCSP_COLUMNS)[number];

// Expected decision for each OCSP column, in the order of OCSP_COLUMNS.
const EXPECTED: Record<string, Record<ChainStatus, string[]>> = {
  'block on, strict off': {
    trusted: ['accept', 'accept', 'accept', BLOCKED, BLOCKED, 'reject'],
    untrusted: [BLOCKED, BLOCKED, BLOCKED, BLOCKED, BLOCKED, 'reject'],
    invalid: [BLOCKED, BLOCKED, BLOCKED, BLOCKED, BLOCKED, 'reject'],
  },
  'block off, strict off': {
    trusted: ['accept', 'accept', 'accept', 'accept', 'accept', 'reject'],
    untrusted: [UNTRUSTED_CHOICES, UNTRUSTED_CHOICES, UNTRUSTED_CHOICES, UNTRUSTED_CHOICES, UNTRUSTED_CHOICES, 'reject'],
    invalid: [INVALID_CHOICES, INVALID_CHOICES, INVALID_CHOICES, INVALID_CHOICES, INVALID_CHOICES, 'reject'],
  },
  'block on, strict on': {
    trusted: ['accept', 'accept', 'accept', 'reject', 'reject', 'reject'],
    untrusted: ['reject', 'reject', 'reject', 'reject', 'reject', 'reject'],
    invalid: ['reject', 'reject', 'reject', 'reject', 'reject', 'reject'],
  },
  'block off, strict on': {
    trusted: ['accept', 'accept', 'accept', 'reject', 'reject', 'reject'],
    untrusted: ['reject', 'reject', 'reject', 'reject', 'reject', 'reject'],
    invalid: ['reject', 'reject', 'reject', 'reject', 'reject', 'reject'],
  },
};

const SETTINGS_BY_NAME: Record<string, Pick<TrustSettings, 'blockUntrustedServers' | 'strictCertificateTrust'>> = {
  'block on, strict off': { blockUntrustedServers: true, strictCertificateTrust: false },
  'block off, strict off': { blockUntrustedServers: false, strictCertificateTrust: false },
  'block on, strict on': { blockUntrustedServers: true, strictCertificateTrust: true },
  'block off, strict on': { blockUntrustedServers: false, strictCertificateTrust: true },
};

interface Row {
  settingsName: string;
  fips: boolean;
  ocspSetting: boolean;
  status: ChainStatus;
  column: OcspColumn;
  expected: string;
}

/**
 * With the OCSP setting off, unknown and unreachable results do not count (as if there were
 * none), but a revoked result still rejects.
 */
function expectedFor(settingsName: string, status: ChainStatus, column: OcspColumn, ocspSetting: boolean): string {
  const row = EXPECTED[settingsName]?.[status] ?? [];
  const effectiveColumn = !ocspSetting && (column === 'unknown' || column === 'unreachable') ? 'none' : column;
  return row[OCSP_COLUMNS.indexOf(effectiveColumn)] ?? 'missing';
}

const rows: Row[] = [];
for (const settingsName of Object.keys(EXPECTED)) {
  for (const fips of [false, true]) {
    for (const ocspSetting of [true, false]) {
      for (const status of ['trusted', 'untrusted', 'invalid'] as const) {
        for (const column of OCSP_COLUMNS) {
          rows.push({ settingsName, fips, ocspSetting, status, column, expected: expectedFor(settingsName, status, column, ocspSetting) });
        }
      }
    }
  }
}

describe('decideTrust table', () => {
  it.each(rows)('$settingsName, fips $fips, ocsp $ocspSetting: $status + OCSP $column → $expected', (row) => {
    const settings: TrustSettings = { ...SETTINGS_BY_NAME[row.settingsName]!, fips: row.fips, ocsp: row.ocspSetting };
    const ocsp = row.column === 'none' ? [] : ocspOf(row.column);
    expect(summarize(decideTrust(verdictOf(row.status), ocsp, settings))).toBe(row.expected);
  });
});

describe('decideTrust details', () => {
  it('defaults to blocking untrusted servers', () => {
    expect(DEFAULT_TRUST_SETTINGS).toEqual({ blockUntrustedServers: true, strictCertificateTrust: false, ocsp: true, fips: false });
    expect(summarize(decideTrust(verdictOf('untrusted'), [], { ...DEFAULT_TRUST_SETTINGS }))).toBe(BLOCKED);
  });

  it('fills the blocked prompt', () => {
    const decision = decideTrust(verdictOf('untrusted'), ocspOf('unreachable'), { ...DEFAULT_TRUST_SETTINGS });
    expect(decision.action).toBe('ask');
    if (decision.action !== 'ask') return;
    expect(decision.details.title).toBe('Untrusted VPN Server');
    expect(decision.details.blocked).toBe(true);
    expect(decision.details.host).toBe(HOST);
    expect(decision.details.status).toBe('untrusted');
    expect(decision.details.reasons.map((found) => found.code)).toEqual(['self-signed']);
    expect(decision.details.ocspProblems.map((result) => result.status)).toEqual(['unreachable']);
    expect(decision.details.leaf).toBe(leaf);
    expect(decision.details.message).toContain('self-signed');
    expect(decision.details.message).toContain('Block Untrusted Servers');
    expect(decision.details.message).toContain('abort');
  });

  it('fills the unblocked invalid prompt', () => {
    const decision = decideTrust(verdictOf('invalid'), [], { ...DEFAULT_TRUST_SETTINGS, blockUntrustedServers: false });
    expect(decision.action).toBe('ask');
    if (decision.action !== 'ask') return;
    expect(decision.details.blocked).toBe(false);
    expect(decision.details.message).toContain('invalid certificate');
    expect(decision.details.message).toContain('cannot be imported');
  });

  it('names the revoked certificate', () => {
    const decision = decideTrust(verdictOf('trusted'), ocspOf('revoked'), { ...DEFAULT_TRUST_SETTINGS, blockUntrustedServers: false });
    expect(decision).toMatchObject({ action: 'reject', code: 'SERVER_UNTRUSTED' });
    expect(decision).toHaveProperty('message', expect.stringContaining('OCSP says revoked'));
  });

  it('explains a strict rejection', () => {
    const decision = decideTrust(verdictOf('untrusted'), [], { ...DEFAULT_TRUST_SETTINGS, strictCertificateTrust: true });
    expect(decision).toHaveProperty('message', expect.stringContaining('Strict Certificate Trust'));
    expect(decision).toHaveProperty('message', expect.stringContaining('--cafile'));
  });

  it('warns about unverified revocation', () => {
    const decision = decideTrust(verdictOf('trusted'), ocspOf('unknown'), { ...DEFAULT_TRUST_SETTINGS, blockUntrustedServers: false });
    expect(decision.action).toBe('accept');
    expect(decision).toHaveProperty('warnings', [expect.stringContaining('OCSP says unknown')]);
  });

  it('builds the rejection error', () => {
    const verdict = verdictOf('invalid');
    const decision = decideTrust(verdict, [], { ...DEFAULT_TRUST_SETTINGS, strictCertificateTrust: true });
    if (decision.action !== 'reject') throw new Error(`expected reject, got ${decision.action}`);
    const error = rejectionError(decision, verdict);
    expect(error.code).toBe('SERVER_UNTRUSTED');
    expect(error.exitCode).toBe(5);
    expect(error.details).toMatchObject({ host: HOST, status: 'invalid', reasons: ['expired'], pin: leaf.publicKeyPin });
  });
});

describe('decideTrust FIPS', () => {
  const weak: Reason = {
    code: 'weak-signature-algorithm',
    severity: 'warning',
    message: 'the certificate is signed with SHA-1',
    certificateIndex: 0,
    subject: leaf.subject,
  };

  it.each([
    [true, true, 'reject'],
    [true, false, 'reject'],
    [false, true, 'accept'],
    [false, false, 'accept'],
  ])('fips %s, block %s: SHA-1 → %s', (fips, block, expected) => {
    const settings = { ...DEFAULT_TRUST_SETTINGS, fips, blockUntrustedServers: block };
    expect(summarize(decideTrust(verdictOf('trusted', [weak]), [], settings))).toBe(expected);
  });

  it('passes weak algorithms on as warnings', () => {
    const decision = decideTrust(verdictOf('trusted', [weak]), [], { ...DEFAULT_TRUST_SETTINGS });
    expect(decision).toEqual({ action: 'accept', warnings: ['the certificate is signed with SHA-1'] });
  });

  it('says what FIPS mode rejected', () => {
    const decision = decideTrust(verdictOf('trusted', [weak]), [], { ...DEFAULT_TRUST_SETTINGS, fips: true });
    expect(decision).toHaveProperty('message', expect.stringContaining('FIPS mode'));
    expect(decision).toHaveProperty('message', expect.stringContaining('SHA-1'));
  });
});
