// Interface name checks, the AcvpnError for each failure of the TUN device, and the set of
// write errors that drop only one packet. The errno values were observed on Linux 6.18 by
// running the addon in a network namespace (test/integration/tun.test.ts), except where noted.

import { constants } from 'node:os';
import { AcvpnError, type ErrorCode } from '../../core/errors.js';

const errno = constants.errno;

// Linux limits interface names to IFNAMSIZ (16) bytes including the terminating NUL.
export const maxInterfaceNameLength = 15;

/**
 * Checks an interface name against the rules the kernel applies, so that a bad name fails with
 * its reason instead of a bare EINVAL. An empty name is valid: the kernel then picks "tunN".
 */
export function validateInterfaceName(name: string): void {
  if (name === '') return;
  const quoted = JSON.stringify(name);

  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > maxInterfaceNameLength) {
    throw invalidName(
      name,
      `interface name ${quoted} is ${bytes} bytes long, but Linux allows at most ${maxInterfaceNameLength}: choose a shorter name`,
    );
  }
  if (name === '.' || name === '..') {
    throw invalidName(name, `interface name ${quoted} is reserved: choose another name`);
  }
  // Whitespace as the kernel's isspace() has it in ASCII: space, \t, \n, \v, \f and \r.
  const forbidden = /[/: \t\n\v\f\r\0]/.exec(name);
  if (forbidden !== null) {
    throw invalidName(
      name,
      `interface name ${quoted} contains ${JSON.stringify(forbidden[0])}: Linux rejects "/", ":", whitespace and NUL in interface names`,
    );
  }
  // The kernel's isspace() also matches byte 0xA0, which occurs inside UTF-8 characters such
  // as "à" (C3 A0), so the kernel rejects those names too.
  if (Buffer.from(name, 'utf8').includes(0xa0)) {
    throw invalidName(
      name,
      `interface name ${quoted} contains a character whose UTF-8 form includes byte 0xA0, which Linux rejects as whitespace: choose an ASCII name`,
    );
  }
  const percent = name.indexOf('%');
  if (percent !== -1 && (name[percent + 1] !== 'd' || name.includes('%', percent + 1))) {
    throw invalidName(
      name,
      `interface name ${quoted} may contain "%" only once, as "%d" (the kernel replaces it with the first free number)`,
    );
  }
}

function invalidName(name: string, message: string): AcvpnError {
  return new AcvpnError('CONFIG_INVALID', message, { interface: name });
}

/** Facts the addon attaches to a failed system call (see TunSystemError). */
interface SystemErrorFacts {
  code?: unknown;
  syscall?: unknown;
  message?: unknown;
}

function factsOf(error: unknown): { code: string; syscall: string; message: string } {
  const facts = (typeof error === 'object' && error !== null ? error : {}) as SystemErrorFacts;
  return {
    code: typeof facts.code === 'string' ? facts.code : '',
    syscall: typeof facts.syscall === 'string' ? facts.syscall : '',
    message: typeof facts.message === 'string' ? facts.message : String(error),
  };
}

