/**
 * Where in its slot a guest's scheduled backup starts. The first time, a random delay within the jitter
 * window, so that a node's guests do not all quiesce and ask PVE at once. After that, the delay at which the
 * last scheduled backup got the node's vzdump lock (learned, kept in the schedule state): that moment was free
 * of the other guests' backups last night, and they come back to theirs too, so a node full of agents settles
 * into a sequence instead of colliding anew every night (reservation ALOHA). A guest refused at its learned
 * delay retries (busy-retry.ts) and learns the delay that worked; a slot whose retries ran out forgets it.
 *
 * A learned delay is used only under the jitter window it was learned with (a changed window is the
 * operator's new spread), and only within MAX_LEARNED_DELAY_MS: a backup that got the node later than that
 * is no place to come back to, so the next run draws afresh. Pure.
 */
export interface LearnedDelay {
  ms: number;
  jitter_seconds: number;
}

export const MAX_LEARNED_DELAY_MS = 3_600_000;

export function runDelayMs(o: {
  jitterSeconds: number;
  learned: LearnedDelay | undefined;
  random?: () => number;
}): number {
  const { learned } = o;
  if (learned && learned.jitter_seconds === o.jitterSeconds && learned.ms <= MAX_LEARNED_DELAY_MS)
    return learned.ms;
  return Math.floor((o.random ?? Math.random)() * o.jitterSeconds * 1000);
}
