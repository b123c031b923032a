// Inputs of the AnyConnect PSK-NEGOTIATE DTLS handshake that come from the CSTP session: the
// PSK, exported from the CSTP TLS session, and the ClientHello session_id, from X-DTLS-App-ID.

import type { TLSSocket } from 'node:tls';

import { AcvpnError } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';

export const PSK_EXPORTER_LABEL = 'EXPORTER-openconnect-psk';
export const PSK_LENGTH = 32;
const MAX_SESSION_ID_LENGTH = 32;

type ExportKeyingMaterial = (length: number, label: string, context?: Buffer) => Buffer;

/**
 * Exports the DTLS PSK from the CSTP TLS session (RFC 5705) with no context. An empty context is
 * not the same: under TLS 1.2 it changes the output, and the DTLS handshake then fails at the
 * Finished check. Node 20 passes no context to OpenSSL when the argument is undefined, but its
 * typings require one, hence the cast. Derive it again for every DTLS handshake: the value
 * changes after a CSTP reconnect or renegotiation.
 */
export function derivePsk(socket: Pick<TLSSocket, 'exportKeyingMaterial'>): Buffer {
  const exportKeyingMaterial = socket.exportKeyingMaterial as unknown as ExportKeyingMaterial;
  let psk: Buffer;
  try {
    psk = exportKeyingMaterial.call(socket, PSK_LENGTH, PSK_EXPORTER_LABEL, undefined);
  } catch (error) {
    throw new AcvpnError(
      'TLS_FAILED',
      `exporting the DTLS PSK from the CSTP TLS session failed (${error instanceof Error ? error.message : String(error)}); ` +
        'the TLS session must be established before DTLS starts',
      {},
      { cause: error },
    );
  }
  registerSecret(psk);
  return psk;
}

/** Decodes the hex X-DTLS-App-ID header into the ClientHello session_id (1 to 32 bytes). */
export function appIdToSessionId(appIdHex: string): Buffer {
  const text = appIdHex.trim();
  const valid = /^(?:[0-9a-fA-F]{2})+$/.test(text) && text.length / 2 <= MAX_SESSION_ID_LENGTH;
  if (!valid) {
    throw new AcvpnError(
      'CSTP_HEADER_INVALID',
      `X-DTLS-App-ID from the headend must be 2 to ${2 * MAX_SESSION_ID_LENGTH} hex digits (an even count), ` +
        `got ${text.length} characters; DTLS cannot start, so the session stays on CSTP`,
      { header: 'X-DTLS-App-ID', length: text.length },
    );
  }
  return Buffer.from(text, 'hex');
}
