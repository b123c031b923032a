import { describe, expect, it } from 'vitest';
import { decideLiveness, type LivenessState } from '../../../src/cstp/liveness.js';

function state(overrides: Partial<LivenessState>): LivenessState {
  return { lastReceivedMs: 0, lastSentMs: 0, ...overrides };
}

/**
 * A driver on a fake clock: jumps to each nextCheckMs, performs the action and records it.
 * `replyDelayMs` makes the peer reply to each DPD-REQ that much later; undefined means a silent peer.
 */
function runDriver(options: {
  dpdSeconds?: number;
  keepaliveSeconds?: number;
  replyDelayMs?: number;
  untilMs: number;
}): Array<{ atMs: number; action: string }> {
  const channel: LivenessState = {
    lastReceivedMs: 0,
    lastSentMs: 0,
    dpdSeconds: options.dpdSeconds,
    keepaliveSeconds: options.keepaliveSeconds,
  };
  const log: Array<{ atMs: number; action: string }> = [];
  const pendingRepliesMs: number[] = [];
  let nowMs = 0;

  for (let step = 0; step < 10_000; step += 1) {
    const decision = decideLiveness(channel, nowMs);
    if (decision.action !== 'none') log.push({ atMs: nowMs, action: decision.action });
    if (decision.action === 'dead') break;
    if (decision.action === 'dpd') {
      channel.lastDpdSentMs = nowMs;
      channel.lastSentMs = nowMs;
      if (options.replyDelayMs !== undefined) pendingRepliesMs.push(nowMs + options.replyDelayMs);
    }
    if (decision.action === 'keepalive') channel.lastSentMs = nowMs;

    expect(decision.nextCheckMs).toBeGreaterThan(nowMs);
    const nextMs = Math.min(decision.nextCheckMs, pendingRepliesMs[0] ?? Infinity);
    if (nextMs > options.untilMs) break;
    nowMs = nextMs;
    if (pendingRepliesMs[0] === nowMs) {
      channel.lastReceivedMs = nowMs;
      pendingRepliesMs.shift();
    }
  }
  return log;
}

describe('decideLiveness DPD', () => {
  const dpd = { dpdSeconds: 30 };

  it('waits until dpd seconds of silence', () => {
    expect(decideLiveness(state(dpd), 29_999)).toEqual({ action: 'none', nextCheckMs: 30_000 });
  });

  it('sends DPD after dpd seconds of silence', () => {
    expect(decideLiveness(state(dpd), 30_000)).toEqual({ action: 'dpd', nextCheckMs: 45_000 });
  });

  it('repeats an outstanding DPD every dpd/2', () => {
    const outstanding = state({ ...dpd, lastDpdSentMs: 30_000, lastSentMs: 30_000 });
    expect(decideLiveness(outstanding, 44_999)).toEqual({ action: 'none', nextCheckMs: 45_000 });
    expect(decideLiveness(outstanding, 45_000)).toEqual({ action: 'dpd', nextCheckMs: 60_000 });
  });

  it('declares the peer dead after 2 x dpd', () => {
    const outstanding = state({ ...dpd, lastDpdSentMs: 45_000, lastSentMs: 45_000 });
    expect(decideLiveness(outstanding, 59_999)).toEqual({ action: 'none', nextCheckMs: 60_000 });
    expect(decideLiveness(outstanding, 60_000)).toEqual({ action: 'dead', nextCheckMs: Infinity });
  });

  it('a reply ends the outstanding DPD', () => {
    const answered = state({ ...dpd, lastDpdSentMs: 30_000, lastSentMs: 30_000, lastReceivedMs: 30_100 });
    expect(decideLiveness(answered, 45_000)).toEqual({ action: 'none', nextCheckMs: 60_100 });
  });

  it('any received frame postpones DPD', () => {
    expect(decideLiveness(state({ ...dpd, lastReceivedMs: 20_000 }), 30_000)).toEqual({
      action: 'none',
      nextCheckMs: 50_000,
    });
  });

  it('sending does not postpone DPD', () => {
    expect(decideLiveness(state({ ...dpd, lastSentMs: 29_000 }), 30_000).action).toBe('dpd');
  });

  it('odd interval repeats at half seconds', () => {
    expect(decideLiveness(state({ dpdSeconds: 7 }), 7_000)).toEqual({ action: 'dpd', nextCheckMs: 10_500 });
  });

  it.each([[undefined], [0], [-5]])('DPD %s is disabled', (dpdSeconds) => {
    expect(decideLiveness(state({ dpdSeconds }), 10_000_000)).toEqual({ action: 'none', nextCheckMs: Infinity });
  });

  it('silent peer: DPD, repeat, dead', () => {
    expect(runDriver({ dpdSeconds: 10, untilMs: 3_600_000 })).toEqual([
      { atMs: 10_000, action: 'dpd' },
      { atMs: 15_000, action: 'dpd' },
      { atMs: 20_000, action: 'dead' },
    ]);
  });

  it('replying peer stays alive for an hour', () => {
    const log = runDriver({ dpdSeconds: 10, replyDelayMs: 200, untilMs: 3_600_000 });
    expect(log.some((entry) => entry.action === 'dead')).toBe(false);
    expect(log[0]).toEqual({ atMs: 10_000, action: 'dpd' });
    expect(log[1]).toEqual({ atMs: 20_200, action: 'dpd' });
    // One DPD per 10.2 s cycle over 3600 s.
    expect(log).toHaveLength(352);
  });

  it('slow peer survives on repeated DPDs', () => {
    const log = runDriver({ dpdSeconds: 10, replyDelayMs: 9_000, untilMs: 40_000 });
    expect(log).toEqual([
      { atMs: 10_000, action: 'dpd' },
      { atMs: 15_000, action: 'dpd' },
      // The replies arrive at 19 s and 24 s, so the next DPD is due 10 s after the second.
      { atMs: 34_000, action: 'dpd' },
      { atMs: 39_000, action: 'dpd' },
    ]);
  });

  it('peer slower than 2 x dpd is dead', () => {
    const log = runDriver({ dpdSeconds: 10, replyDelayMs: 10_001, untilMs: 40_000 });
    expect(log).toEqual([
      { atMs: 10_000, action: 'dpd' },
      { atMs: 15_000, action: 'dpd' },
      { atMs: 20_000, action: 'dead' },
    ]);
  });
});

