// `acvpn daemon`: serves the JSON-RPC control API on a Unix socket and runs at most one session,
// until SIGTERM or SIGINT, which disconnect the session cleanly and remove the socket.
//
// With --netns NAME the daemon starts itself again under `ip netns exec NAME` and waits for that
// copy, forwarding signals to it. The tunnel then lives in the namespace, while the socket is a
// file on the shared file system and stays reachable from the host.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AcvpnError, ExitCode, toAcvpnError } from '../core/errors.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../core/log.js';
import { redactText } from '../core/redact.js';
import { Daemon } from '../control/daemon.js';
import { DEFAULT_ANSWER_TIMEOUT_MS } from '../control/prompt-broker.js';
import { ControlServer } from '../control/server.js';
import { readPackageVersion } from '../session/host-setup.js';

/** Set in the copy started under `ip netns exec`, so that it does not start itself again. */
const NETNS_MARK_VARIABLE = 'ACVPN_DAEMON_NETNS';

export interface DaemonCommandOptions {
  socketPath: string;
  runDir: string;
  stateDir: string;
  netns?: string;
  logLevel: LogLevel;
  jsonLogs: boolean;
  answerTimeoutMs: number;
}

export const daemonUsageText = `Usage: acvpn daemon [--socket PATH] [--run-dir DIR] [--state-dir DIR] [--netns NAME]
                    [--answer-timeout SECONDS] [--log-level LEVEL] [--json-logs]

Serve the JSON-RPC 2.0 control API on a Unix socket (mode 0660) and run one VPN session at a time,
started by a connect request. SIGINT or SIGTERM disconnect the session and remove the socket.

      --socket PATH          control socket (default <run-dir>/control.sock)
      --run-dir DIR          runtime files; default $XDG_RUNTIME_DIR/acvpn or /run/acvpn
      --state-dir DIR        settings, saved entries, certificates; default /var/lib/acvpn
      --netns NAME           run the daemon, and so the tunnel, inside network namespace NAME
      --answer-timeout SECONDS
                             time to answer a prompt or trust decision (default 120)
      --log-level LEVEL      fatal, error, warn, info (default), debug, trace or silent
      --json-logs            write logs and events as JSON lines on stderr
`;

export async function runDaemonCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(daemonUsageText);
    return ExitCode.ok;
  }
  let options: DaemonCommandOptions;
  try {
    options = parseDaemonArgs(argv, process.env);
  } catch (error) {
    const failure = toAcvpnError(error);
    process.stderr.write(`acvpn: ${redactText(failure.message)}\n`);
    return failure.exitCode;
  }
  if (options.netns !== undefined && process.env[NETNS_MARK_VARIABLE] !== options.netns) {
    return runInNamespace(options.netns, argv);
  }
  return serve(options);
}

export function parseDaemonArgs(argv: string[], env: NodeJS.ProcessEnv): DaemonCommandOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        socket: { type: 'string' },
        'run-dir': { type: 'string' },
        'state-dir': { type: 'string' },
        netns: { type: 'string' },
        'answer-timeout': { type: 'string' },
        'log-level': { type: 'string' },
        'json-logs': { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new AcvpnError('USAGE', `${message}; run acvpn daemon --help for the options`);
  }

  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new AcvpnError('USAGE', `--log-level must be one of ${LOG_LEVELS.join(', ')}, received ${JSON.stringify(values['log-level'])}`);
  }
  const netns = values.netns as string | undefined;
  if (netns !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/.test(netns)) {
    throw new AcvpnError('USAGE', `--netns must be a network namespace name (letters, digits, '_', '.', '-'), received ${JSON.stringify(netns.slice(0, 80))}`);
  }
  const timeoutText = values['answer-timeout'] as string | undefined;
  const timeoutSeconds = timeoutText === undefined ? DEFAULT_ANSWER_TIMEOUT_MS / 1000 : Number(timeoutText);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 3600) {
    throw new AcvpnError('USAGE', `--answer-timeout must be a number of seconds from 1 to 3600, received ${JSON.stringify(timeoutText)}`);
  }

  const runDir = resolve((values['run-dir'] as string | undefined) ?? defaultRunDir(env));
  return {
    runDir,
    socketPath: resolve((values.socket as string | undefined) ?? join(runDir, 'control.sock')),
    stateDir: resolve((values['state-dir'] as string | undefined) ?? defaultStateDir(env)),
    netns,
    logLevel: level,
    jsonLogs: (values['json-logs'] as boolean | undefined) ?? false,
    answerTimeoutMs: timeoutSeconds * 1000,
  };
}

// The same defaults as `acvpn connect` (src/cli/args.ts).
export function defaultRunDir(env: NodeJS.ProcessEnv): string {
  return env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/acvpn` : '/run/acvpn';
}

function defaultStateDir(env: NodeJS.ProcessEnv): string {
  return env.ACVPN_STATE_DIR ?? (env.XDG_STATE_HOME ? `${env.XDG_STATE_HOME}/acvpn` : '/var/lib/acvpn');
}

async function serve(options: DaemonCommandOptions): Promise<number> {
  const log = createLogger({ level: options.logLevel, json: options.jsonLogs });
  let server: ControlServer | undefined;
  let daemon: Daemon | undefined;
  try {
    await mkdir(options.runDir, { recursive: true, mode: 0o700 });
    daemon = new Daemon({
      stateDir: options.stateDir,
      runDir: options.runDir,
      log,
      packageVersion: readPackageVersion(),
      answerTimeoutMs: options.answerTimeoutMs,
    });
    server = await ControlServer.start({ socketPath: options.socketPath, daemon, log });
    log.info({ pid: process.pid, netns: options.netns, runDir: options.runDir, stateDir: options.stateDir }, 'acvpn daemon started');

    const signal = await waitForSignal();
    log.info({ signal }, 'signal received; disconnecting the session and closing the control socket');
    await daemon.shutdown();
    await server.close();
    log.info('acvpn daemon stopped');
    return ExitCode.ok;
  } catch (error) {
    const failure = toAcvpnError(error);
    log.error({ code: failure.code, exitCode: failure.exitCode, ...failure.details }, failure.message);
    if (failure.code === 'INTERNAL') log.debug({ err: failure.cause }, 'internal error detail');
    await daemon?.shutdown().catch(() => {});
    await server?.close().catch(() => {});
    return failure.exitCode;
  } finally {
    log.flush();
  }
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      // A second signal during the logoff finds no listener and ends the process at once.
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** Runs this daemon again inside `netns` and returns its exit code. */
async function runInNamespace(netns: string, argv: string[]): Promise<number> {
  if (!existsSync(`/run/netns/${netns}`)) {
    process.stderr.write(`acvpn: network namespace ${netns} not found (no /run/netns/${netns}); create it with ip netns add ${netns}\n`);
    return ExitCode.usage;
  }
  const script = process.argv[1];
  if (script === undefined) {
    process.stderr.write('acvpn: cannot find the path of the acvpn script to start inside the namespace\n');
    return ExitCode.internal;
  }
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, ...process.execArgv, script, 'daemon', ...argv], {
    stdio: 'inherit',
    env: { ...process.env, [NETNS_MARK_VARIABLE]: netns },
  });
  // `ip netns exec` replaces itself with node, so the child's PID is the daemon's.
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => {
        process.stderr.write(`acvpn: cannot run ip netns exec (${error.code ?? error.message}); install iproute2\n`);
        resolve(ExitCode.environment);
      });
      // A daemon ended by a signal it did not handle (SIGKILL) did not stop cleanly.
      child.once('close', (code) => resolve(code ?? ExitCode.internal));
    });
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}
