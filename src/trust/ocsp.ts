// OCSP revocation check (RFC 6960) of the path that classifyServerChain built.
//
// Each certificate that names a responder (AIA OCSP URL) and whose issuer is the next certificate
// of the path goes through these steps:
//   1. build a request with a nonce;
//   2. send it through the injected transport, with a per-certificate timeout;
//   3. verify the response: an authorized signer (the issuing CA itself, or a delegated responder
//      certificate issued by that CA with the OCSPSigning EKU), the signature, a matching CertID,
//      the nonce, and thisUpdate/nextUpdate freshness.
// All certificates are checked in parallel, so the whole check ends within about one timeout,
// and never later than the timeout times the path length.
//
// Request building and response evaluation are pure; `checkOcsp` only adds the timer and the
// transport, and `httpOcspTransport` is the one driver that touches the network.

import { createHash, randomBytes, verify as verifySignature, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { AcvpnError } from '../core/errors.js';
import type { CertificateDetails } from './chain.js';

// ---------------------------------------------------------------------------------------------
// Types

export type OcspStatus = 'good' | 'revoked' | 'unknown' | 'unreachable' | 'not-checked';

/** Cause of an 'unreachable' result (no usable response) or a 'not-checked' one (no request possible). */
export type OcspProblem =
  | 'timeout'
  | 'transport-error'
  | 'bad-response'
  | 'unauthorized'
  | 'nonce-mismatch'
  | 'stale'
  | 'no-responder'
  | 'issuer-unknown';

export interface OcspResult {
  /** Position in the path (0 is the leaf). */
  certificateIndex: number;
  subject: string;
  serialNumber: string;
  responderUrl: string | null;
  status: OcspStatus;
  problem?: OcspProblem;
  /** A sentence for the user: the responder's status or why there is none. */
  message: string;
  revokedAt?: Date;
  /** CRLReason name (RFC 5280 §5.3.1), when the responder gave one. */
  revocationReason?: string;
  thisUpdate?: Date;
  nextUpdate?: Date;
}

/** Per-certificate OCSP timeout of the AnyConnect mobile clients. */
export const OCSP_TIMEOUT_MS_PER_CERT = 5000;

/** Sends one DER OCSP request to `url` and resolves with the DER response body. */
export type OcspTransport = (url: string, requestDer: Buffer, signal: AbortSignal) => Promise<Buffer>;

export interface OcspOptions {
  /** Time allowed for each certificate's request and response; the product uses OCSP_TIMEOUT_MS_PER_CERT. */
  timeoutMsPerCert: number;
  now: Date;
  /** Accepted clock difference to the responder; default 5 minutes. */
  clockSkewMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Constants

const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OID_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2';
const OID_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const DEFAULT_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** RFC 8954 §2.1: a nonce is 1 to 32 octets. */
const NONCE_LENGTH = 32;
/** A response without nonce and without nextUpdate is accepted only this long after thisUpdate. */
const MAX_AGE_WITHOUT_NEXT_UPDATE_MS = 24 * 60 * 60 * 1000;
/** OCSP responses are a few kilobytes; anything far larger is not one. */
export const MAX_OCSP_RESPONSE_BYTES = 1024 * 1024;

const RESPONSE_STATUS_NAMES = ['successful', 'malformedRequest', 'internalError', 'tryLater', '(unused)', 'sigRequired', 'unauthorized'];

const CRL_REASON_NAMES = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  '(unused)',
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
];

/** Signature algorithm OID → Node digest name; null for algorithms with a built-in digest. */
const SIGNATURE_DIGESTS = new Map<string, string | null>([
  ['1.2.840.113549.1.1.5', 'sha1'],
  ['1.2.840.113549.1.1.14', 'sha224'],
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.2.840.10045.4.1', 'sha1'],
  ['1.2.840.10045.4.3.1', 'sha224'],
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.3.101.112', null],
  ['1.3.101.113', null],
]);

// ---------------------------------------------------------------------------------------------
// Request

export interface OcspRequest {
  der: Buffer;
  certId: pkijs.CertID;
  /** The nonce extension's extnValue (a DER OCTET STRING), compared with the response's. */
  nonceValue: Buffer;
}

/** Builds a DER OCSP request for `certificate` with a random nonce. */
export async function buildOcspRequest(certificate: Buffer, issuer: Buffer, nonce: Buffer = randomBytes(NONCE_LENGTH)): Promise<OcspRequest> {
  // SHA-1 CertIDs are the ones every responder supports (RFC 5019 §2.1.1); the hash only names
  // the certificate, it protects nothing.
  const certId = await pkijs.CertID.create(toPkijs(certificate), { hashAlgorithm: 'SHA-1', issuerCertificate: toPkijs(issuer) });
  const nonceValue = Buffer.from(new asn1js.OctetString({ valueHex: toArrayBuffer(nonce) }).toBER());

  const request = new pkijs.OCSPRequest();
  request.tbsRequest.requestList = [new pkijs.Request({ reqCert: certId })];
  request.tbsRequest.requestExtensions = [
    new pkijs.Extension({ extnID: OID_OCSP_NONCE, extnValue: toArrayBuffer(nonceValue) }),
  ];
  return { der: Buffer.from(request.toSchema(true).toBER()), certId, nonceValue };
}

// ---------------------------------------------------------------------------------------------
// Response evaluation

export type OcspAnswer =
  | { status: 'good' | 'unknown'; thisUpdate: Date; nextUpdate?: Date }
  | { status: 'revoked'; thisUpdate: Date; nextUpdate?: Date; revokedAt: Date; revocationReason?: string }
  | { status: 'unreachable'; problem: OcspProblem; message: string };

/** Verifies a DER OCSP response to `request` for `certificate`, issued by `issuer`. */
export function evaluateOcspResponse(
  responseDer: Buffer,
  request: OcspRequest,
  issuer: Buffer,
  now: Date,
  clockSkewMs: number = DEFAULT_CLOCK_SKEW_MS,
): OcspAnswer {
  // pkijs throws on malformed structures anywhere in the response, not only while parsing.
  try {
    return evaluateParsedResponse(responseDer, request, issuer, now, clockSkewMs);
  } catch (error) {
    return unreachable('bad-response', `the response is not a valid OCSP response (${errorText(error)})`);
  }
}

function evaluateParsedResponse(responseDer: Buffer, request: OcspRequest, issuer: Buffer, now: Date, clockSkewMs: number): OcspAnswer {
  const parsed = parseBasicResponse(responseDer);
  if ('problem' in parsed) return parsed;
  const basic = parsed.basic;

  const signerCheck = findAuthorizedSigner(basic, issuer, now);
  if ('problem' in signerCheck) return signerCheck;
  if (!verifyResponseSignature(basic, signerCheck.signer)) {
    return unreachable('bad-response', 'the signature of the response does not verify with the responder key');
  }

  const single = basic.tbsResponseData.responses.find((response) => response.certID.isEqual(request.certId));
  if (single === undefined) return unreachable('bad-response', 'the response does not cover the requested certificate');

  const nonceProblem = checkNonce(basic, request);
  if (nonceProblem !== undefined) return nonceProblem;
  const freshnessProblem = checkFreshness(single, now, clockSkewMs, hasNonce(basic));
  if (freshnessProblem !== undefined) return freshnessProblem;

  return readCertStatus(single);
}

function parseBasicResponse(responseDer: Buffer): { basic: pkijs.BasicOCSPResponse } | Extract<OcspAnswer, { status: 'unreachable' }> {
  const response = pkijs.OCSPResponse.fromBER(new Uint8Array(responseDer));
  const statusCode = response.responseStatus.valueBlock.valueDec;
  if (statusCode !== 0) {
    const name = RESPONSE_STATUS_NAMES[statusCode] ?? 'unknown';
    return unreachable('bad-response', `the responder returned the error status ${name} (${statusCode})`);
  }
  if (response.responseBytes === undefined || response.responseBytes.responseType !== OID_OCSP_BASIC) {
    return unreachable('bad-response', 'the response is not a basic OCSP response');
  }
  const basic = pkijs.BasicOCSPResponse.fromBER(new Uint8Array(response.responseBytes.response.valueBlock.valueHexView));
  return { basic };
}

/**
 * Returns the certificate allowed to sign this response (RFC 6960 §4.2.2.2): the issuing CA
 * itself, or a certificate in the response issued by that CA with the OCSPSigning EKU and valid
 * now. Any other signer, even one that chains to a trusted root, is 'unauthorized'.
 */
function findAuthorizedSigner(
  basic: pkijs.BasicOCSPResponse,
  issuerDer: Buffer,
  now: Date,
): { signer: X509Certificate } | Extract<OcspAnswer, { status: 'unreachable' }> {
  const issuer = toPkijs(issuerDer);
  if (matchesResponderId(issuer, basic.tbsResponseData.responderID)) return { signer: new X509Certificate(issuerDer) };

  const issuerX509 = new X509Certificate(issuerDer);
  const candidates = (basic.certs ?? []).filter((certificate) => matchesResponderId(certificate, basic.tbsResponseData.responderID));
  if (candidates.length === 0) {
    return unreachable('unauthorized', 'the response is signed by neither the issuing CA nor a responder certificate included in it');
  }

  const rejections: string[] = [];
  for (const candidate of candidates) {
    const x509 = new X509Certificate(Buffer.from(candidate.toSchema().toBER()));
    const subject = x509.subject.split('\n').join(', ');
    const purposes = readExtendedKeyUsage(candidate);
    if (x509.issuer !== issuerX509.subject || !x509.verify(issuerX509.publicKey)) {
      rejections.push(`${subject} was not issued by the CA of the checked certificate`);
    } else if (!purposes.includes(OID_OCSP_SIGNING)) {
      rejections.push(`${subject} lacks the OCSPSigning extended key usage`);
    } else if (now < candidate.notBefore.value || now > candidate.notAfter.value) {
      rejections.push(`${subject} is outside its validity period`);
    } else {
      return { signer: x509 };
    }
  }
  return unreachable('unauthorized', `the responder is not authorized to answer for this CA: ${rejections.join('; ')}`);
}

function matchesResponderId(certificate: pkijs.Certificate, responderId: unknown): boolean {
  if (responderId instanceof pkijs.RelativeDistinguishedNames) return certificate.subject.isEqual(responderId);
  if (responderId instanceof asn1js.OctetString) {
    // byKey: SHA-1 of the subjectPublicKey BIT STRING contents (RFC 6960 §4.2.1).
    const keyHash = createHash('sha1').update(certificate.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView).digest();
    return keyHash.equals(Buffer.from(responderId.valueBlock.valueHexView));
  }
  return false;
}

function readExtendedKeyUsage(certificate: pkijs.Certificate): string[] {
  const extension = certificate.extensions?.find((candidate) => candidate.extnID === '2.5.29.37');
  return extension?.parsedValue instanceof pkijs.ExtKeyUsage ? extension.parsedValue.keyPurposes : [];
}

function verifyResponseSignature(basic: pkijs.BasicOCSPResponse, signer: X509Certificate): boolean {
  const algorithm = basic.signatureAlgorithm.algorithmId;
  const digest = SIGNATURE_DIGESTS.get(algorithm);
  // NOTE: RSASSA-PSS (1.2.840.113549.1.1.10) is not mapped, so such responses count as
  // unverifiable; no responder met so far signs with PSS.
  if (digest === undefined) return false;
  try {
    return verifySignature(
      digest,
      basic.tbsResponseData.tbsView,
      signer.publicKey,
      basic.signature.valueBlock.valueHexView,
    );
  } catch {
    return false;
  }
}

function responseNonce(basic: pkijs.BasicOCSPResponse): Buffer | undefined {
  const extension = basic.tbsResponseData.responseExtensions?.find((candidate) => candidate.extnID === OID_OCSP_NONCE);
  return extension === undefined ? undefined : Buffer.from(extension.extnValue.valueBlock.valueHexView);
}

function hasNonce(basic: pkijs.BasicOCSPResponse): boolean {
  return responseNonce(basic) !== undefined;
}

/**
 * A nonce, when the responder echoes one, must be ours. Responders that serve pre-signed
 * responses (RFC 5019) leave it out; those are judged by thisUpdate/nextUpdate alone.
 */
function checkNonce(basic: pkijs.BasicOCSPResponse, request: OcspRequest): OcspAnswer | undefined {
  const nonce = responseNonce(basic);
  if (nonce === undefined || nonce.equals(request.nonceValue)) return undefined;
  return unreachable('nonce-mismatch', 'the response carries a nonce other than the one sent, so it may be a replay');
}

function checkFreshness(single: pkijs.SingleResponse, now: Date, clockSkewMs: number, nonceMatched: boolean): OcspAnswer | undefined {
  const thisUpdate = single.thisUpdate;
  const nextUpdate = single.nextUpdate;
  if (thisUpdate.getTime() > now.getTime() + clockSkewMs) {
    return unreachable('stale', `the response is dated ${thisUpdate.toISOString()}, in the future (check the clock of this machine)`);
  }
  if (nextUpdate !== undefined && nextUpdate.getTime() < now.getTime() - clockSkewMs) {
    return unreachable('stale', `the response expired at ${nextUpdate.toISOString()} (nextUpdate)`);
  }
  if (nextUpdate === undefined && !nonceMatched && now.getTime() - thisUpdate.getTime() > MAX_AGE_WITHOUT_NEXT_UPDATE_MS) {
    return unreachable('stale', `the response from ${thisUpdate.toISOString()} has neither nonce nor nextUpdate and is too old`);
  }
  return undefined;
}

function readCertStatus(single: pkijs.SingleResponse): OcspAnswer {
  const status = single.certStatus as asn1js.BaseBlock;
  const times = { thisUpdate: single.thisUpdate, ...(single.nextUpdate === undefined ? {} : { nextUpdate: single.nextUpdate }) };
  switch (status.idBlock.tagNumber) {
    case 0:
      return { status: 'good', ...times };
    case 1: {
      // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
      const parts = (status as asn1js.Constructed).valueBlock.value;
      const time = parts[0];
      const revokedAt = time instanceof asn1js.GeneralizedTime ? time.toDate() : new Date(Number.NaN);
      const reasonBlock = (parts[1] as asn1js.Constructed | undefined)?.valueBlock.value[0];
      const reasonCode = reasonBlock instanceof asn1js.Enumerated ? reasonBlock.valueBlock.valueDec : undefined;
      const revocationReason = reasonCode === undefined ? undefined : (CRL_REASON_NAMES[reasonCode] ?? `reason ${reasonCode}`);
      return { status: 'revoked', ...times, revokedAt, ...(revocationReason === undefined ? {} : { revocationReason }) };
    }
    case 2:
      return { status: 'unknown', ...times };
    default:
      return unreachable('bad-response', `the response has an unknown certStatus tag ${status.idBlock.tagNumber}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Checking a path

/** Checks every certificate of `chain` (leaf first, each followed by its issuer) that names a responder. */
export async function checkOcsp(chain: readonly CertificateDetails[], transport: OcspTransport, options: OcspOptions): Promise<OcspResult[]> {
  return Promise.all(chain.map((certificate, index) => checkOne(certificate, index, chain[index + 1], transport, options)));
}

async function checkOne(
  certificate: CertificateDetails,
  index: number,
  issuer: CertificateDetails | undefined,
  transport: OcspTransport,
  options: OcspOptions,
): Promise<OcspResult> {
  const base = { certificateIndex: index, subject: certificate.subject, serialNumber: certificate.serialNumber };
  const url = certificate.ocspUrls.find((candidate) => /^https?:\/\//i.test(candidate));
  if (url === undefined) {
    const message = certificate.selfIssued
      ? 'a self-signed root is trusted as such and has no revocation check'
      : 'the certificate names no OCSP responder';
    return { ...base, responderUrl: null, status: 'not-checked', problem: 'no-responder', message };
  }
  if (issuer === undefined) {
    return {
      ...base,
      responderUrl: url,
      status: 'not-checked',
      problem: 'issuer-unknown',
      message: 'the issuer of the certificate is not known, so its OCSP request cannot be built',
    };
  }

  const answer = await queryResponder(certificate, issuer, url, transport, options);
  if (answer.status === 'unreachable') {
    return { ...base, responderUrl: url, status: 'unreachable', problem: answer.problem, message: `OCSP responder ${url}: ${answer.message}` };
  }
  return { ...base, responderUrl: url, ...answer, message: describeAnswer(url, answer) };
}

async function queryResponder(
  certificate: CertificateDetails,
  issuer: CertificateDetails,
  url: string,
  transport: OcspTransport,
  options: OcspOptions,
): Promise<OcspAnswer> {
  let request: OcspRequest;
  try {
    request = await buildOcspRequest(certificate.der, issuer.der);
  } catch (error) {
    return unreachable('bad-response', `the OCSP request could not be built (${errorText(error)})`);
  }

  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  // The race also ends a transport that ignores its abort signal.
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`OCSP request timed out after ${options.timeoutMsPerCert} ms`));
      resolve('timeout');
    }, options.timeoutMsPerCert);
  });

  try {
    const body = await Promise.race([transport(url, request.der, controller.signal), timeout]);
    if (body === 'timeout') return unreachable('timeout', `timed out after ${options.timeoutMsPerCert} ms without a response`);
    return evaluateOcspResponse(body, request, issuer.der, options.now, options.clockSkewMs);
  } catch (error) {
    if (controller.signal.aborted) return unreachable('timeout', `timed out after ${options.timeoutMsPerCert} ms without a response`);
    return unreachable('transport-error', `the request failed (${errorText(error)})`);
  } finally {
    clearTimeout(timer);
  }
}

function describeAnswer(url: string, answer: Exclude<OcspAnswer, { status: 'unreachable' }>): string {
  switch (answer.status) {
    case 'good':
      return `OCSP responder ${url} reports the certificate as good`;
    case 'unknown':
      return `OCSP responder ${url} does not know the certificate (status unknown)`;
    case 'revoked':
      return (
        `OCSP responder ${url} reports the certificate as revoked on ${answer.revokedAt.toISOString()}` +
        (answer.revocationReason === undefined ? '' : ` (${answer.revocationReason})`)
      );
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP transport (driver)

/** Posts a DER OCSP request to `url` (RFC 6960 Appendix A.1) and returns the response body. */
export async function httpOcspTransport(url: string, requestDer: Buffer, signal: AbortSignal): Promise<Buffer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/ocsp-request', Accept: 'application/ocsp-response' },
    body: new Uint8Array(requestDer),
    signal,
    redirect: 'error',
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new AcvpnError('HTTP_STATUS', `OCSP responder ${url} returned HTTP status ${response.status}, expected 200`, {
      url,
      status: response.status,
    });
  }
  return readLimitedBody(response, url);
}

async function readLimitedBody(response: Response, url: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (response.body === null) return Buffer.alloc(0);
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > MAX_OCSP_RESPONSE_BYTES) {
      throw new AcvpnError('HTTP_MALFORMED', `OCSP responder ${url} sent more than ${MAX_OCSP_RESPONSE_BYTES} bytes`, { url });
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------
// Helpers

function toPkijs(der: Buffer): pkijs.Certificate {
  return pkijs.Certificate.fromBER(new Uint8Array(der));
}

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return new Uint8Array(bytes).buffer;
}

function unreachable(problem: OcspProblem, message: string): Extract<OcspAnswer, { status: 'unreachable' }> {
  return { status: 'unreachable', problem, message };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