describe('decideLiveness keepalive', () => {
  const keepalive = { keepaliveSeconds: 20 };

  it('waits until keepalive seconds without sending', () => {
    expect(decideLiveness(state(keepalive), 19_999)).toEqual({ action: 'none', nextCheckMs: 20_000 });
  });

  it('sends a keepalive after keepalive seconds without sending', () => {
    expect(decideLiveness(state(keepalive), 20_000)).toEqual({ action: 'keepalive', nextCheckMs: 40_000 });
  });

  it('sending postpones the keepalive', () => {
    expect(decideLiveness(state({ ...keepalive, lastSentMs: 15_000 }), 20_000)).toEqual({
      action: 'none',
      nextCheckMs: 35_000,
    });
  });

  it('receiving does not postpone the keepalive', () => {
    expect(decideLiveness(state({ ...keepalive, lastReceivedMs: 19_000 }), 20_000).action).toBe('keepalive');
  });

  it('keepalives repeat on a silent link without DPD', () => {
    expect(runDriver({ keepaliveSeconds: 20, untilMs: 70_000 })).toEqual([
      { atMs: 20_000, action: 'keepalive' },
      { atMs: 40_000, action: 'keepalive' },
      { atMs: 60_000, action: 'keepalive' },
    ]);
  });
});

describe('decideLiveness with DPD and keepalive', () => {
  it('a due DPD replaces a due keepalive', () => {
    expect(decideLiveness(state({ dpdSeconds: 30, keepaliveSeconds: 30 }), 30_000)).toEqual({
      action: 'dpd',
      nextCheckMs: 45_000,
    });
  });

  it('dead wins over a due DPD and keepalive', () => {
    const overdue = state({ dpdSeconds: 30, keepaliveSeconds: 10, lastDpdSentMs: 45_000, lastSentMs: 45_000 });
    expect(decideLiveness(overdue, 61_000).action).toBe('dead');
  });

  it('next check is the earliest deadline', () => {
    expect(decideLiveness(state({ dpdSeconds: 60, keepaliveSeconds: 25 }), 1_000)).toEqual({
      action: 'none',
      nextCheckMs: 25_000,
    });
  });

  it('keepalive resets the keepalive deadline only', () => {
    expect(decideLiveness(state({ dpdSeconds: 60, keepaliveSeconds: 25 }), 25_000)).toEqual({
      action: 'keepalive',
      nextCheckMs: 50_000,
    });
    expect(decideLiveness(state({ dpdSeconds: 30, keepaliveSeconds: 25 }), 25_000)).toEqual({
      action: 'keepalive',
      nextCheckMs: 30_000,
    });
  });

  it('ocserv defaults over ten minutes of silence', () => {
    // DPD 60 and keepalive 30, as in the ocserv 1.1.6 captures.
    expect(runDriver({ dpdSeconds: 60, keepaliveSeconds: 30, untilMs: 600_000 })).toEqual([
      { atMs: 30_000, action: 'keepalive' },
      { atMs: 60_000, action: 'dpd' },
      { atMs: 90_000, action: 'dpd' },
      { atMs: 120_000, action: 'dead' },
    ]);
  });
});
