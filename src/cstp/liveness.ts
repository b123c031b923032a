// Liveness decision for one channel (CSTP or DTLS): dead-peer detection and keepalive.
//
// Pure: the driver passes its timestamps and the current time, performs the returned action and
// arms one timer for nextCheckMs. The rules (the headend's X-CSTP-DPD / X-CSTP-Keepalive values,
// or the X-DTLS-* ones for DTLS) match keepalive_action() in OpenConnect's mainloop.c:
//   DPD        nothing received for dpd s         -> send DPD-REQ
//              DPD-REQ outstanding                -> repeat it every dpd/2 s
//              nothing received for 2 x dpd s     -> the peer is dead
//   keepalive  nothing sent for keepalive s       -> send KEEPALIVE
// Any received frame counts as life, and a DPD-REQ counts as sending, so one DPD-REQ can replace
// a KEEPALIVE that is due at the same moment. OpenConnect counts whole seconds and declares the
// peer dead only once 2 x dpd has passed; this code counts milliseconds and does so at 2 x dpd.

export interface LivenessState {
  /** When the last frame of any type arrived, in monotonic milliseconds. */
  lastReceivedMs: number;
  /** When the last frame of any type was sent. */
  lastSentMs: number;
  /** When the last DPD-REQ was sent; it is outstanding while nothing arrived after it. */
  lastDpdSentMs?: number;
  /** DPD interval in seconds; undefined or 0 disables DPD. */
  dpdSeconds?: number;
  /** Keepalive interval in seconds; undefined or 0 disables keepalives. */
  keepaliveSeconds?: number;
}

export type LivenessAction = 'none' | 'dpd' | 'keepalive' | 'dead';

export interface LivenessDecision {
  action: LivenessAction;
  /**
   * When to call decideLiveness again, in the same clock as the inputs, assuming the driver
   * performs `action` now (and records it in lastSentMs / lastDpdSentMs). Always later than
   * `nowMs`. Infinity when no timer is enabled or the peer is dead: arm no timer then, because
   * setTimeout turns Infinity into an immediate callback.
   */
  nextCheckMs: number;
}

interface Deadlines {
  deadAtMs: number;
  dpdAtMs: number;
  keepaliveAtMs: number;
}

function computeDeadlines(state: LivenessState): Deadlines {
  const dpdMs = positiveSeconds(state.dpdSeconds) * 1000;
  const keepaliveMs = positiveSeconds(state.keepaliveSeconds) * 1000;
  const deadlines: Deadlines = { deadAtMs: Infinity, dpdAtMs: Infinity, keepaliveAtMs: Infinity };

  if (dpdMs > 0) {
    deadlines.deadAtMs = state.lastReceivedMs + 2 * dpdMs;
    const outstanding = state.lastDpdSentMs !== undefined && state.lastDpdSentMs >= state.lastReceivedMs;
    deadlines.dpdAtMs = outstanding ? state.lastDpdSentMs! + dpdMs / 2 : state.lastReceivedMs + dpdMs;
  }
  if (keepaliveMs > 0) {
    deadlines.keepaliveAtMs = state.lastSentMs + keepaliveMs;
  }
  return deadlines;
}

function positiveSeconds(value: number | undefined): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : 0;
}

function earliest(deadlines: Deadlines): number {
  return Math.min(deadlines.deadAtMs, deadlines.dpdAtMs, deadlines.keepaliveAtMs);
}

/** Decides whether a channel needs a DPD-REQ or a KEEPALIVE now, or whether its peer is dead. */
export function decideLiveness(state: LivenessState, nowMs: number): LivenessDecision {
  const deadlines = computeDeadlines(state);

  if (nowMs >= deadlines.deadAtMs) return { action: 'dead', nextCheckMs: Infinity };

  if (nowMs >= deadlines.dpdAtMs) {
    const after = computeDeadlines({ ...state, lastSentMs: nowMs, lastDpdSentMs: nowMs });
    return { action: 'dpd', nextCheckMs: earliest(after) };
  }

  if (nowMs >= deadlines.keepaliveAtMs) {
    const after = computeDeadlines({ ...state, lastSentMs: nowMs });
    return { action: 'keepalive', nextCheckMs: earliest(after) };
  }

  return { action: 'none', nextCheckMs: earliest(deadlines) };
}
