// The native TUN addon (native/src/*): its JS surface as TypeScript types, and its loader.
//
// The addon only makes system calls. The policy (which errno drops a packet, which ends the
// device, which message the user gets) lives in tun-errors.ts and tun-device.ts.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { AcvpnError } from '../../core/errors.js';

/** The native handle of one open TUN interface. */
export interface TunHandle {
  /** The file descriptor, or -1 once closed. */
  readonly fd: number;
  /** The interface name, as the kernel set it. */
  readonly name: string;
  /** Packets read but dropped because they were longer than maxPacketSize. */
  readonly droppedOversize: number;
  /**
   * Starts reading. On each readability event the addon reads up to maxBatch packets and calls
   * onPackets once. After a read or poll failure it stops reading and calls onError once.
   */
  start(
    onPackets: (buffer: Buffer, lengths: Uint32Array, count: number) => void,
    onError: (error: TunSystemError) => void,
  ): void;
  pause(): void;
  resume(): void;
  /** Returns the number of bytes written, or the negated errno (-11 for EAGAIN). */
  write(buffer: Uint8Array, offset: number, length: number): number;
  /**
   * Writes packet i = buffer[offsets[i], offsets[i] + lengths[i]) for i < count, in order, and
   * returns how many were written. It stops at the first failed packet: the return value is then
   * that packet's index and status[0] its errno. A socket gets one sendmmsg(2) per batch.
   */
  writeBatch(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, status: Int32Array): number;
  /** Stops reading and closes the fd, which deletes the interface. Safe to call again. */
  close(): void;
}

/** A failed system call, shaped like Node's own system errors. */
export interface TunSystemError extends Error {
  /** "EBUSY" */
  code: string;
  /** Negative errno, as in Node: -16 */
  errno: number;
  /** "open", "ioctl", "read", "poll", "socket" or "connect" */
  syscall: string;
  /** The interface name requested or in use; empty when the kernel was to pick it. */
  interfaceName: string;
}

export interface TunAddon {
  /**
   * Opens /dev/net/tun and attaches the interface `name` (created if missing) with
   * IFF_TUN | IFF_NO_PI, non-blocking and close-on-exec. Throws a TunSystemError when a system
   * call fails, and a RangeError for a name over 15 bytes or limits out of range.
   */
  open(name: string, maxPacketSize: number, maxBatch: number): TunHandle;
  /** Maximum interface name length in bytes: IFNAMSIZ (16) minus the NUL byte. */
  readonly maxNameLength: number;
  /**
   * Creates a non-blocking UDP socket connected to `address` (an IPv4 or IPv6 literal) and
   * `port`, with SO_RCVBUF and SO_SNDBUF set to `socketBufferBytes` when it is positive. The
   * handle reads datagrams in batches and writes them like TUN packets. Throws a TunSystemError
   * (syscall "socket" or "connect") or a RangeError for a bad address or port.
   */
  openUdp(address: string, port: number, maxPacketSize: number, maxBatch: number, socketBufferBytes: number): TunHandle;
  /**
   * An AEAD cipher context for one key and direction (aes-128-gcm, aes-256-gcm or
   * chacha20-poly1305, 12-byte nonce, 16-byte tag), kept for the life of the key.
   */
  readonly Aead: new (cipher: string, key: Uint8Array, encrypt: boolean) => NativeAead;
}

/** The addon's AEAD context; the record layout around it stays in src/dtls/record.ts. */
export interface NativeAead {
  /** Encrypts buffer[offset, offset + length) in place and writes the 16-byte tag right behind it. */
  seal(buffer: Uint8Array, offset: number, length: number, nonce: Uint8Array, aad: Uint8Array): void;
  /** Decrypts buffer[offset, offset + length) in place; false when the tag behind it does not match. */
  open(buffer: Uint8Array, offset: number, length: number, nonce: Uint8Array, aad: Uint8Array): boolean;
}

// The module compiles from src/net/tun/ to dist/net/tun/, and both sit three levels below the
// package root, so one relative path serves vitest (which runs the sources) and the build.
export const defaultAddonPath = fileURLToPath(new URL('../../../native/build/Release/acvpn_tun.node', import.meta.url));

const requireAddon = createRequire(import.meta.url);

/** Loads the addon; Node caches it, so later calls are cheap. */
export function loadTunAddon(path: string = defaultAddonPath): TunAddon {
  try {
    return requireAddon(path) as TunAddon;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND') {
      throw new AcvpnError(
        'INTERNAL',
        `TUN addon not found at ${path}: build it with "npm run build:native"`,
        { path },
        { cause: error },
      );
    }
    const message = error instanceof Error ? error.message : String(error);
    throw new AcvpnError(
      'INTERNAL',
      `could not load the TUN addon at ${path} (${message}): rebuild it for this Node version with "npm run build:native"`,
      { path },
      { cause: error },
    );
  }
}
