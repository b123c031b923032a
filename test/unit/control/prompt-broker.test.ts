import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { clearSecretsForTest, redactText } from '../../../src/core/redact.js';
import { PromptBroker } from '../../../src/control/prompt-broker.js';
import type { TrustPromptDetails } from '../../../src/trust/policy.js';

const trustDetails = {
  title: 'Untrusted VPN Server',
  message: 'The certificate is not trusted.',
  host: 'vpn.example.test',
  status: 'untrusted',
  blocked: false,
  reasons: [{ code: 'self-signed', message: 'self-signed' }],
  ocspProblems: [],
  leaf: {
    subject: 'CN=vpn.example.test',
    issuer: 'CN=vpn.example.test',
    fingerprintSha256: 'AA:BB',
    publicKeyPin: 'pin-sha256:abc=',
    validTo: new Date('2030-01-01T00:00:00Z'),
  },
  chain: [],
} as unknown as TrustPromptDetails;

describe('PromptBroker', () => {
  let events: Array<Record<string, unknown>>;
  let counter: number;
  let broker: PromptBroker;

  beforeEach(() => {
    events = [];
    counter = 0;
    broker = new PromptBroker((event) => events.push(event), 1000, () => `q${++counter}`);
  });

  afterEach(() => {
    vi.useRealTimers();
    clearSecretsForTest();
  });

  it('routes each answer to its own question', async () => {
    const user = broker.askField({ name: 'username', label: 'Username:', secret: false });
    const password = broker.askField({ name: 'password', label: 'Password:', secret: true, message: 'Please enter your password.' });
    expect(events.map((event) => [event.event, event.id, event.name])).toEqual([
      ['prompt', 'q1', 'username'],
      ['prompt', 'q2', 'password'],
    ]);
    expect(events[1]).toMatchObject({ secret: true, message: 'Please enter your password.', label: 'Password:' });

    broker.answer('q2', 'pa55word-xyz');
    broker.answer('q1', 'alice');
    await expect(user).resolves.toBe('alice');
    await expect(password).resolves.toBe('pa55word-xyz');
    expect(broker.openQuestions()).toEqual([]);
    expect(events.filter((event) => event.event === 'prompt-closed').map((event) => event.id)).toEqual(['q2', 'q1']);
  });

  it('registers a secret answer for redaction', async () => {
    const password = broker.askField({ name: 'password', label: 'Password:', secret: true });
    broker.answer('q1', 'sw0rdfish-77');
    await password;
    expect(redactText('x sw0rdfish-77 y')).toBe('x [redacted] y');
  });

  it('rejects an unknown or repeated id', async () => {
    expect(() => broker.answer('nope', 'x')).toThrow(/no open question/);
    const field = broker.askField({ name: 'username', label: 'Username:', secret: false });
    broker.answer('q1', 'alice');
    await field;
    expect(() => broker.answer('q1', 'bob')).toThrow(/no open question/);
  });

  it('fails a field with AUTH_ANSWER_MISSING on timeout', async () => {
    vi.useFakeTimers();
    const field = broker.askField({ name: 'password', label: 'Password:', secret: true });
    const outcome = field.catch((error: unknown) => error);
    vi.advanceTimersByTime(1000);
    const error = await outcome;
    expect(AcvpnError.is(error)).toBe(true);
    expect((error as AcvpnError).code).toBe('AUTH_ANSWER_MISSING');
    expect(events.at(-1)).toEqual({ event: 'prompt-closed', id: 'q1', outcome: 'timed-out' });
    expect(() => broker.answer('q1', 'late')).toThrow(/no open question/);
  });

  it('does not time out before the limit', async () => {
    vi.useFakeTimers();
    const field = broker.askField({ name: 'username', label: 'Username:', secret: false });
    vi.advanceTimersByTime(999);
    broker.answer('q1', 'alice');
    await expect(field).resolves.toBe('alice');
  });

  it('accepts only allowed trust answers', async () => {
    const decision = broker.askTrust(trustDetails, ['abort', 'continue']);
    expect(events[0]).toMatchObject({ event: 'trust-decision', id: 'q1', host: 'vpn.example.test', allowed: ['abort', 'continue'], pin: 'pin-sha256:abc=' });
    expect(() => broker.answer('q1', 'import-and-continue')).toThrow(/must be one of abort, continue/);
    broker.answer('q1', 'continue');
    await expect(decision).resolves.toBe('continue');
  });

  it('aborts a trust decision on timeout', async () => {
    vi.useFakeTimers();
    const decision = broker.askTrust(trustDetails, ['abort', 'continue']);
    vi.advanceTimersByTime(1000);
    await expect(decision).resolves.toBe('abort');
  });

  it('cancels every open question', async () => {
    const field = broker.askField({ name: 'username', label: 'Username:', secret: false }).catch((error: unknown) => error);
    const decision = broker.askTrust(trustDetails, ['abort', 'continue']);
    broker.cancelAll('the session ended');
    const error = await field;
    expect(AcvpnError.is(error)).toBe(true);
    expect((error as AcvpnError).message).toMatch(/the session ended/);
    await expect(decision).resolves.toBe('abort');
    expect(broker.openQuestions()).toEqual([]);
  });
});
