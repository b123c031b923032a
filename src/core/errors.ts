// Typed errors with stable codes and the process exit code each one maps to.
//
// Every failure that reaches a user carries a `code` (stable, for scripts), a message that says
// what was received and what to do, and an exit code from the one table below. Protocol modules
// throw these; the CLI turns them into one log line and an exit status.

/** Process exit codes, shared by every command and documented in the README. */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  authRejected: 3,
  groupNotFound: 4,
  untrustedServer: 5,
  network: 6,
  environment: 7,
  endedByHeadend: 8,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Stable error codes. Scripts match on these, so never rename one. */
export type ErrorCode =
  // bad arguments or configuration
  | 'USAGE'
  | 'CONFIG_INVALID'
  // authentication
  | 'AUTH_REJECTED'
  | 'AUTH_ANSWER_MISSING'
  | 'AUTH_GROUP_NOT_FOUND'
  | 'AUTH_XML_INVALID'
  | 'AUTH_UNEXPECTED_REPLY'
  // trust
  | 'SERVER_UNTRUSTED'
  // network and protocol
  | 'NETWORK_UNREACHABLE'
  | 'TLS_FAILED'
  | 'HTTP_MALFORMED'
  | 'HTTP_STATUS'
  | 'CONNECT_REFUSED'
  | 'CSTP_HEADER_INVALID'
  | 'CSTP_CONFIG_MISSING'
  | 'CSTP_FRAME_INVALID'
  | 'CSTP_PEER_DEAD'
  // host environment
  | 'ENV_NOT_ROOT'
  | 'ENV_NO_TUN'
  | 'ENV_IP_MISSING'
  | 'ENV_COMMAND_FAILED'
  // session end decided by the headend
  | 'SESSION_TERMINATED'
  | 'COOKIE_REJECTED'
  | 'INTERNAL';

const exitCodeByError: Record<ErrorCode, ExitCodeValue> = {
  USAGE: ExitCode.usage,
  CONFIG_INVALID: ExitCode.usage,
  AUTH_REJECTED: ExitCode.authRejected,
  AUTH_ANSWER_MISSING: ExitCode.authRejected,
  AUTH_GROUP_NOT_FOUND: ExitCode.groupNotFound,
  AUTH_XML_INVALID: ExitCode.network,
  AUTH_UNEXPECTED_REPLY: ExitCode.network,
  SERVER_UNTRUSTED: ExitCode.untrustedServer,
  NETWORK_UNREACHABLE: ExitCode.network,
  TLS_FAILED: ExitCode.network,
  HTTP_MALFORMED: ExitCode.network,
  HTTP_STATUS: ExitCode.network,
  CONNECT_REFUSED: ExitCode.network,
  CSTP_HEADER_INVALID: ExitCode.network,
  CSTP_CONFIG_MISSING: ExitCode.network,
  CSTP_FRAME_INVALID: ExitCode.network,
  CSTP_PEER_DEAD: ExitCode.network,
  ENV_NOT_ROOT: ExitCode.environment,
  ENV_NO_TUN: ExitCode.environment,
  ENV_IP_MISSING: ExitCode.environment,
  ENV_COMMAND_FAILED: ExitCode.environment,
  SESSION_TERMINATED: ExitCode.endedByHeadend,
  COOKIE_REJECTED: ExitCode.endedByHeadend,
  INTERNAL: ExitCode.internal,
};

const brand = Symbol.for('acvpn.error');

/** Base class of every error acvpn reports to a user. */
export class AcvpnError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (never secrets: they are logged and emitted as events). */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AcvpnError';
    this.code = code;
    this.details = details;
    Object.defineProperty(this, brand, { value: true });
  }

  get exitCode(): ExitCodeValue {
    return exitCodeByError[this.code];
  }

  /** True for any AcvpnError, also across two loaded copies of this module. */
  static is(value: unknown): value is AcvpnError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }
}

export function exitCodeFor(code: ErrorCode): ExitCodeValue {
  return exitCodeByError[code];
}

/** Wraps anything thrown into an AcvpnError, keeping the original as `cause`. */
export function toAcvpnError(error: unknown): AcvpnError {
  if (AcvpnError.is(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new AcvpnError('INTERNAL', `internal error: ${message}`, {}, { cause: error });
}
