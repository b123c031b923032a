// Questions the session asks while it runs (a login form field, an "Untrusted VPN Server"
// decision), turned into events for the control clients and answered by an `answer` request.
//
//   session ─ask─► broker ─emit {event:'prompt', id, ...}─► subscribers
//   client ─answer {id, value}─► broker ─resolve─► session
//
// Every question has a time limit. A form field nobody answers fails the login with
// AUTH_ANSWER_MISSING; an unanswered trust decision means abort, so an absent user never leaves a
// half-trusted connection waiting.

import { randomUUID } from 'node:crypto';
import { AcvpnError } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';
import type { PromptField } from '../auth/flow.js';
import type { TrustAnswer, TrustPromptDetails } from '../trust/policy.js';
import { invalidParams } from './jsonrpc.js';

export const DEFAULT_ANSWER_TIMEOUT_MS = 120_000;

export type PromptEvent = Record<string, unknown> & { event: 'prompt' | 'trust-decision'; id: string };

interface Pending {
  event: PromptEvent;
  secret: boolean;
  /** Answers accepted for this question; undefined accepts any string. */
  allowed: readonly string[] | undefined;
  settle(outcome: { answer: string } | { timedOut: true } | { cancelled: string }): void;
}

export class PromptBroker {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly emit: (event: Record<string, unknown>) => void,
    private readonly timeoutMs = DEFAULT_ANSWER_TIMEOUT_MS,
    private readonly newId: () => string = randomUUID,
  ) {}

  /** Asks for one login form field; rejects with AUTH_ANSWER_MISSING on timeout or cancel. */
  askField(field: PromptField): Promise<string> {
    const event: PromptEvent = {
      event: 'prompt',
      id: this.newId(),
      name: field.name,
      label: field.label,
      secret: field.secret,
      ...(field.message === undefined ? {} : { message: field.message }),
      ...(field.options === undefined ? {} : { options: field.options }),
      timeoutMs: this.timeoutMs,
    };
    return new Promise((resolve, reject) => {
      this.open(event, field.secret, undefined, (outcome) => {
        if ('answer' in outcome) return resolve(outcome.answer);
        const reason = 'timedOut' in outcome ? `no answer arrived within ${this.timeoutMs / 1000} s` : outcome.cancelled;
        reject(
          new AcvpnError('AUTH_ANSWER_MISSING', `the headend asks for ${JSON.stringify(field.label)} (form field ${field.name}) and ${reason}; answer prompt events with the answer method`, {
            field: field.name,
          }),
        );
      });
    });
  }

  /** Asks for a trust decision; resolves 'abort' on timeout or cancel. */
  askTrust(details: TrustPromptDetails, allowed: readonly TrustAnswer[]): Promise<TrustAnswer> {
    const event: PromptEvent = {
      event: 'trust-decision',
      id: this.newId(),
      title: details.title,
      message: details.message,
      host: details.host,
      status: details.status,
      blocked: details.blocked,
      allowed: [...allowed],
      reasons: details.reasons.map((reason) => reason.code),
      subject: details.leaf.subject,
      issuer: details.leaf.issuer,
      validTo: details.leaf.validTo.toISOString(),
      fingerprintSha256: details.leaf.fingerprintSha256,
      pin: details.leaf.publicKeyPin,
      timeoutMs: this.timeoutMs,
    };
    return new Promise((resolve) => {
      this.open(event, false, allowed, (outcome) => resolve('answer' in outcome ? (outcome.answer as TrustAnswer) : 'abort'));
    });
  }

  /**
   * Answers question `id`. Raises invalid params for an unknown id (never asked, already
   * answered, or timed out) and for an answer outside the allowed ones.
   */
  answer(id: string, value: string): void {
    const pending = this.pending.get(id);
    if (pending === undefined) throw invalidParams(`no open question has the id ${JSON.stringify(id.slice(0, 64))}; it was answered, timed out or never asked`);
    if (pending.secret) registerSecret(value);
    if (pending.allowed !== undefined && !pending.allowed.includes(value)) {
      throw invalidParams(`the answer to ${id} must be one of ${pending.allowed.join(', ')}`);
    }
    pending.settle({ answer: value });
  }

  /** The events of the questions still open, for a client that subscribes late. */
  openQuestions(): PromptEvent[] {
    return [...this.pending.values()].map((pending) => pending.event);
  }

  /** Ends every open question as unanswered (the session stopped, or the daemon is shutting down). */
  cancelAll(reason: string): void {
    for (const pending of [...this.pending.values()]) pending.settle({ cancelled: reason });
  }

  private open(event: PromptEvent, secret: boolean, allowed: readonly string[] | undefined, done: Pending['settle']): void {
    const id = event.id;
    const timer = setTimeout(() => settle({ timedOut: true }), this.timeoutMs);
    timer.unref();
    const settle: Pending['settle'] = (outcome) => {
      if (!this.pending.delete(id)) return;
      clearTimeout(timer);
      let closedAs = 'cancelled';
      if ('answer' in outcome) closedAs = 'answered';
      else if ('timedOut' in outcome) closedAs = 'timed-out';
      this.emit({ event: 'prompt-closed', id, outcome: closedAs });
      done(outcome);
    };
    this.pending.set(id, { event, secret, allowed, settle });
    this.emit(event);
  }
}
