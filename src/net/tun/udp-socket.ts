// A connected UDP socket owned by the addon, for the DTLS data path. It reuses the TUN reader:
// a connected UDP socket, like a TUN fd, carries exactly one packet per read(2) and write(2).
//
//   kernel ──► addon (uv_poll, up to maxBatch read()s into one reused buffer) ──► onDatagrams
//   writeBatch(buffer, offsets, lengths) ──► addon (one sendmmsg(2)) ──► kernel
//
// node:dgram costs a JS callback, a Buffer and a libuv request per datagram in each direction,
// which the DTLS channel paid at every packet.

import { AcvpnError } from '../../core/errors.js';
import { loadTunAddon, type NativeAead, type TunAddon, type TunHandle, type TunSystemError } from './tun-addon.js';

export interface UdpSocketOptions {
  /** IPv4 or IPv6 address literal of the peer. */
  host: string;
  port: number;
  /** Longest datagram the reader accepts; longer ones are dropped and counted (68 to 65535). */
  maxDatagramBytes: number;
  /** Most datagrams read per readability event (1 to 1024). */
  maxBatch: number;
  /** SO_RCVBUF and SO_SNDBUF in bytes; the kernel caps them at net.core.rmem_max and wmem_max. */
  socketBufferBytes: number;
}

/**
 * Opens the socket and connects it. Throws an AcvpnError NETWORK_UNREACHABLE when socket(2) or
 * connect(2) fails, INTERNAL when the addon is missing.
 */
export function openUdpSocket(options: UdpSocketOptions, addon: TunAddon = loadTunAddon()): TunHandle {
  try {
    return addon.openUdp(options.host, options.port, options.maxDatagramBytes, options.maxBatch, options.socketBufferBytes);
  } catch (error) {
    const system = error as Partial<TunSystemError>;
    const reason = typeof system.code === 'string' ? `${system.syscall ?? 'socket'} failed with ${system.code}` : String(error);
    throw new AcvpnError('NETWORK_UNREACHABLE', `opening a UDP socket to ${options.host}:${options.port} failed (${reason}); DTLS stays off and data uses CSTP`, { host: options.host, port: options.port }, { cause: error });
  }
}

/** Creates an addon AEAD context; the key is copied into OpenSSL and may be wiped after the call. */
export function createNativeAead(cipher: string, key: Uint8Array, encrypt: boolean, addon: TunAddon = loadTunAddon()): NativeAead {
  return new addon.Aead(cipher, key, encrypt);
}
