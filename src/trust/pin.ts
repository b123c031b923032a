// Public-key pins in OpenConnect's --servercert form: "pin-sha256:" + base64 SHA-256 of the
// certificate's SubjectPublicKeyInfo.

import { createHash, X509Certificate } from 'node:crypto';
import { AcvpnError } from '../core/errors.js';

export function publicKeyPin(leafDer: Buffer): string {
  const spki = new X509Certificate(leafDer).publicKey.export({ type: 'spki', format: 'der' });
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
