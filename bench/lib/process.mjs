// Process helpers for the benchmark: bounded commands, long-running children in a network
// namespace, and the CPU time and peak memory of a live process from /proc.

import { spawn, execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** Output beyond this many bytes per stream is dropped, so a chatty command cannot fill memory. */
const MAX_CAPTURED_BYTES = 4 * 1024 * 1024;

/** Clock ticks per second, the unit of utime and stime in /proc/PID/stat. */
export const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs ARGV to completion and resolves with { exitCode, signal, stdout, stderr, timedOut }
 * whatever its exit status. The command gets SIGKILL after timeoutMs.
 */
export function runCommand(argv, { timeoutMs = 10_000, input = '' } = {}) {
  const [file, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout = captureStream(child.stdout);
    const stderr = captureStream(child.stderr);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`failed to start ${argv.join(' ')}: ${err.message}`, { cause: err }));
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout: stdout(), stderr: stderr(), timedOut });
    });
    // A command that exits without reading its input makes the write fail with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** Runs ARGV inside network namespace NS with `ip netns exec`. */
export function nsRun(ns, argv, options) {
  return runCommand(['ip', 'netns', 'exec', ns, ...argv], options);
}

/** Like runCommand, but rejects unless the command exits with status 0. */
export async function runCommandOk(argv, options) {
  const result = await runCommand(argv, options);
  if (result.exitCode !== 0) {
    throw new Error(`${argv.join(' ')} failed: ${describeResult(result)}`);
  }
  return result;
}

export function describeResult(result) {
  const status = result.timedOut
    ? 'timed out'
    : result.signal !== null
      ? `ended by ${result.signal}`
      : `exit status ${result.exitCode}`;
  const tail = (text) => text.trim().split('\n').slice(-15).join('\n') || '(empty)';
  return `${status}; stdout: ${tail(result.stdout)}; stderr: ${tail(result.stderr)}`;
}

function captureStream(stream) {
  const chunks = [];
  let size = 0;
  stream.on('data', (chunk) => {
    if (size + chunk.length <= MAX_CAPTURED_BYTES) {
      chunks.push(chunk);
      size += chunk.length;
    }
  });
  return () => Buffer.concat(chunks).toString('utf8');
}

/**
 * A long-running command started inside namespace NS. `ip netns exec` replaces itself with the
 * command, so `pid` is the command's own PID and /proc/PID describes the command. The child gets
 * its own process group, so a Ctrl-C in the terminal does not reach it, and the benchmark's
 * cleanup stops it in order (clients before the headend).
 */
export class NamespaceProcess {
  constructor(name, ns, argv, { input, env } = {}) {
    this.name = name;
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: env ?? process.env,
    });
    this.pid = this.child.pid;
    this.outputText = '';
    this.exitStatus = undefined;
    const append = (chunk) => {
      if (this.outputText.length < MAX_CAPTURED_BYTES) this.outputText += chunk.toString('utf8');
    };
    this.child.stdout.on('data', append);
    this.child.stderr.on('data', append);
    this.child.stdin.on('error', () => {});
    this.child.stdin.end(input ?? '');
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        this.outputText += `\nfailed to start: ${err.message}\n`;
        this.exitStatus = { code: null, signal: null };
        resolve(this.exitStatus);
      });
      this.child.on('close', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });
  }

  get running() {
    return this.exitStatus === undefined;
  }

  output() {
    return this.outputText;
  }

  /**
   * Sends SIGNAL and waits up to graceMs for the exit, then sends SIGKILL and waits up to 5 s more.
   * Resolves with the exit status and whether SIGKILL was needed; safe to call twice.
   */
  async stop(signal = 'SIGINT', graceMs = 10_000) {
    if (!this.running) return { ...this.exitStatus, killed: false };
    this.child.kill(signal);
    if (await exitsWithin(this.exited, graceMs)) return { ...this.exitStatus, killed: false };
    this.child.kill('SIGKILL');
    await exitsWithin(this.exited, 5_000);
    return { ...(this.exitStatus ?? { code: null, signal: null }), killed: true };
  }
}

async function exitsWithin(exited, ms) {
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = await Promise.race([exited.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

/**
 * Reads the CPU time (user + system, all threads, in seconds) of a live process from
 * /proc/PID/stat. Time of children that the process has reaped is left out, so a client's
 * helper scripts do not count.
 */
export async function readCpuSeconds(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces, so fields are counted
  // from the last ')'. utime and stime are fields 14 and 15 of the whole line.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`/proc/${pid}/stat: cannot read utime and stime from: ${stat.trim()}`);
  }
  return (utime + stime) / CLOCK_TICKS_PER_SECOND;
}

/** Reads the peak resident set size (VmHWM) of a live process from /proc/PID/status, in bytes. */
export async function readPeakRssBytes(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(match[1]) * 1024;
}
