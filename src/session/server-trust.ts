// The server trust decision for one TLS connection, made after the handshake and before any byte
// is written: pins, chain classification, OCSP, then the policy (Block Untrusted Servers, Strict
// Certificate Trust). A policy that asks the user becomes a decision request; no answer means abort.

import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { classifyServerChain, type ChainVerdict } from '../trust/chain.js';
import { checkOcsp, httpOcspTransport, OCSP_TIMEOUT_MS_PER_CERT, type OcspResult } from '../trust/ocsp.js';
import { decideTrust, rejectionError, type TrustAnswer, type TrustPromptDetails, type TrustSettings } from '../trust/policy.js';
import type { CertificateStore } from '../trust/store.js';
import { publicKeyPin } from '../trust/pin.js';

export type OcspTransport = (url: string, requestDer: Buffer, signal: AbortSignal) => Promise<Buffer>;

export interface ServerTrustOptions {
  settings: TrustSettings;
  /** "pin-sha256:…" values from --servercert; ignored under Strict Certificate Trust. */
  pins: string[];
  /** PEM text of --cafile. */
  extraCaPem?: string;
  store: CertificateStore;
  /** Returns the user's answer to a decision request; 'abort' when no answer arrives in time. */
  answer(details: TrustPromptDetails, allowed: TrustAnswer[]): Promise<TrustAnswer>;
  ocspTransport?: OcspTransport;
  log: Logger;
}

export interface TrustOutcome {
  reason: 'pin' | 'trusted' | 'imported' | 'continued';
  pin: string;
}

/** Decides whether the headend that sent `chainDer` (leaf first) may be talked to. */
export async function decideServerTrust(host: string, chainDer: Buffer[], options: ServerTrustOptions): Promise<TrustOutcome> {
  const { settings, log } = options;
  const leafDer = chainDer[0];
  if (leafDer === undefined) throw new AcvpnError('SERVER_UNTRUSTED', `the headend ${host} presented no certificate`);
  const pin = publicKeyPin(leafDer);

  // An explicit pin is the user vouching for this exact key, as with OpenConnect's --servercert,
  // except under Strict Certificate Trust, which accepts only what verifies.
  if (options.pins.length > 0 && !settings.strictCertificateTrust) {
    if (options.pins.includes(pin)) return { reason: 'pin', pin };
    throw new AcvpnError(
      'SERVER_UNTRUSTED',
      `the headend ${host} presented a certificate whose key ${pin} matches no --servercert pin; ` +
        'if the headend changed its certificate on purpose, verify the new pin and pass it with --servercert',
      { host, pin, reason: 'pin mismatch' },
    );
  }

  const verdict = await classifyServerChain({
    chainDer,
    host,
    trustedRootsDer: [...systemRootsDer(), ...pemToDerList(options.extraCaPem ?? '')],
    importedServerCertsDer: await options.store.loadDer(),
    now: new Date(),
  });
  const ocspResults = settings.ocsp && verdict.status !== 'invalid' ? await runOcsp(verdict, options) : [];
  log.debug({ host, status: verdict.status, reasons: verdict.reasons.map((reason) => reason.code) }, 'server certificate classified');

  const decision = decideTrust(verdict, ocspResults, settings);
  if (decision.action === 'accept') {
    for (const warning of decision.warnings) log.warn({ host }, warning);
    return { reason: verdict.trustedBy === 'imported-certificate' ? 'imported' : 'trusted', pin };
  }
  if (decision.action === 'reject') throw rejectionError(decision, verdict);

  const answer = await options.answer(decision.details, decision.allowed);
  log.info({ host, answer, allowed: decision.allowed }, 'server trust decision answered');
  if (!decision.allowed.includes(answer) || answer === 'abort' || answer === 'view') {
    throw untrustedError(decision.details, verdict, answer);
  }
  if (answer === 'change-setting') {
    throw new AcvpnError(
      'SERVER_UNTRUSTED',
      `${decision.details.message} To connect anyway, turn off Block Untrusted Servers (--no-block-untrusted) and connect again.`,
      { host, pin, status: verdict.status },
    );
  }
  if (answer === 'import-and-continue') {
    const stored = await options.store.importCertificate(leafDer, `the certificate of ${host}`);
    log.info({ host, id: stored.id }, 'imported the server certificate; it will be accepted without a question next time');
    return { reason: 'imported', pin };
  }
  return { reason: 'continued', pin };
}

async function runOcsp(verdict: ChainVerdict, options: ServerTrustOptions): Promise<OcspResult[]> {
  const results = await checkOcsp(verdict.chain, options.ocspTransport ?? httpOcspTransport, {
    timeoutMsPerCert: OCSP_TIMEOUT_MS_PER_CERT,
    now: new Date(),
  });
  for (const result of results) {
    if (result.status !== 'good' && result.status !== 'not-checked') {
      options.log.info({ status: result.status, problem: result.problem }, 'OCSP check did not confirm a certificate');
    }
  }
  return results;
}

function untrustedError(details: TrustPromptDetails, verdict: ChainVerdict, answer: TrustAnswer): AcvpnError {
  const allowedText = answer === 'abort' ? '' : ` (the answer ${JSON.stringify(answer)} is not allowed here)`;
  // The policy's message speaks of settings; a command-line user also needs the flags.
  let flags =
    verdict.status === 'untrusted'
      ? ` To trust this headend, pass --cafile with the CA that issued its certificate, or --servercert ${verdict.leaf.publicKeyPin} after checking that pin out of band.`
      : '';
  if (details.blocked) flags += ' Block Untrusted Servers is turned off with --no-block-untrusted.';
  else if (answer === 'abort') flags += ' Without a terminal, answer with --trust-answer (continue, or import-and-continue where allowed).';
  return new AcvpnError('SERVER_UNTRUSTED', `${details.title}: ${details.message}${allowedText}.${flags}`.replace('..', '.'), {
    host: verdict.host,
    status: verdict.status,
    reasons: verdict.reasons.map((reason) => reason.code),
    pin: verdict.leaf.publicKeyPin,
    fingerprintSha256: verdict.leaf.fingerprintSha256,
  });
}

let systemRoots: Buffer[] | undefined;

function systemRootsDer(): Buffer[] {
  systemRoots ??= rootCertificates.flatMap((pem) => pemToDerList(pem));
  return systemRoots;
}

/** Converts every certificate of a PEM bundle to DER, skipping blocks that do not parse. */
export function pemToDerList(pem: string): Buffer[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.flatMap((block) => {
    try {
      return [new X509Certificate(block).raw];
    } catch {
      return [];
    }
  });
}