/** Maps a failure of open(/dev/net/tun) or of the TUNSETIFF ioctl to an AcvpnError. */
export function openError(error: unknown, requestedName: string): AcvpnError {
  const { code, syscall, message } = factsOf(error);
  const interfaceLabel = requestedName === '' ? 'a TUN interface' : `TUN interface ${requestedName}`;
  const details = { interface: requestedName, errno: code, syscall };
  const make = (errorCode: ErrorCode, text: string): AcvpnError =>
    new AcvpnError(errorCode, text, details, { cause: error });

  if (syscall === 'open') {
    switch (code) {
      case 'ENOENT':
        return make(
          'ENV_NO_TUN',
          '/dev/net/tun does not exist (ENOENT): load the tun kernel module with "modprobe tun", ' +
            'or in a container pass the device in (docker run --device /dev/net/tun --cap-add NET_ADMIN)',
        );
      case 'ENODEV':
      case 'ENXIO':
        return make(
          'ENV_NO_TUN',
          `/dev/net/tun exists but the tun driver is not loaded (${code}): load the tun kernel module with "modprobe tun"`,
        );
      case 'EACCES':
      case 'EPERM':
        return make(
          'ENV_NOT_ROOT',
          `cannot open /dev/net/tun (${code}): run acvpn as root or with the CAP_NET_ADMIN capability`,
        );
      default:
        return make('INTERNAL', `opening /dev/net/tun failed: ${message}`);
    }
  }

  switch (code) {
    case 'EPERM':
    case 'EACCES':
      return make(
        'ENV_NOT_ROOT',
        `creating ${interfaceLabel} was not permitted (${code}): run acvpn as root or with the CAP_NET_ADMIN capability ` +
          '(the kernel also rejects a process that is not the owner of a persistent TUN interface)',
      );
    case 'EBUSY':
      return make(
        'ENV_COMMAND_FAILED',
        `${interfaceLabel} is already in use by another process (EBUSY): stop the program that has it open ` +
          '(another VPN client?) or choose another interface name',
      );
    case 'EINVAL':
      return make(
        'ENV_COMMAND_FAILED',
        `the kernel rejected ${interfaceLabel} (EINVAL): an interface of that name exists and is not a TUN device, ` +
          'or the name contains a character Linux does not accept: choose another interface name',
      );
    default:
      return make('INTERNAL', `creating ${interfaceLabel} failed: ${message}`);
  }
}

/**
 * Maps a failure that stopped reading, or a write error that is not a dropped packet, to an
 * AcvpnError.
 */
export function deviceError(error: unknown, name: string): AcvpnError {
  const { code, syscall, message } = factsOf(error);
  const details = { interface: name, errno: code, syscall };
  // The kernel detaches the fd when the interface is deleted, and every later call on it
  // fails with EBADFD.
  if (code === 'EBADFD') {
    return new AcvpnError(
      'ENV_COMMAND_FAILED',
      `TUN interface ${name} was deleted while in use (EBADFD), by "ip link delete" or with its network ` +
        'namespace: reconnect to create it again',
      details,
      { cause: error },
    );
  }
  return new AcvpnError('INTERNAL', `TUN interface ${name} failed: ${message}`, details, { cause: error });
}

// Write errors that lose only the packet being written, while the device stays usable.
//   EAGAIN/EWOULDBLOCK, ENOBUFS, ENOMEM: the kernel has no room for the packet right now
//   (from write(2) semantics, not observed).
//   EINVAL: the packet is empty or is neither IPv4 nor IPv6 (version nibble not 4 or 6).
//   EIO: the interface is administratively down.
const droppedPacketErrnos = new Set<number>([
  errno.EAGAIN,
  errno.EWOULDBLOCK,
  errno.ENOBUFS,
  errno.ENOMEM,
  errno.EINVAL,
  errno.EIO,
]);

/** True when a write failing with this (positive) errno dropped only that packet. */
export function isDroppedPacketErrno(value: number): boolean {
  return droppedPacketErrnos.has(value);
}

/** Builds the error for a write that failed with a (positive) errno that is not a dropped packet. */
export function writeError(value: number, name: string): AcvpnError {
  const code = errnoName(value);
  return deviceError({ code, syscall: 'write', message: `write failed with ${code}` }, name);
}

// Node lists aliases (EAGAIN and EWOULDBLOCK are both 11): the first name listed wins.
const errnoNames = new Map<number, string>();
for (const [key, number] of Object.entries(errno)) {
  if (!errnoNames.has(number)) errnoNames.set(number, key);
}

export function errnoName(value: number): string {
  // Node's table lacks EBADFD (77 on Linux), the errno of a deleted interface.
  if (value === 77 && process.platform === 'linux') return 'EBADFD';
  return errnoNames.get(value) ?? `errno ${value}`;
}
