// Runs a vpnc-script-compatible program the way OpenConnect does: `/bin/sh -c SCRIPT` with the
// script's variables in the environment, so `--script 'vpn-slice 10.0.0.0/8'` works too.
//
// The script gets only those variables plus a fixed PATH, not acvpn's own environment: that
// environment may hold ACVPN_PASSWORD, and nothing a script needs comes from it.

import { spawn } from 'node:child_process';
import { AcvpnError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';

export interface RunScriptOptions {
  /** The script is killed (its whole process group) when it runs longer than this. */
  timeoutMs: number;
  log: Logger;
}

/** PATH for the script: root's PATH on Debian (ENV_SUPATH in /etc/login.defs), sbin directories first. */
export const SCRIPT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// After SIGTERM, a script that has not exited within this time gets SIGKILL.
const killGraceMs = 2_000;
// After the script exits, output still in the pipes is read for at most this long. A daemon the
// script started in the background may keep the pipes open forever.
const drainMs = 500;
// Output lines beyond this count are not logged (counted only), so a looping script cannot flood the log.
const maxLoggedLines = 500;
// Longer lines are cut before logging.
const maxLineLength = 2_000;

/**
 * Runs `/bin/sh -c <path>` with `env` (plus PATH) and waits for it to exit. Each line it writes
 * to stdout or stderr is logged at debug. Raises AcvpnError 'ENV_COMMAND_FAILED' naming the
 * script, the reason and the exit status or signal, with its last stderr line, when it exits
 * non-zero, is killed, times out or cannot be started.
 */
export async function runVpncScript(path: string, env: Record<string, string>, options: RunScriptOptions): Promise<void> {
  if (path.trim() === '') {
    throw new AcvpnError('CONFIG_INVALID', 'the vpnc-script path is empty; pass the path of the script to --script');
  }
  const reason = env.reason ?? '(none)';
  const log = options.log.child({ component: 'vpnc-script', reason });
  // The variables contain no secret (buildScriptEnvironment leaves them out), so they are logged
  // whole: a user can rerun the script by hand with them.
  log.debug({ script: path, env }, 'running vpnc-script');

  const outcome = await runShell(path, { PATH: SCRIPT_PATH, ...env }, options.timeoutMs, log);

  if (outcome.error !== undefined) {
    throw new AcvpnError(
      'ENV_COMMAND_FAILED',
      `vpnc-script ${path} for reason ${reason} could not be started: ${outcome.error.message}; check that /bin/sh exists`,
      { script: path, reason },
      { cause: outcome.error },
    );
  }
  if (outcome.timedOut) {
    throw new AcvpnError(
      'ENV_COMMAND_FAILED',
      `vpnc-script ${path} for reason ${reason} timed out after ${options.timeoutMs} ms and was killed` +
        `${lastLineSuffix(outcome.lastStderrLine)}; check what the script waits for`,
      { script: path, reason, timeoutMs: options.timeoutMs, stderr: outcome.lastStderrLine },
    );
  }
  if (outcome.exitCode !== 0) {
    const status = outcome.exitCode === null ? `was killed by ${outcome.signal ?? 'a signal'}` : `exited with status ${outcome.exitCode}`;
    throw new AcvpnError(
      'ENV_COMMAND_FAILED',
      `vpnc-script ${path} for reason ${reason} ${status}${lastLineSuffix(outcome.lastStderrLine)}; run it by hand with the same variables (acvpn logs them at debug) to see why`,
      { script: path, reason, exitCode: outcome.exitCode, signal: outcome.signal, stderr: outcome.lastStderrLine },
    );
  }
  log.debug({ script: path }, 'vpnc-script finished');
}

function lastLineSuffix(line: string | undefined): string {
  return line === undefined ? '' : ` (last stderr line: ${JSON.stringify(line)})`;
}

// ---- The child process ----

interface ShellOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  lastStderrLine?: string;
  error?: Error;
}

function runShell(script: string, env: Record<string, string>, timeoutMs: number, log: Logger): Promise<ShellOutcome> {
  return new Promise((resolve) => {
    // detached: the script runs in its own process group, so a timeout kills what it started too.
    const child = spawn('/bin/sh', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const lines = new LineLogger(log);
    child.stdout.on('data', (chunk: Buffer) => lines.push('stdout', chunk));
    child.stderr.on('data', (chunk: Buffer) => lines.push('stderr', chunk));

    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timeoutTimer = setTimeout(() => {
      timedOut = true;
      log.warn({ script, timeoutMs, pid: child.pid }, 'vpnc-script timed out; sending SIGTERM to its process group');
      killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), killGraceMs);
    }, timeoutMs);

    let settled = false;
    const settle = (outcome: Omit<ShellOutcome, 'lastStderrLine'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      lines.flush();
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ ...outcome, lastStderrLine: lines.lastStderrLine });
    };

    child.on('error', (error) => settle({ exitCode: null, signal: null, timedOut: false, error }));
    child.on('exit', (exitCode, signal) => {
      const finish = (): void => settle({ exitCode, signal, timedOut });
      // 'close' follows once both pipes reach end of file, which includes the last stderr line.
      child.on('close', finish);
      setTimeout(finish, drainMs).unref();
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Splits output into lines and logs each at debug, up to maxLoggedLines; keeps the last stderr line. */
class LineLogger {
  lastStderrLine: string | undefined;
  private readonly partial = { stdout: '', stderr: '' };
  private logged = 0;
  private dropped = 0;

  constructor(private readonly log: Logger) {}

  push(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const text = this.partial[stream] + chunk.toString('utf8');
    const parts = text.split('\n');
    // Without a newline the last part is incomplete; a runaway line is cut to bound memory.
    this.partial[stream] = (parts.pop() ?? '').slice(0, maxLineLength);
    for (const line of parts) this.emit(stream, line);
  }

  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream] !== '') this.emit(stream, this.partial[stream]);
      this.partial[stream] = '';
    }
    if (this.dropped > 0) this.log.debug({ droppedLines: this.dropped }, 'vpnc-script output lines not logged');
  }

  private emit(stream: 'stdout' | 'stderr', rawLine: string): void {
    const line = rawLine.replace(/\r$/, '').slice(0, maxLineLength);
    if (stream === 'stderr' && line.trim() !== '') this.lastStderrLine = line;
    if (this.logged >= maxLoggedLines) {
      this.dropped += 1;
      return;
    }
    this.logged += 1;
    this.log.debug({ stream }, line);
  }
}
