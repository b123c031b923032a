// The one place that decides what is secret.
//
// Two nets catch secrets before any text leaves the process (logs, error messages, events):
//  1. Field names: any object key in SECRET_KEYS is replaced, whatever its value.
//  2. Values: every secret the process learns at run time (password, cookie, DTLS key) is
//     registered here, and every outgoing line is scrubbed of each registered value.
// The second net also catches a secret that was pasted into a free-text message by mistake.

export const REDACTED = '[redacted]';

/** Object keys whose values are always secret, compared case-insensitively. */
export const SECRET_KEYS: readonly string[] = [
  'password',
  'passwd',
  'secondary_password',
  'otp',
  'cookie',
  'set-cookie',
  'webvpn',
  'webvpncontext',
  'session-token',
  'sessiontoken',
  'authorization',
  'x-dtls-master-secret',
  'master-secret',
  'psk',
  'privatekey',
  'private-key',
  'x-cstp-post-auth-xml',
];

const secretKeySet = new Set(SECRET_KEYS.map((key) => key.toLowerCase()));

// Values shorter than this are not registered: scrubbing "1" or "ab" from every log line would
// mangle ordinary text and protect nothing (a credential that short is not a secret anyway).
const minimumSecretLength = 4;

const secretValues = new Set<string>();
let scrubPattern: RegExp | undefined;

/** Registers a secret value so that it is scrubbed from every line written from now on. */
export function registerSecret(value: string | Buffer | undefined | null): void {
  if (value === undefined || value === null) return;
  const text = typeof value === 'string' ? value : value.toString('hex');
  if (text.length < minimumSecretLength || secretValues.has(text)) return;
  secretValues.add(text);
  // Longest first, so that a secret containing another is replaced whole.
  const alternatives = [...secretValues]
    .sort((a, b) => b.length - a.length)
    .map((secret) => secret.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  scrubPattern = new RegExp(alternatives.join('|'), 'g');
}

export function isSecretKey(key: string): boolean {
  return secretKeySet.has(key.toLowerCase());
}

/** Replaces every registered secret value in `text`. */
export function redactText(text: string): string {
  if (scrubPattern === undefined) return text;
  return text.replace(scrubPattern, REDACTED);
}

/** Deep-copies `value`, replacing secret keys and registered secret values. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[too deep]';
  if (typeof value === 'string') return redactText(value);
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1));
  if (value !== null && typeof value === 'object') {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      copy[key] = isSecretKey(key) ? REDACTED : redactValue(item, depth + 1);
    }
    return copy;
  }
  return value;
}

/** Forgets every registered secret. Only for tests. */
export function clearSecretsForTest(): void {
  secretValues.clear();
  scrubPattern = undefined;
}
