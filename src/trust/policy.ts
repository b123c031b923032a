// The trust decision for a headend, from the chain verdict, the OCSP results and the user's
// settings, following the AnyConnect mobile client's rules:
//
//   revoked certificate anywhere in the path          → reject, whatever the settings
//   FIPS mode and a SHA-1 signature or short RSA key   → reject
//   Strict Certificate Trust and anything unverified   → reject, no prompt
//     (untrusted, invalid, OCSP unknown or unreachable)
//   untrusted or invalid, Block Untrusted Servers on   → ask: abort or change the setting
//   untrusted or invalid, Block Untrusted Servers off  → ask: abort, continue, view, and
//                                                        import-and-continue for untrusted only
//   OCSP unknown or unreachable, Block Untrusted on    → ask: abort or change the setting
//   OCSP unknown or unreachable, Block Untrusted off   → accept with a warning
//   otherwise                                          → accept
//
// "Keep me safe" is always 'abort'. An invalid certificate (expired, wrong name, wrong usage,
// bad signature) can never be imported, because importing would make it look trusted.

import { AcvpnError } from '../core/errors.js';
import type { CertificateDetails, ChainStatus, ChainVerdict, Reason } from './chain.js';
import type { OcspResult } from './ocsp.js';

export interface TrustSettings {
  /** Block Untrusted Servers: never connect to an untrusted headend without changing this setting. */
  blockUntrustedServers: boolean;
  /** Strict Certificate Trust: reject anything not fully verified, without a prompt. */
  strictCertificateTrust: boolean;
  /** Check revocation with OCSP. */
  ocsp: boolean;
  /** FIPS mode: reject SHA-1 signatures and RSA keys below 2048 bits (NIST SP 800-131A). */
  fips: boolean;
}

export const DEFAULT_TRUST_SETTINGS: Readonly<TrustSettings> = {
  blockUntrustedServers: true,
  strictCertificateTrust: false,
  ocsp: true,
  fips: false,
};

export type TrustAnswer = 'abort' | 'continue' | 'import-and-continue' | 'view' | 'change-setting';

/** Everything a front end needs to show the "Untrusted VPN Server" prompt. */
export interface TrustPromptDetails {
  title: 'Untrusted VPN Server';
  message: string;
  host: string;
  status: ChainStatus;
  /** True when Block Untrusted Servers stopped the connection (only abort or change-setting). */
  blocked: boolean;
  reasons: Reason[];
  /** OCSP results that left revocation unverified (unknown or unreachable). */
  ocspProblems: OcspResult[];
  leaf: CertificateDetails;
  chain: CertificateDetails[];
}

export type TrustDecision =
  | { action: 'accept'; warnings: string[] }
  | { action: 'reject'; code: 'SERVER_UNTRUSTED'; message: string }
  | { action: 'ask'; allowed: TrustAnswer[]; details: TrustPromptDetails };

const PROMPT_TITLE = 'Untrusted VPN Server';
const WEAK_ALGORITHM_CODES = new Set(['weak-signature-algorithm', 'weak-key']);

