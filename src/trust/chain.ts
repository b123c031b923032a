// Classification of the certificate chain a headend presents, following the AnyConnect mobile
// clients. A chain is *trusted* when everything checks out and a path reaches a trusted root, or
// when the leaf is a certificate the user imported. It is *untrusted* when dates, name and usage
// are right but no path reaches a trusted root. It is *invalid* when a certificate is expired or
// not yet valid, names another host, has the wrong key usage or EKU, a bad signature, or an
// issuer that is no CA. Every problem found is kept as a Reason, not only the first.
//
// Data flow:
//   1. parse every DER certificate;
//   2. build a path from the leaf up through the presented certificates to a trust anchor;
//   3. check dates, name and usage along that path;
//   4. cross-check the path with pkijs's RFC 5280 engine, then derive the verdict.
// The function is pure. The caller passes the roots (system store, --cafile, certificate store),
// the imported server certificates and the time.

import { createHash, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import * as pkijs from 'pkijs';
import { AcvpnError } from '../core/errors.js';

// ---------------------------------------------------------------------------------------------
// Types

/** Facts a user needs to recognise a certificate, plus its DER for OCSP and the store. */
export interface CertificateDetails {
  der: Buffer;
  /** Distinguished names as Node prints them, one RDN per line joined with ", ". */
  subject: string;
  issuer: string;
  /** Upper-case hex. */
  serialNumber: string;
  validFrom: Date;
  validTo: Date;
  /** "DNS:name" and "IP:address" entries of the subjectAltName extension. */
  subjectAltNames: string[];
  /** Upper-case hex bytes separated by colons, as `openssl x509 -fingerprint -sha256` prints. */
  fingerprintSha256: string;
  /** "pin-sha256:" + base64 SHA-256 of the SubjectPublicKeyInfo DER (the --servercert form). */
  publicKeyPin: string;
  /** Key type as Node names it ("rsa", "ec", "ed25519"…), with size in bits where it has one. */
  publicKey: { type: string; bits?: number; curve?: string };
  /** OID of the signature algorithm the issuer used. */
  signatureAlgorithm: string;
  /** AIA OCSP responder URLs. */
  ocspUrls: string[];
  selfIssued: boolean;
}

export type ReasonCode =
  // invalid: the certificate itself is wrong for this connection
  | 'expired'
  | 'not-yet-valid'
  | 'name-mismatch'
  | 'key-usage'
  | 'extended-key-usage'
  | 'not-a-ca'
  | 'path-length-exceeded'
  | 'bad-signature'
  | 'chain-too-long'
  | 'chain-invalid'
  // untrusted: right certificate, but nothing vouches for it
  | 'self-signed'
  | 'untrusted-root'
  | 'issuer-not-found'
  // warning: does not change the status; the FIPS policy rejects these
  | 'weak-signature-algorithm'
  | 'weak-key'
  | 'malformed-certificate';

export type ReasonSeverity = 'invalid' | 'untrusted' | 'warning';

export interface Reason {
  code: ReasonCode;
  severity: ReasonSeverity;
  /** A sentence for the user: what is wrong with which certificate. */
  message: string;
  /** Position in the verdict's `chain` (0 is the leaf), or null for a certificate not in it. */
  certificateIndex: number | null;
  subject: string;
}

export type ChainStatus = 'trusted' | 'untrusted' | 'invalid';

export interface ChainVerdict {
  status: ChainStatus;
  host: string;
  reasons: Reason[];
  leaf: CertificateDetails;
  /** The path that was built: the leaf first, each certificate followed by its issuer. */
  chain: CertificateDetails[];
  /** Source of trust: a root or an imported certificate; null unless status is 'trusted'. */
  trustedBy: 'root' | 'imported-certificate' | null;
}

export interface ClassifyInput {
  /** Certificates as the headend sent them, leaf first; the others in any order. */
  chainDer: Buffer[];
  /** Host name or IP address the user connected to (IPv6 with or without brackets). */
  host: string;
  trustedRootsDer: Buffer[];
  importedServerCertsDer: Buffer[];
  now: Date;
}

// ---------------------------------------------------------------------------------------------
// Constants

const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_EXTENSION_KEY_USAGE = '2.5.29.15';
const OID_EXTENSION_EXTENDED_KEY_USAGE = '2.5.29.37';
const OID_EXTENSION_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_EXTENSION_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_EXTENSION_SUBJECT_KEY_ID = '2.5.29.14';
const OID_EXTENSION_AUTHORITY_KEY_ID = '2.5.29.35';
const OID_EXTENSION_AUTHORITY_INFO_ACCESS = '1.3.6.1.5.5.7.1.1';
const OID_ACCESS_METHOD_OCSP = '1.3.6.1.5.5.7.48.1';

/** sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1. */
const SHA1_SIGNATURE_OIDS = new Set(['1.2.840.113549.1.1.5', '1.2.840.10045.4.1', '1.2.840.10040.4.3']);
/** SP 800-131A: RSA keys below 2048 bits are disallowed for signatures. */
const MIN_RSA_BITS = 2048;

/** Path depth limit (leaf, intermediates and root); real server chains have 2–4 certificates. */
const MAX_PATH_LENGTH = 10;

/** keyUsage bit names in BIT STRING order (RFC 5280 §4.2.1.3). */
const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
type KeyUsage = (typeof KEY_USAGE_BITS)[number];

// ---------------------------------------------------------------------------------------------
// Parsing

/** A certificate parsed both by Node (names, signatures) and by pkijs (extensions). */
export interface ParsedCertificate {
  details: CertificateDetails;
  x509: X509Certificate;
  asn1: pkijs.Certificate;
  /** Undefined when the certificate has no keyUsage extension. */
  keyUsage: Set<KeyUsage> | undefined;
  /** Undefined when the certificate has no extendedKeyUsage extension. */
  extendedKeyUsage: string[] | undefined;
  basicConstraints: { ca: boolean; pathLength: number | undefined } | undefined;
  subjectKeyId: string | undefined;
  authorityKeyId: string | undefined;
}

/** Parses one DER certificate; throws when the bytes are not an X.509 certificate. */
export function parseCertificate(der: Buffer): ParsedCertificate {
  const x509 = new X509Certificate(der);
  // fromBER wants bytes that start at offset 0 of their ArrayBuffer, which a pooled Buffer
  // slice does not, so copy.
  const asn1 = pkijs.Certificate.fromBER(new Uint8Array(der));
  const extensions = new Map((asn1.extensions ?? []).map((extension) => [extension.extnID, extension]));

  const keyUsageValue = extensions.get(OID_EXTENSION_KEY_USAGE)?.parsedValue;
  const extendedKeyUsageValue = extensions.get(OID_EXTENSION_EXTENDED_KEY_USAGE)?.parsedValue;
  const basicConstraintsValue = extensions.get(OID_EXTENSION_BASIC_CONSTRAINTS)?.parsedValue;

  return {
    details: describeParsed(der, x509, asn1, extensions),
    x509,
    asn1,
    keyUsage: keyUsageValue === undefined ? undefined : decodeKeyUsage(keyUsageValue),
    extendedKeyUsage: extendedKeyUsageValue instanceof pkijs.ExtKeyUsage ? extendedKeyUsageValue.keyPurposes : undefined,
    basicConstraints:
      basicConstraintsValue instanceof pkijs.BasicConstraints
        ? { ca: basicConstraintsValue.cA === true, pathLength: decodePathLength(basicConstraintsValue.pathLenConstraint) }
        : undefined,
    subjectKeyId: octetsToHex(extensions.get(OID_EXTENSION_SUBJECT_KEY_ID)?.parsedValue),
    authorityKeyId: octetsToHex(extensions.get(OID_EXTENSION_AUTHORITY_KEY_ID)?.parsedValue?.keyIdentifier),
  };
}

/** Returns the details of one DER certificate (for the store and for prompts). */
export function describeCertificate(der: Buffer): CertificateDetails {
  return parseCertificate(der).details;
}

function describeParsed(
  der: Buffer,
  x509: X509Certificate,
  asn1: pkijs.Certificate,
  extensions: Map<string, pkijs.Extension>,
): CertificateDetails {
  const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
  const keyDetails = x509.publicKey.asymmetricKeyDetails;
  const publicKey: CertificateDetails['publicKey'] = { type: x509.publicKey.asymmetricKeyType ?? 'unknown' };
  if (keyDetails?.modulusLength !== undefined) publicKey.bits = keyDetails.modulusLength;
  if (keyDetails?.namedCurve !== undefined) publicKey.curve = keyDetails.namedCurve;

  return {
    der,
    subject: formatName(x509.subject),
    issuer: formatName(x509.issuer),
    serialNumber: x509.serialNumber.toUpperCase(),
    validFrom: asn1.notBefore.value,
    validTo: asn1.notAfter.value,
    subjectAltNames: decodeSubjectAltNames(extensions.get(OID_EXTENSION_SUBJECT_ALT_NAME)?.parsedValue),
    fingerprintSha256: x509.fingerprint256,
    publicKeyPin: `pin-sha256:${createHash('sha256').update(spki).digest('base64')}`,
    publicKey,
    signatureAlgorithm: asn1.signatureAlgorithm.algorithmId,
    ocspUrls: decodeOcspUrls(extensions.get(OID_EXTENSION_AUTHORITY_INFO_ACCESS)?.parsedValue),
    selfIssued: x509.subject === x509.issuer,
  };
}

function formatName(name: string): string {
  return name.split('\n').join(', ');
}

function decodeKeyUsage(value: unknown): Set<KeyUsage> {
  const usages = new Set<KeyUsage>();
  const bits = (value as { valueBlock?: { valueHexView?: Uint8Array } }).valueBlock?.valueHexView ?? new Uint8Array();
  KEY_USAGE_BITS.forEach((name, index) => {
    const byte = bits[index >> 3] ?? 0;
    if ((byte & (0x80 >> (index & 7))) !== 0) usages.add(name);
  });
  return usages;
}

function decodePathLength(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  const decoded = (value as { valueBlock?: { valueDec?: number } } | undefined)?.valueBlock?.valueDec;
  return typeof decoded === 'number' ? decoded : undefined;
}

function octetsToHex(value: unknown): string | undefined {
  const bytes = (value as { valueBlock?: { valueHexView?: Uint8Array } } | undefined)?.valueBlock?.valueHexView;
  return bytes === undefined || bytes.length === 0 ? undefined : Buffer.from(bytes).toString('hex');
}

function decodeSubjectAltNames(value: unknown): string[] {
  if (!(value instanceof pkijs.AltName)) return [];
  const names: string[] = [];
  for (const name of value.altNames) {
    if (name.type === 2 && typeof name.value === 'string') names.push(`DNS:${name.value}`);
    if (name.type === 7) {
      const bytes = (name.value as { valueBlock?: { valueHexView?: Uint8Array } }).valueBlock?.valueHexView;
      if (bytes !== undefined) names.push(`IP:${formatIpBytes(bytes)}`);
    }
  }
  return names;
}

function formatIpBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) return Buffer.from(bytes).toString('hex');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(':');
}

