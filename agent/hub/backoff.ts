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
 * Exponential backoff with FULL jitter: uniformly in [0, min(max, base·2^attempt)). A fleet of agents that
 * lost the hub at the same instant spreads its reconnects over the whole window instead of arriving in
 * waves (the "equal jitter" variants keep a floor that re-synchronises them).
 * `attempt` counts failed attempts since the last welcome, from 0.
 */
export function fullJitterDelayMs(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const window = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.floor(random() * window);
}

/**
 * The wait after a rejection that retrying cannot fix soon (a bad credential, a fatal close code): at least
 * half the nominal delay, so the fleet neither hammers the hub nor stays in lockstep.
 */
export function hardDelayMs(nominalMs: number, random: () => number): number {
  return Math.floor(nominalMs / 2 + random() * (nominalMs / 2));
}