/** Decides whether to connect to the headend, refuse, or ask the user. */
export function decideTrust(verdict: ChainVerdict, ocspResults: readonly OcspResult[], settings: TrustSettings): TrustDecision {
  const host = verdict.host;
  const revoked = ocspResults.filter((result) => result.status === 'revoked');
  if (revoked.length > 0) {
    return reject(
      `the headend ${host} presented a revoked certificate: ${messages(revoked)}. ` +
        'Do not connect; ask the headend administrator to replace the certificate',
    );
  }

  const ocspProblems = settings.ocsp ? ocspResults.filter((result) => result.status === 'unknown' || result.status === 'unreachable') : [];
  const weakAlgorithms = verdict.reasons.filter((found) => WEAK_ALGORITHM_CODES.has(found.code));
  const otherWarnings = verdict.reasons.filter((found) => found.severity === 'warning' && !WEAK_ALGORITHM_CODES.has(found.code));

  if (settings.fips && weakAlgorithms.length > 0) {
    return reject(
      `FIPS mode is on and the headend ${host} uses algorithms it does not allow: ${messages(weakAlgorithms)}. ` +
        'Ask the headend administrator for a certificate signed with SHA-256 or stronger and an RSA key of at least 2048 bits',
    );
  }

  if (settings.strictCertificateTrust) {
    if (verdict.status !== 'trusted') {
      return reject(
        `Strict Certificate Trust is on and the certificate of the headend ${host} is ${verdict.status}: ${problemReasons(verdict)}. ` +
          (verdict.status === 'untrusted'
            ? 'Add the CA that issued it with --cafile or to the certificate store, or turn off Strict Certificate Trust'
            : 'Ask the headend administrator to fix the certificate'),
      );
    }
    if (ocspProblems.length > 0) {
      return reject(
        `Strict Certificate Trust is on and the revocation status of the headend ${host} could not be verified: ` +
          `${messages(ocspProblems)}. Check that the OCSP responder is reachable, or turn off Strict Certificate Trust`,
      );
    }
    return accept([...weakAlgorithms, ...otherWarnings].map((found) => found.message));
  }

  if (verdict.status !== 'trusted') return askAboutChain(verdict, ocspProblems, settings);

  if (ocspProblems.length > 0) {
    if (settings.blockUntrustedServers) {
      return ask(['abort', 'change-setting'], verdict, ocspProblems, true,
        `the revocation status of the headend ${host} could not be verified (${messages(ocspProblems)}), and ` +
          'Block Untrusted Servers is on. Keep yourself safe and abort, or turn off Block Untrusted Servers to connect anyway');
    }
    return accept([
      `the revocation status of the headend ${host} could not be verified: ${messages(ocspProblems)}`,
      ...weakAlgorithms.map((found) => found.message),
      ...otherWarnings.map((found) => found.message),
    ]);
  }

  return accept([...weakAlgorithms, ...otherWarnings].map((found) => found.message));
}

function askAboutChain(verdict: ChainVerdict, ocspProblems: OcspResult[], settings: TrustSettings): TrustDecision {
  const host = verdict.host;
  const what =
    verdict.status === 'untrusted'
      ? `the headend ${host} presented a certificate that is valid but not trusted: ${problemReasons(verdict)}`
      : `the headend ${host} presented an invalid certificate: ${problemReasons(verdict)}`;
  const revocation = ocspProblems.length > 0 ? ` Its revocation status could not be verified either: ${messages(ocspProblems)}.` : '';

  if (settings.blockUntrustedServers) {
    return ask(['abort', 'change-setting'], verdict, ocspProblems, true,
      `${what}.${revocation} Block Untrusted Servers is on, so acvpn will not connect. Keep yourself safe and abort, ` +
        'or turn off Block Untrusted Servers if you must connect to this headend');
  }

  const allowed: TrustAnswer[] =
    verdict.status === 'untrusted' ? ['abort', 'continue', 'import-and-continue', 'view'] : ['abort', 'continue', 'view'];
  const advice =
    verdict.status === 'untrusted'
      ? 'Abort unless you can check the certificate fingerprint with the headend administrator; after checking, ' +
        'import it so that later connections are trusted'
      : 'Abort unless you know why the certificate is wrong; an invalid certificate cannot be imported';
  return ask(allowed, verdict, ocspProblems, false, `${what}.${revocation} ${advice}`);
}

function ask(allowed: TrustAnswer[], verdict: ChainVerdict, ocspProblems: OcspResult[], blocked: boolean, message: string): TrustDecision {
  return {
    action: 'ask',
    allowed,
    details: {
      title: PROMPT_TITLE,
      message,
      host: verdict.host,
      status: verdict.status,
      blocked,
      reasons: verdict.reasons,
      ocspProblems,
      leaf: verdict.leaf,
      chain: verdict.chain,
    },
  };
}

function accept(warnings: string[]): TrustDecision {
  return { action: 'accept', warnings };
}

function reject(message: string): TrustDecision {
  return { action: 'reject', code: 'SERVER_UNTRUSTED', message };
}

/** Turns a 'reject' decision into the error the CLI reports (exit code 5). */
export function rejectionError(decision: Extract<TrustDecision, { action: 'reject' }>, verdict: ChainVerdict): AcvpnError {
  return new AcvpnError(decision.code, decision.message, {
    host: verdict.host,
    status: verdict.status,
    reasons: verdict.reasons.map((found) => found.code),
    pin: verdict.leaf.publicKeyPin,
    fingerprintSha256: verdict.leaf.fingerprintSha256,
  });
}

function problemReasons(verdict: ChainVerdict): string {
  const problems = verdict.reasons.filter((found) => found.severity !== 'warning');
  return problems.length > 0 ? problems.map((found) => found.message).join('; ') : 'no reason recorded';
}

function messages(items: ReadonlyArray<{ message: string }>): string {
  return items.map((item) => item.message).join('; ');
}