function decodeOcspUrls(value: unknown): string[] {
  if (!(value instanceof pkijs.InfoAccess)) return [];
  return value.accessDescriptions
    .filter((description) => description.accessMethod === OID_ACCESS_METHOD_OCSP && description.accessLocation.type === 6)
    .map((description) => String(description.accessLocation.value));
}

// ---------------------------------------------------------------------------------------------
// Path building

interface BuiltPath {
  path: ParsedCertificate[];
  /** True when the last certificate of `path` is a trust anchor. */
  anchored: boolean;
  reasons: Reason[];
}

function sameCertificate(a: ParsedCertificate, b: ParsedCertificate): boolean {
  return a.details.fingerprintSha256 === b.details.fingerprintSha256;
}

/** Matches trust anchors by name and key, so a re-issued copy of a root still counts. */
function isAnchor(certificate: ParsedCertificate, anchors: ParsedCertificate[]): boolean {
  return anchors.some(
    (anchor) =>
      sameCertificate(anchor, certificate) ||
      (anchor.x509.subject === certificate.x509.subject && anchor.details.publicKeyPin === certificate.details.publicKeyPin),
  );
}

/** Could `issuer` have issued `subject`, judged by names and key identifiers only? */
function namesIssuer(subject: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (subject.x509.issuer !== issuer.x509.subject) return false;
  if (subject.authorityKeyId !== undefined && issuer.subjectKeyId !== undefined) {
    return subject.authorityKeyId === issuer.subjectKeyId;
  }
  return true;
}

