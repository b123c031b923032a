// Runs the built acvpn CLI inside a test namespace and reads its JSON log lines.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep } from './headend.js';

export const ACVPN_BIN = fileURLToPath(new URL('../../../bin/acvpn.js', import.meta.url));

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface AcvpnRun {
  child: ChildProcess;
  /** Everything acvpn wrote to stderr and stdout so far, raw. */
  output(): string;
  records(): LogRecord[];
  /** Resolves with the first record matching `predicate`; rejects on timeout or exit. */
  waitFor(predicate: (record: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Resolves with the exit status once acvpn has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGINT and waits for the exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `acvpn ARGS` in namespace `ns` with `--json-logs`; `input` goes to stdin, then EOF. */
export function startAcvpn(ns: string, args: string[], input = ''): AcvpnRun {
  return startAcvpnWithEnv(ns, args, {}, input);
}

/** Like startAcvpn, with extra environment variables (for example ACVPN_PASSWORD). */
export function startAcvpnWithEnv(ns: string, args: string[], env: Record<string, string>, input = ''): AcvpnRun {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ACVPN_BIN, ...args, '--json-logs'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stdin?.on('error', () => {});
  child.stdin?.end(input);

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const records = (): LogRecord[] =>
    text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogRecord];
        } catch {
          return [];
        }
      });

  return {
    child,
    output: () => text,
    records,
    exited,
    async waitFor(predicate, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = records().find(predicate);
        if (found !== undefined) return found;
        if (hasExited) throw new Error(`acvpn exited before the expected log line; output:\n${text}`);
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for a log line; output:\n${text}`);
        await sleep(50);
      }
    },
    async stop(timeoutMs = 10_000) {
      if (!hasExited) child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Runs acvpn to its exit (for runs that are expected to fail fast). */
export async function runAcvpn(ns: string, args: string[], input = '', timeoutMs = 30_000) {
  const run = startAcvpn(ns, args, input);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const result = await run.exited;
  clearTimeout(timer);
  return { ...result, output: run.output(), records: run.records() };
}
