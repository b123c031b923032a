// runVpncScript with real /bin/sh and small scripts in a temporary directory.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { createLogger } from '../../../src/core/log.js';
import { SCRIPT_PATH, runVpncScript } from '../../../src/net/script/run-script.js';

let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'acvpn-script-run-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function writeScript(name: string, body: string): Promise<string> {
  const path = join(directory, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

function collectingLogger(): { log: ReturnType<typeof createLogger>; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', json: true, write: (line) => records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, records };
}

const silent = createLogger({ level: 'silent', json: true });

async function captureError(promise: Promise<unknown>): Promise<AcvpnError> {
  try {
    await promise;
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected an AcvpnError, but the script succeeded');
}

/**
 * True while the process exists and is not a zombie. The killed child is reparented to PID 1,
 * which may take its time to reap it, and a zombie has already been killed.
 */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

describe('runVpncScript', () => {
  it('passes the variables and a fixed PATH only', async () => {
    const output = join(directory, 'env.txt');
    const script = await writeScript('dump-env.sh', `env > '${output}'`);
    process.env.ACVPN_PASSWORD = 'not-for-scripts';
    try {
      await runVpncScript(script, { reason: 'connect', TUNDEV: 'tun0' }, { timeoutMs: 5_000, log: silent });
    } finally {
      delete process.env.ACVPN_PASSWORD;
    }

    const lines = (await readFile(output, 'utf8')).split('\n');
    expect(lines).toContain('reason=connect');
    expect(lines).toContain('TUNDEV=tun0');
    expect(lines).toContain(`PATH=${SCRIPT_PATH}`);
    expect(lines.some((line) => line.startsWith('ACVPN_PASSWORD='))).toBe(false);
    expect(lines.some((line) => line.startsWith('HOME='))).toBe(false);
  });

  it('runs a script with arguments through the shell', async () => {
    const output = join(directory, 'args.txt');
    const script = await writeScript('args.sh', `echo "$1 $2 $reason" > '${output}'`);

    await runVpncScript(`${script} first 'second word'`, { reason: 'disconnect' }, { timeoutMs: 5_000, log: silent });

    expect(await readFile(output, 'utf8')).toBe('first second word disconnect\n');
  });

  it('logs stdout and stderr lines at debug', async () => {
    const script = await writeScript('chatty.sh', 'echo "to stdout"\necho "to stderr" >&2\nprintf "no newline"');
    const { log, records } = collectingLogger();

    await runVpncScript(script, { reason: 'connect' }, { timeoutMs: 5_000, log });

    const lines = records.filter((record) => record.stream !== undefined);
    expect(lines).toContainEqual(expect.objectContaining({ stream: 'stdout', msg: 'to stdout', level: 20 }));
    expect(lines).toContainEqual(expect.objectContaining({ stream: 'stderr', msg: 'to stderr', level: 20 }));
    expect(lines).toContainEqual(expect.objectContaining({ stream: 'stdout', msg: 'no newline' }));
  });

  it('non-zero exit raises ENV_COMMAND_FAILED', async () => {
    const script = await writeScript('fails.sh', 'echo "first problem" >&2\necho "ip: RTNETLINK answers: File exists" >&2\nexit 3');

    const error = await captureError(runVpncScript(script, { reason: 'connect' }, { timeoutMs: 5_000, log: silent }));

    expect(error.code).toBe('ENV_COMMAND_FAILED');
    expect(error.message).toContain(script);
    expect(error.message).toContain('reason connect');
    expect(error.message).toContain('exited with status 3');
    expect(error.message).toContain('ip: RTNETLINK answers: File exists');
    expect(error.message).not.toContain('first problem');
    expect(error.details).toMatchObject({ script, reason: 'connect', exitCode: 3 });
  });

  it('missing script raises ENV_COMMAND_FAILED', async () => {
    const missing = join(directory, 'does-not-exist.sh');

    const error = await captureError(runVpncScript(missing, { reason: 'pre-init' }, { timeoutMs: 5_000, log: silent }));

    expect(error.code).toBe('ENV_COMMAND_FAILED');
    expect(error.message).toContain('exited with status 127');
    expect(error.message).toContain('not found');
  });

  it('timeout kills the script and its children', async () => {
    const pidFile = join(directory, 'child.pid');
    const script = await writeScript('hangs.sh', `sleep 30 &\necho $! > '${pidFile}'\nwait`);
    const started = Date.now();

    const error = await captureError(runVpncScript(script, { reason: 'connect' }, { timeoutMs: 300, log: silent }));

    expect(error.code).toBe('ENV_COMMAND_FAILED');
    expect(error.message).toContain('timed out after 300 ms');
    expect(Date.now() - started).toBeLessThan(5_000);
    const childPid = Number((await readFile(pidFile, 'utf8')).trim());
    // The signal may take a moment to arrive; poll for at most one second.
    for (let attempt = 0; attempt < 20 && (await isRunning(childPid)); attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await isRunning(childPid)).toBe(false);
  });

  it('empty path raises CONFIG_INVALID', async () => {
    const error = await captureError(runVpncScript('  ', { reason: 'connect' }, { timeoutMs: 5_000, log: silent }));

    expect(error.code).toBe('CONFIG_INVALID');
  });
});