/**
 * Walks from the leaf to a trust anchor, taking issuers from the anchors first and then from
 * the certificates the headend sent (in any order, duplicates ignored). Stops at the first
 * anchor, at a self-signed certificate, or where no issuer is found.
 */
function buildPath(leaf: ParsedCertificate, presented: ParsedCertificate[], anchors: ParsedCertificate[]): BuiltPath {
  const path = [leaf];
  const reasons: Reason[] = [];
  let current = leaf;

  for (;;) {
    const index = path.length - 1;
    if (isAnchor(current, anchors)) return { path, anchored: true, reasons };

    if (path.length >= MAX_PATH_LENGTH) {
      reasons.push(reason('chain-too-long', 'invalid', current, index,
        `the chain is longer than ${MAX_PATH_LENGTH} certificates without reaching a trusted root`));
      return { path, anchored: false, reasons };
    }

    const candidates = [...anchors, ...presented.filter((candidate) => !path.some((used) => sameCertificate(used, candidate)))]
      .filter((candidate) => namesIssuer(current, candidate));
    const issuer = candidates.find((candidate) => current.x509.verify(candidate.x509.publicKey));

    if (issuer !== undefined) {
      path.push(issuer);
      current = issuer;
      continue;
    }

    if (current.details.selfIssued) {
      reasons.push(...selfSignedReasons(current, index));
      return { path, anchored: false, reasons };
    }

    if (candidates.length > 0) {
      reasons.push(reason('bad-signature', 'invalid', current, index,
        `the signature of ${describeShort(current)} does not verify with the key of its issuer ${candidates[0]?.details.subject}`));
    } else {
      reasons.push(reason('issuer-not-found', 'untrusted', current, index,
        `the issuer ${current.details.issuer} of ${describeShort(current)} was neither sent by the headend nor found among ` +
          'the trusted roots (the headend may be missing an intermediate certificate)'));
    }
    return { path, anchored: false, reasons };
  }
}

