// One helper for the channels' liveness timers (CSTP and DTLS), which arm a timer for an absolute
// deadline taken from decideLiveness.

// Node's timers take at most 2^31 - 1 ms; a longer delay fires at once.
const maximumDelayMs = 2 ** 31 - 1;
// Deadlines closer than this are rounded up, so that a tight loop of checks cannot spin.
const minimumDelayMs = 100;

/**
 * Arms an unref'd timer for `deadlineMs` (same clock as `nowMs`). Returns undefined for an
 * infinite deadline, because setTimeout would turn Infinity into an immediate callback.
 */
export function armTimerAt(deadlineMs: number, nowMs: number, callback: () => void): NodeJS.Timeout | undefined {
  if (!Number.isFinite(deadlineMs)) return undefined;
  const delay = Math.min(maximumDelayMs, Math.max(minimumDelayMs, deadlineMs - nowMs));
  const timer = setTimeout(callback, delay);
  timer.unref();
  return timer;
}
