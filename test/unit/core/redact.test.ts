import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/core/log.js';
import { clearSecretsForTest, redactText, redactValue, registerSecret, REDACTED } from '../../../src/core/redact.js';

afterEach(() => clearSecretsForTest());

function collectLines(json: boolean) {
  const lines: string[] = [];
  const log = createLogger({ level: 'trace', json, write: (line) => lines.push(line) });
  return { log, lines };
}

describe('redaction', () => {
  it('scrubs registered values from text', () => {
    registerSecret('s3cr3t-pass');
    expect(redactText('password was s3cr3t-pass!')).toBe(`password was ${REDACTED}!`);
  });

  it('replaces the longest secret first', () => {
    registerSecret('abcd');
    registerSecret('abcdefgh');
    expect(redactText('x abcdefgh y')).toBe(`x ${REDACTED} y`);
  });

  it('ignores values too short to scrub', () => {
    registerSecret('ab');
    expect(redactText('ab cab')).toBe('ab cab');
  });

  it('replaces secret keys in objects', () => {
    expect(redactValue({ user: 'alice', Password: 'x', nested: { cookie: 'y' } })).toEqual({
      user: 'alice',
      Password: REDACTED,
      nested: { cookie: REDACTED },
    });
  });

  it('keeps secrets out of JSON log lines', () => {
    const { log, lines } = collectLines(true);
    registerSecret('Zm9vYmFyYmF6cXV4');
    log.info({ password: 'hunter22', cookie: 'Zm9vYmFyYmF6cXV4', nested: { password: 'hunter22' } }, 'cookie is Zm9vYmFyYmF6cXV4');
    const output = lines.join('');
    expect(output).not.toContain('hunter22');
    expect(output).not.toContain('Zm9vYmFyYmF6cXV4');
    expect(output).toContain(REDACTED);
  });

  it('keeps secrets out of readable log lines', () => {
    const { log, lines } = collectLines(false);
    registerSecret('webvpn-cookie-value');
    log.warn({ detail: 'got webvpn-cookie-value' }, 'failed');
    expect(lines.join('')).not.toContain('webvpn-cookie-value');
    expect(lines.join('')).toMatch(/WARN {2}failed detail=got \[redacted\]/);
  });
});