function selfSignedReasons(certificate: ParsedCertificate, index: number): Reason[] {
  if (!certificate.x509.verify(certificate.x509.publicKey)) {
    return [reason('bad-signature', 'invalid', certificate, index,
      `${describeShort(certificate)} names itself as issuer but its signature does not verify with its own key`)];
  }
  if (index === 0) {
    return [reason('self-signed', 'untrusted', certificate, index,
      `the headend's certificate ${describeShort(certificate)} is self-signed and not among the trusted roots`)];
  }
  return [reason('untrusted-root', 'untrusted', certificate, index,
    `the chain ends at the root ${certificate.details.subject}, which is not among the trusted roots`)];
}

// ---------------------------------------------------------------------------------------------
// Checks along the path

function checkDates(path: ParsedCertificate[], now: Date): Reason[] {
  const reasons: Reason[] = [];
  path.forEach((certificate, index) => {
    const { validFrom, validTo } = certificate.details;
    if (now.getTime() > validTo.getTime()) {
      reasons.push(reason('expired', 'invalid', certificate, index,
        `${describeShort(certificate)} expired on ${validTo.toISOString()}`));
    }
    if (now.getTime() < validFrom.getTime()) {
      reasons.push(reason('not-yet-valid', 'invalid', certificate, index,
        `${describeShort(certificate)} is not valid before ${validFrom.toISOString()} (check the clock of this machine)`));
    }
  });
  return reasons;
}

/** Strips IPv6 brackets and a trailing dot, and lower-cases names. */
export function normalizeHost(host: string): string {
  const trimmed = host.trim();
  if (trimmed.startsWith('[') && trimmed.endsWith(']')) return trimmed.slice(1, -1).toLowerCase();
  return trimmed.replace(/\.$/, '').toLowerCase();
}

function checkName(leaf: ParsedCertificate, host: string): Reason[] {
  const name = normalizeHost(host);
  // Wildcards match exactly one whole left-most label (RFC 6125 §6.4.3): no "w*.example.com",
  // no "*.example.com" for "a.b.example.com" or for "example.com". The subject CN is consulted
  // only when the certificate has no DNS name in subjectAltName.
  const matches =
    isIP(name) !== 0
      ? leaf.x509.checkIP(name) !== undefined
      : leaf.x509.checkHost(name, { subject: 'default', wildcards: true, partialWildcards: false, multiLabelWildcards: false }) !==
        undefined;
  if (matches) return [];

  const names = leaf.details.subjectAltNames.length > 0 ? leaf.details.subjectAltNames.join(', ') : 'no subjectAltName';
  return [reason('name-mismatch', 'invalid', leaf, 0,
    `the headend's certificate (${leaf.details.subject}; ${names}) is not valid for ${name}; ` +
      'connect with a name the certificate lists')];
}

/**
 * Checks the leaf's keyUsage and EKU. A TLS server key signs the handshake (ECDHE and TLS 1.3
 * need digitalSignature), or with RSA key transport in TLS 1.2 it decrypts the premaster secret
 * (keyEncipherment). The handshake's choice is not known here, so an RSA key may have either
 * bit, and other keys need digitalSignature.
 */
