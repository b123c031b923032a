// The TLS connection to the headend: connect, check the server certificate before a single byte
// is written, then exchange HTTP/1.1 requests (auth dialogue) or hand the socket to CSTP.

import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { HttpResponseParser, type HttpResponse } from './response-parser.js';

export interface TlsTarget {
  /** Name from the URL: used for SNI, the Host header and the certificate name check. */
  host: string;
  /** Address to dial; the first connection resolves `host`, later ones reuse the address. */
  address?: string;
  port: number;
}

/** The trust decision's result for one connection. */
export interface TrustVerdict {
  reason: string;
  pin: string;
}

export interface TlsSettings {
  /**
   * Decides whether the headend may be talked to, from the certificate chain it sent (DER, leaf
   * first). Called after the handshake and before anything is written; throws to refuse.
   */
  verifyServer(host: string, chainDer: Buffer[]): Promise<TrustVerdict>;
  /** FIPS mode: TLS 1.2 or later with ECDHE and AES-GCM only, on P-256 or P-384. */
  fips: boolean;
  /**
   * Client certificate (PEM, chain after the leaf) and key, presented on every connection: ocserv
   * without cisco-client-compat answers 503 to a CONNECT or reconnect without it.
   */
  clientCertificate?: { cert: string; key: string };
  connectTimeoutMs: number;
}

// TLS 1.3 suite names go into `ciphers` too: Node has no separate option for them.
const fipsCiphers = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

export class TlsConnection {
  private closedByPeer = false;

  private constructor(
    readonly socket: TLSSocket,
    readonly verdict: TrustVerdict,
  ) {
    socket.once('end', () => {
      this.closedByPeer = true;
    });
  }

  /** The numeric address of the headend this connection reached. */
  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }

  get isOpen(): boolean {
    return !this.closedByPeer && !this.socket.destroyed;
  }

  static async open(target: TlsTarget, settings: TlsSettings, log: Logger): Promise<TlsConnection> {
    const socket = tlsConnect({
      host: target.address ?? target.host,
      port: target.port,
      servername: isIpLiteral(target.host) ? undefined : target.host,
      // The trust decision is ours, made in the secureConnect handler below before anything is
      // written: chain classification, OCSP and the trust policy.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ...(settings.fips ? { ciphers: fipsCiphers, ecdhCurve: 'P-256:P-384' } : {}),
      ...(settings.clientCertificate ?? {}),
    });

    const verdict = await new Promise<TrustVerdict>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new AcvpnError(
            'NETWORK_UNREACHABLE',
            `no TLS connection to ${target.host}:${target.port} within ${settings.connectTimeoutMs} ms; check the address and that the headend is running`,
          ),
        );
      }, settings.connectTimeoutMs);

      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(describeConnectError(error, target, settings.fips, settings.clientCertificate !== undefined));
      });

      socket.once('secureConnect', () => {
        clearTimeout(timer);
        settings
          .verifyServer(target.host, peerChainDer(socket))
          .then(resolve, (error: unknown) => {
            socket.destroy();
            reject(error);
          });
      });
    });

    log.debug(
      { host: target.host, address: socket.remoteAddress, protocol: socket.getProtocol(), cipher: socket.getCipher().name, trust: verdict.reason },
      'TLS connection established',
    );
    return new TlsConnection(socket, verdict);
  }

  /**
   * Writes one request and reads one response. With `headersOnly`, stops at the end of the
   * header block and returns whatever followed (the CONNECT reply is followed by CSTP frames).
   */
  async exchange(request: string, options: { headersOnly?: boolean; timeoutMs: number }): Promise<{ response: HttpResponse; rest: Buffer }> {
    const parser = new HttpResponseParser({ headersOnly: options.headersOnly });
    const socket = this.socket;

    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.off('error', onError);
        socket.off('close', onEnd);
      };
      const fail = (error: unknown): void => {
        cleanup();
        reject(error);
      };
      const onData = (chunk: Buffer): void => {
        try {
          const done = parser.push(chunk);
          if (done === undefined) return;
          cleanup();
          // Only CSTP frames may follow the reply. Pausing the stream leaves every such byte
          // for the next owner of the socket.
          socket.pause();
          resolve(done);
        } catch (error) {
          socket.destroy();
          fail(error);
        }
      };
      const onEnd = (): void => {
        try {
          const response = parser.end();
          cleanup();
          resolve({ response, rest: Buffer.alloc(0) });
        } catch (error) {
          fail(error);
        }
      };
      const onError = (error: Error): void => {
        fail(new AcvpnError('TLS_FAILED', `the TLS connection to the headend failed: ${error.message}`, {}, { cause: error }));
      };
      const timer = setTimeout(() => {
        socket.destroy();
        fail(new AcvpnError('NETWORK_UNREACHABLE', `the headend did not reply within ${options.timeoutMs} ms`));
      }, options.timeoutMs);

      socket.on('data', onData);
      socket.once('end', onEnd);
      socket.once('close', onEnd);
      socket.once('error', onError);
      socket.resume();
      socket.write(request);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The certificates the headend sent, DER, leaf first (Node links them through issuerCertificate). */
function peerChainDer(socket: TLSSocket): Buffer[] {
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  let certificate = socket.getPeerCertificate(true);
  while (certificate?.raw !== undefined && !seen.has(certificate.fingerprint256)) {
    seen.add(certificate.fingerprint256);
    chain.push(certificate.raw);
    certificate = certificate.issuerCertificate;
  }
  return chain;
}

function describeConnectError(error: NodeJS.ErrnoException, target: TlsTarget, fips: boolean, withClientCertificate: boolean): AcvpnError {
  const where = `${target.host}:${target.port}`;
  if (withClientCertificate && (error.code === 'ECONNRESET' || /certificate|alert/i.test(error.message))) {
    return new AcvpnError(
      'TLS_FAILED',
      `the headend ${where} ended the TLS handshake (${error.message}); it may have rejected the client certificate: check that its CA is the one the headend trusts`,
      { code: error.code },
    );
  }
  if (fips && /handshake failure|no shared cipher|no suitable|wrong curve|unsupported/i.test(error.message)) {
    return new AcvpnError(
      'TLS_FAILED',
      `the headend ${where} does not offer a TLS setup allowed in FIPS mode (TLS 1.2 or later, ECDHE with AES-GCM, P-256 or P-384): ${error.message}`,
      { code: error.code },
    );
  }
  switch (error.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new AcvpnError('NETWORK_UNREACHABLE', `cannot resolve the headend name ${target.host}; check the URL and DNS`, { code: error.code });
    case 'ECONNREFUSED':
      return new AcvpnError('NETWORK_UNREACHABLE', `the headend ${where} refused the connection; check the port and that the headend is running`, { code: error.code });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return new AcvpnError('NETWORK_UNREACHABLE', `the headend ${where} is unreachable (${error.code}); check the network path`, { code: error.code });
    default:
      return new AcvpnError('TLS_FAILED', `the TLS connection to ${where} failed: ${error.message}`, { code: error.code }, { cause: error });
  }
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
