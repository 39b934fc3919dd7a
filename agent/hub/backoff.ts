/** How long to wait before a reconnect attempt; injectable so tests run without real waits. */
export type RetryWait = (delayMs: number) => Promise<void>;

export interface BackoffPolicy {
  /** Cap of the first retry's window. */
  baseMs: number;
  /** Largest window, whatever the attempt number. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 60_000 };

/**
 * Exponential backoff with ONE random phase per streak: attempt k (from 0) is made at base·2^(k+phase)
 * after the streak began (the first failure since the last welcome), each wait capped at `maxMs`; `phase`
 * is drawn uniformly in [0, 1) when the streak begins. A fleet that lost the hub at the same instant is
 * then spread evenly over log-time, and whenever the hub comes back the fleet's next attempts are spread
 * evenly over the following octave (or over the capped period): measured with 2,000 links
 * (test/bench/hub-restart.bench.ts, PROTOCOL.md "Reconnecting after a hub restart"), the busiest second
 * stays within 3× the mean. Full jitter (a new uniform draw in [0, base·2^attempt) per attempt) did not
 * (3.2× after 2 s down, 3.5× after 30 s): agents left at different attempt numbers, short windows arrive
 * first, and each draw's remaining wait is front-loaded.
 * `attempt` counts failed attempts since the last welcome, from 0.
 */
export function phasedDelayMs(attempt: number, policy: BackoffPolicy, phase: number): number {
  const k = Math.min(Math.max(0, attempt), 30);
  // Attempt k happens at base·2^(k+phase): the first wait is base·2^phase, each later one base·2^(k-1+phase).
  return Math.floor(Math.min(policy.maxMs, policy.baseMs * 2 ** (Math.max(0, k - 1) + phase)));
}

/**
 * The wait after a rejection that retrying cannot fix soon (a bad credential, a fatal close code): at least
 * half the nominal delay, so the fleet neither hammers the hub nor stays in lockstep.
 */
export function hardDelayMs(nominalMs: number, random: () => number): number {
  return Math.floor(nominalMs / 2 + random() * (nominalMs / 2));
}