function checkLeafUsage(leaf: ParsedCertificate): Reason[] {
  const reasons: Reason[] = [];
  if (leaf.keyUsage !== undefined) {
    const allowed: KeyUsage[] = leaf.details.publicKey.type === 'rsa' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'];
    if (!allowed.some((usage) => leaf.keyUsage?.has(usage))) {
      reasons.push(reason('key-usage', 'invalid', leaf, 0,
        `the keyUsage of the headend's certificate (${[...leaf.keyUsage].join(', ') || 'empty'}) allows none of ` +
          `${allowed.join(', ')}, so it may not be used by a TLS server`));
    }
  }
  reasons.push(...checkServerAuth(leaf, 0));
  return reasons;
}

/** An extendedKeyUsage extension, where present, must list serverAuth (CAs included, as OpenSSL does). */
function checkServerAuth(certificate: ParsedCertificate, index: number): Reason[] {
  const purposes = certificate.extendedKeyUsage;
  if (purposes === undefined || purposes.includes(OID_SERVER_AUTH)) return [];
  return [reason('extended-key-usage', 'invalid', certificate, index,
    `the extendedKeyUsage of ${describeShort(certificate)} (${purposes.join(', ')}) does not include serverAuth ` +
      `(${OID_SERVER_AUTH}), so it may not be used for a TLS server`)];
}

/** Every certificate above the leaf must be a CA allowed to sign certificates at its depth. */
function checkIssuers(path: ParsedCertificate[], anchored: boolean): Reason[] {
  const reasons: Reason[] = [];
  for (let index = 1; index < path.length; index++) {
    const certificate = path[index];
    if (certificate === undefined) continue;
    const isTrustAnchor = anchored && index === path.length - 1;
    const constraints = certificate.basicConstraints;

    // A trust anchor without basicConstraints (an X.509 v1 root) is accepted, as OpenSSL does.
    if (constraints?.ca !== true && !(isTrustAnchor && constraints === undefined)) {
      reasons.push(reason('not-a-ca', 'invalid', certificate, index,
        `${describeShort(certificate)} issued another certificate but is not a CA (basicConstraints cA is not set)`));
    }
    if (certificate.keyUsage !== undefined && !certificate.keyUsage.has('keyCertSign')) {
      reasons.push(reason('key-usage', 'invalid', certificate, index,
        `${describeShort(certificate)} issued another certificate but its keyUsage lacks keyCertSign`));
    }

    // pathLenConstraint counts the non-self-issued intermediates below this CA, the leaf excluded.
    const intermediatesBelow = path.slice(1, index).filter((below) => !below.details.selfIssued).length;
    if (constraints?.pathLength !== undefined && intermediatesBelow > constraints.pathLength) {
      reasons.push(reason('path-length-exceeded', 'invalid', certificate, index,
        `${describeShort(certificate)} allows ${constraints.pathLength} intermediate CA(s) below it, the chain has ${intermediatesBelow}`));
    }
    if (!isTrustAnchor) reasons.push(...checkServerAuth(certificate, index));
  }
  return reasons;
}

function checkAlgorithms(path: ParsedCertificate[], anchored: boolean): Reason[] {
  const reasons: Reason[] = [];
  path.forEach((certificate, index) => {
    const isTrustAnchor = anchored && index === path.length - 1;
    // A root's self-signature is never relied on: trust in it comes from the store.
    if (!isTrustAnchor && SHA1_SIGNATURE_OIDS.has(certificate.details.signatureAlgorithm)) {
      reasons.push(reason('weak-signature-algorithm', 'warning', certificate, index,
        `${describeShort(certificate)} is signed with SHA-1, which FIPS mode does not accept`));
    }
    const bits = certificate.details.publicKey.bits;
    if (certificate.details.publicKey.type === 'rsa' && bits !== undefined && bits < MIN_RSA_BITS) {
      reasons.push(reason('weak-key', 'warning', certificate, index,
        `${describeShort(certificate)} has a ${bits}-bit RSA key; FIPS mode needs at least ${MIN_RSA_BITS} bits`));
    }
  });
  return reasons;
}

/**
 * Runs pkijs's RFC 5280 path validation over a path already built and checked here, to catch
 * what the checks above leave out (name constraints, policy constraints).
 */
