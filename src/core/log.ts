// Logging: pino underneath, with acvpn's redaction applied to every line before it is written.
//
// Two output forms: JSON lines (`--json-logs`, for machines) and one readable line per record
// (the default, for people). Both go to stderr so that stdout stays free for command output.

import { pino, type Logger, type LevelWithSilent } from 'pino';
import { SECRET_KEYS, REDACTED, redactText } from './redact.js';

export type { Logger };

export type LogLevel = LevelWithSilent;

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LogOptions {
  level: LogLevel;
  json: boolean;
  /** Where lines go; stderr when omitted. Tests pass a collector. */
  write?: (line: string) => void;
}

// pino's redact paths are fixed at start-up; explicit one-level paths are cheap, wildcards cost
// more, so only the first two levels of nesting are covered by name. Deeper secrets are still
// caught by value scrubbing (redactText) as long as they were registered.
const redactPaths = SECRET_KEYS.flatMap((key) => {
  const quoted = `["${key}"]`;
  return [quoted, `*${quoted}`];
});

const levelNames: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

export function createLogger(options: LogOptions): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const format = options.json ? (line: string) => line : formatReadable;
  const destination = {
    write(line: string): void {
      write(format(redactText(line)));
    },
  };
  return pino(
    {
      level: options.level,
      base: undefined,
      redact: { paths: redactPaths, censor: REDACTED },
      serializers: { err: serializeError },
    },
    destination,
  );
}

function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const result: Record<string, unknown> = { type: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) result.code = code;
  return result;
}

// "20:53:12.345 INFO  connected to headend address=198.19.0.50"
function formatReadable(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, msg, ...fields } = record;
  const clock = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const name = (levelNames[level as number] ?? String(level)).padEnd(5);
  const extra = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${clock} ${name} ${String(msg ?? '')}${extra ? ` ${extra}` : ''}\n`;
}
