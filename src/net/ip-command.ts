// The one place that runs iproute2's `ip`. Everything in net/ that runs `ip` goes through an
// IpRunner, so planners and appliers are unit-tested with a fake and the real binary only runs here.
//
// Arguments always travel as an argv array to execFile, never through a shell. `ip -batch -`
// reads commands from stdin, one per line, splits each line on whitespace and cuts it at '#'.
// Callers that use it must therefore check every value they put on a line (assertInterfaceName).

import { execFile } from 'node:child_process';
import { AcvpnError } from '../core/errors.js';

export interface IpRunOptions {
  /** Text written to ip's stdin (for `-batch -`). */
  input?: string;
}

export interface IpResult {
  stdout: string;
}

/**
 * Runs `ip` with the given arguments. Raises AcvpnError 'ENV_IP_MISSING' when the binary cannot be
 * started and 'ENV_COMMAND_FAILED' (details: argv, exitCode, stderr) when it exits non-zero.
 */
export type IpRunner = (args: string[], options?: IpRunOptions) => Promise<IpResult>;

// `ip -json route show` prints about 100 to 150 bytes per route (iproute2 6.1), so a table of
// several hundred thousand routes fits in 64 MiB while still bounding memory.
const maxOutputBytes = 64 * 1024 * 1024;

// `ip` only exchanges netlink messages with the local kernel, so a run that lasts this long is
// stuck. 30 s is a guess with a wide margin: a batch of 100 route changes takes a few
// milliseconds.
const timeoutMs = 30_000;

/** Runs the `ip` found on PATH. */
export const runIp: IpRunner = (args, options = {}) => {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'ip',
      args,
      {
        maxBuffer: maxOutputBytes,
        timeout: timeoutMs,
        // ip's messages come from strerror(), which follows the locale. Callers match on them
        // ("No such process", "File exists"), so they must be in English.
        env: { ...process.env, LC_ALL: 'C' },
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ stdout });
          return;
        }
        reject(toIpError(args, error, stderr));
      },
    );
    // Without input, close stdin at once so that a command that reads it gets end of file.
    child.stdin?.on('error', () => {
      // ip exited before reading all input; the exit status reports what went wrong.
    });
    child.stdin?.end(options.input ?? '');
  });
};

function toIpError(
  args: string[],
  error: Error & { code?: unknown; killed?: boolean; signal?: NodeJS.Signals | null },
  stderr: string,
): AcvpnError {
  const argv = ['ip', ...args].join(' ');
  if (error.code === 'ENOENT' || error.code === 'EACCES') {
    return new AcvpnError(
      'ENV_IP_MISSING',
      `could not run "ip" (${String(error.code)}): install iproute2 or put its ip binary on PATH`,
      { argv },
      { cause: error },
    );
  }

  const output = stderr.trim();
  if (typeof error.code === 'string') {
    // Node's own failures, such as output beyond maxBuffer (ERR_CHILD_PROCESS_STDIO_MAXBUFFER).
    return new AcvpnError(
      'ENV_COMMAND_FAILED',
      `"${argv}" failed: ${error.message}`,
      { argv, stderr: output },
      { cause: error },
    );
  }
  if (error.signal) {
    const reason = error.killed === true ? `timed out after ${timeoutMs / 1000} s` : `was stopped by ${error.signal}`;
    return new AcvpnError(
      'ENV_COMMAND_FAILED',
      `"${argv}" ${reason}${output ? `: ${output}` : ''}`,
      { argv, signal: error.signal, stderr: output },
      { cause: error },
    );
  }

  const exitCode = typeof error.code === 'number' ? error.code : undefined;
  const hint = /Operation not permitted/.test(output) ? ' (changing routes and links needs root or CAP_NET_ADMIN)' : '';
  return new AcvpnError(
    'ENV_COMMAND_FAILED',
    `"${argv}" failed with exit status ${exitCode ?? 'unknown'}: ${output || 'no error output'}${hint}`,
    { argv, exitCode, stderr: output },
    { cause: error },
  );
}

/** Returns the stderr text that `ip` printed for a failed run, or '' when `error` is something else. */
export function ipStderr(error: unknown): string {
  if (!AcvpnError.is(error)) return '';
  const stderr = error.details.stderr;
  return typeof stderr === 'string' ? stderr : '';
}

// The kernel rejects names of 16 bytes or more, names with '/', ':' or whitespace, and "." and
// "..". Quotes and '#' are legal for the kernel but would break an `ip -batch` line, so they are
// rejected here too.
const interfaceNamePattern = /^[^\s/:'"#\\]{1,15}$/;

/** Raises 'CONFIG_INVALID' unless `name` is a Linux interface name that is safe on a batch line. */
export function assertInterfaceName(name: string): void {
  if (interfaceNamePattern.test(name) && name !== '.' && name !== '..' && Buffer.byteLength(name) <= 15) return;
  throw new AcvpnError(
    'CONFIG_INVALID',
    `invalid network interface name ${JSON.stringify(name)}: use 1 to 15 bytes without whitespace, '/', ':', quotes, '#' or '\\'`,
    { name },
  );
}
