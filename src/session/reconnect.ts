// When and how often the session reconnects after losing the tunnel. Pure: the session supplies
// the clock and does the waiting.
//
// Network roaming on (the default, like Cisco's mobile client): keep trying without a time limit.
// Network roaming off: stop trying 20 seconds after the loss and report it.

import type { AcvpnError } from '../core/errors.js';

export interface ReconnectPolicy {
  /** Keep trying without limit (network roaming on) or give up after `giveUpAfterMs`. */
  netroam: boolean;
  giveUpAfterMs: number;
}

export const defaultReconnectPolicy: ReconnectPolicy = { netroam: true, giveUpAfterMs: 20_000 };

// The first retries come quickly because most losses are short (a link flap, a roam between
// networks); later ones back off so a long outage does not flood the headend.
const delaysMs = [1_000, 2_000, 4_000, 8_000];
const maximumDelayMs = 10_000;

/** Milliseconds to wait before reconnect attempt number `attempt` (0 for the first). */
export function reconnectDelayMs(attempt: number): number {
  return delaysMs[attempt] ?? maximumDelayMs;
}

/** True when the session should stop trying, `lostAtMs` being when the tunnel was lost. */
export function shouldGiveUp(policy: ReconnectPolicy, lostAtMs: number, nowMs: number): boolean {
  return !policy.netroam && nowMs - lostAtMs >= policy.giveUpAfterMs;
}

/**
 * True for failures that a new TLS connection with the same cookie may cure: the network path, a
 * dead peer, a headend that is restarting. A refused cookie needs a new login instead, and a
 * headend that ended the session or a certificate that is not trusted must not be retried.
 */
export function isRecoverable(error: AcvpnError): boolean {
  switch (error.code) {
    case 'NETWORK_UNREACHABLE':
    case 'TLS_FAILED':
    case 'HTTP_MALFORMED':
    case 'CSTP_PEER_DEAD':
    case 'CSTP_FRAME_INVALID':
    case 'CONNECT_REFUSED':
      return true;
    default:
      return false;
  }
}
