// The server-certificate check used until the full trust engine (Block Untrusted Servers, Strict
// Certificate Trust, OCSP) exists. A headend is accepted only when its chain verifies against the
// system CA store plus --cafile and its name matches, or when its public key matches a
// --servercert pin. Anything else is rejected, so nothing is ever trusted silently.
//
// The decision is pure: it takes what the TLS handshake produced and returns a verdict.

import { createHash, X509Certificate } from 'node:crypto';
import { AcvpnError } from '../core/errors.js';

export interface PeerCertificateFacts {
  /** DER of the leaf certificate. */
  leafDer: Buffer;
  /** Did OpenSSL verify the chain against the configured CAs? */
  chainVerified: boolean;
  /** OpenSSL's reason when the chain did not verify, e.g. SELF_SIGNED_CERT_IN_CHAIN. */
  chainError?: string;
}

export interface ServerTrustSettings {
  /** "pin-sha256:BASE64" values from --servercert. */
  pins: string[];
}

export type TrustVerdict = { trusted: true; reason: 'chain' | 'pin'; pin: string };

/** "pin-sha256:" + base64 SHA-256 of the certificate's SubjectPublicKeyInfo. */
export function publicKeyPin(leafDer: Buffer): string {
  const certificate = new X509Certificate(leafDer);
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return `pin-sha256:${createHash('sha256').update(spki).digest('base64')}`;
}

/** Validates a --servercert value; returns it normalised or throws USAGE. */
export function parsePin(text: string): string {
  const match = /^pin-sha256:([A-Za-z0-9+/]{43}=)$/.exec(text.trim());
  if (match === null) {
    throw new AcvpnError(
      'USAGE',
      `--servercert expects pin-sha256: followed by a base64 SHA-256 (44 characters), received ${JSON.stringify(text)}`,
    );
  }
  return `pin-sha256:${match[1]}`;
}

export function checkServerCertificate(
  host: string,
  facts: PeerCertificateFacts,
  settings: ServerTrustSettings,
): TrustVerdict {
  const pin = publicKeyPin(facts.leafDer);

  // An explicit pin is the user vouching for this exact key, so it wins over the chain (as with
  // OpenConnect's --servercert) and a pin that does not match is always a refusal.
  if (settings.pins.length > 0) {
    if (settings.pins.includes(pin)) return { trusted: true, reason: 'pin', pin };
    throw new AcvpnError(
      'SERVER_UNTRUSTED',
      `the headend ${host} presented a certificate whose key ${pin} matches no --servercert pin; ` +
        'if the headend changed its certificate on purpose, verify the new pin and pass it with --servercert',
      { host, pin, reason: 'pin mismatch' },
    );
  }

  if (!facts.chainVerified) {
    throw new AcvpnError(
      'SERVER_UNTRUSTED',
      `the headend ${host} presented a certificate that does not verify (${facts.chainError ?? 'unknown reason'}); ` +
        `pass --cafile with the CA that issued it, or --servercert ${pin} after checking that pin out of band`,
      { host, pin, reason: facts.chainError ?? 'unverified' },
    );
  }

  const certificate = new X509Certificate(facts.leafDer);
  const nameMatches = isIpLiteral(host) ? certificate.checkIP(host) !== undefined : certificate.checkHost(host) !== undefined;
  if (!nameMatches) {
    throw new AcvpnError(
      'SERVER_UNTRUSTED',
      `the headend's certificate is not valid for the name ${host} (subject ${certificate.subject.replace(/\n/g, ', ')}); ` +
        'connect with the name the certificate was issued for',
      { host, pin, reason: 'name mismatch' },
    );
  }

  return { trusted: true, reason: 'chain', pin };
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
