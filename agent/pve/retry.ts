/**
 * Retry policy for idempotent reads, injected so tests can run it without waiting. `wait(attempt)` is
 * called before retry number `attempt` (1-based).
 */
export interface RetryPolicy {
  /** Total tries including the first. */
  maxAttempts: number;
  wait(attempt: number, signal?: AbortSignal): Promise<void>;
}

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base·2^(attempt-1))]. */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 4,
  wait: (attempt, signal) => sleep(backoffDelay(attempt, 250, 4_000), signal),
};