async function crossCheckWithPkijs(path: ParsedCertificate[], now: Date): Promise<Reason[]> {
  const anchor = path[path.length - 1];
  if (anchor === undefined || path.length < 2) return [];
  // The engine treats the LAST entry of `certs` as the end-entity certificate.
  const engine = new pkijs.CertificateChainValidationEngine({
    trustedCerts: [anchor.asn1],
    certs: path.slice(0, -1).reverse().map((certificate) => certificate.asn1),
    checkDate: now,
  });
  let message: string;
  try {
    const result = await engine.verify();
    if (result.result) return [];
    message = result.resultMessage;
  } catch (error) {
    message = error instanceof Error ? error.message : String(error);
  }
  const leaf = path[0] as ParsedCertificate;
  return [reason('chain-invalid', 'invalid', leaf, 0, `RFC 5280 path validation of the chain failed: ${message}`)];
}

// ---------------------------------------------------------------------------------------------
// Classification

/** Classifies the headend's chain as trusted, untrusted (valid but unverified) or invalid. */
export async function classifyServerChain(input: ClassifyInput): Promise<ChainVerdict> {
  const [leafDer, ...otherDer] = input.chainDer;
  if (leafDer === undefined) {
    throw new AcvpnError('SERVER_UNTRUSTED', `the headend ${input.host} sent no certificate; check that it is a TLS VPN headend`, {
      host: input.host,
    });
  }
  const leaf = parseLeaf(leafDer, input.host);

  const warnings: Reason[] = [];
  const presented = parseAll(otherDer, (der, error) => {
    warnings.push({
      code: 'malformed-certificate',
      severity: 'warning',
      message: `a certificate sent by the headend could not be parsed and was ignored (${error})`,
      certificateIndex: null,
      subject: `${der.length} bytes`,
    });
  });
  const anchors = parseAll(input.trustedRootsDer);
  const imported = input.importedServerCertsDer.some((der) => der.equals(leafDer));

  let built = buildPath(leaf, presented, anchors);
  let trustedBy: ChainVerdict['trustedBy'] = built.anchored ? 'root' : null;
  // A byte-for-byte match with an imported server certificate replaces the path to a root, but
  // dates, name and usage are still checked below.
  if (!built.anchored && imported) {
    built = { path: [leaf], anchored: false, reasons: [] };
    trustedBy = 'imported-certificate';
  }

  const reasons = [
    ...built.reasons,
    ...checkDates(built.path, input.now),
    ...checkName(leaf, input.host),
    ...checkLeafUsage(leaf),
    ...checkIssuers(built.path, built.anchored),
  ];
  if (built.anchored && !reasons.some((found) => found.severity === 'invalid')) {
    reasons.push(...(await crossCheckWithPkijs(built.path, input.now)));
  }
  reasons.push(...checkAlgorithms(built.path, built.anchored), ...warnings);

  const status = statusFrom(reasons);
  return {
    status,
    host: input.host,
    reasons,
    leaf: leaf.details,
    chain: built.path.map((certificate) => certificate.details),
    trustedBy: status === 'trusted' ? trustedBy : null,
  };
}

function parseLeaf(der: Buffer, host: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (error) {
    throw new AcvpnError(
      'SERVER_UNTRUSTED',
      `the headend ${host} sent a certificate that is not valid X.509 (${error instanceof Error ? error.message : String(error)}); ` +
        'check that the address points to the VPN headend',
      { host },
      { cause: error },
    );
  }
}

/** Parses each certificate once (duplicates dropped); calls `onError` for bytes that do not parse. */
function parseAll(ders: Buffer[], onError?: (der: Buffer, error: string) => void): ParsedCertificate[] {
  const parsed: ParsedCertificate[] = [];
  for (const der of ders) {
    try {
      const certificate = parseCertificate(der);
      if (!parsed.some((seen) => sameCertificate(seen, certificate))) parsed.push(certificate);
    } catch (error) {
      onError?.(der, error instanceof Error ? error.message : String(error));
    }
  }
  return parsed;
}

function statusFrom(reasons: Reason[]): ChainStatus {
  if (reasons.some((found) => found.severity === 'invalid')) return 'invalid';
  if (reasons.some((found) => found.severity === 'untrusted')) return 'untrusted';
  return 'trusted';
}

function reason(code: ReasonCode, severity: ReasonSeverity, certificate: ParsedCertificate, index: number, message: string): Reason {
  return { code, severity, message, certificateIndex: index, subject: certificate.details.subject };
}

function describeShort(certificate: ParsedCertificate): string {
  return `the certificate ${certificate.details.subject} (serial ${certificate.details.serialNumber})`;
}
