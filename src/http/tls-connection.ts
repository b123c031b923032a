// The TLS connection to the headend: connect, check the server certificate before a single byte
// is written, then exchange HTTP/1.1 requests (auth dialogue) or hand the socket to CSTP.

import { connect as tlsConnect, rootCertificates, type TLSSocket } from 'node:tls';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { checkServerCertificate, type ServerTrustSettings, type TrustVerdict } from '../trust/server-check.js';
import { HttpResponseParser, type HttpResponse } from './response-parser.js';

export interface TlsTarget {
  /** Name from the URL: used for SNI, the Host header and the certificate name check. */
  host: string;
  /** Address to dial; the first connection resolves `host`, later ones reuse the address. */
  address?: string;
  port: number;
}

export interface TlsSettings extends ServerTrustSettings {
  /** PEM text of --cafile, added to the system CA store. */
  extraCaPem?: string;
  connectTimeoutMs: number;
}

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
    const ca = settings.extraCaPem === undefined ? undefined : [...rootCertificates, settings.extraCaPem];

    const socket = tlsConnect({
      host: target.address ?? target.host,
      port: target.port,
      servername: isIpLiteral(target.host) ? undefined : target.host,
      ca,
      // The trust decision is ours, made in the secureConnect handler below before anything is
      // written; OpenSSL's verification result is one input to it.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
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
        reject(describeConnectError(error, target));
      });

      socket.once('secureConnect', () => {
        clearTimeout(timer);
        try {
          const peer = socket.getPeerCertificate(true);
          if (peer === null || peer.raw === undefined) {
            throw new AcvpnError('SERVER_UNTRUSTED', `the headend ${target.host} presented no certificate`);
          }
          const chainError = socket.authorizationError === undefined ? undefined : String(socket.authorizationError);
          resolve(
            checkServerCertificate(target.host, { leafDer: peer.raw, chainVerified: socket.authorized, chainError }, settings),
          );
        } catch (error) {
          socket.destroy();
          reject(error);
        }
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

function describeConnectError(error: NodeJS.ErrnoException, target: TlsTarget): AcvpnError {
  const where = `${target.host}:${target.port}`;
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
