/**
 * Where in its slot a guest's scheduled backup starts, as a delay after the slot's time. The first time, a
 * random delay within the jitter window, so that a node's guests do not all quiesce and ask PVE at once. After
 * that, the delay at which the last scheduled backup got the node's vzdump lock (learned, kept in the schedule
 * state): that moment was free of the other guests' backups last night, and they come back to theirs too, so
 * a node full of agents settles into a sequence instead of colliding anew every night (reservation ALOHA). A
 * guest refused at its learned delay retries (busy-retry.ts) and learns the delay that worked; a slot whose
 * retries ran out forgets it. The learned delay can exceed the jitter window by the retries it took, up to
 * MAX_LEARNED_DELAY_MS.
 *
 * A learned delay is used only under the jitter window it was learned with (a changed window is the
 * operator's new spread), only within MAX_LEARNED_DELAY_MS (a backup that got the node later than that is no
 * place to come back to), and only while it ends well before the following slot: under half the gap to it.
 * Decision (review of issue 15): a delay past the gap made every other slot of `*\/30 * * * *` find the run
 * still going and be skipped, for good, since the skipped slot learned nothing new. Past any of these bounds
 * the run draws afresh, within the jitter window or half the gap, whichever is shorter. A jitter of 0 is the operator asking for the exact time: no delay, nothing learned
 * (the scheduler does not learn under it either). Pure.
 */
export interface LearnedDelay {
  ms: number;
  jitter_seconds: number;
}

export const MAX_LEARNED_DELAY_MS = 3_600_000;

/** Whether a delay after a slot may be used (or kept) for the next run; `slotGapMs`: to the following slot. */
export function isUsableLearnedDelay(ms: number, slotGapMs: number | undefined): boolean {
  return ms <= MAX_LEARNED_DELAY_MS && (slotGapMs === undefined || ms < slotGapMs / 2);
}

interface RunDelayInput {
  jitterSeconds: number;
  learned: LearnedDelay | undefined;
  /** From this slot to the following one; undefined when none follows within the scheduler's horizon. */
  slotGapMs: number | undefined;
  random?: () => number;
}

/** Whether the run starts at its learned delay (the place where the node was free last time), not a draw. */
export function startsAtLearnedDelay(o: RunDelayInput): boolean {
  const { learned } = o;
  return (
    o.jitterSeconds !== 0 &&
    learned !== undefined &&
    learned.jitter_seconds === o.jitterSeconds &&
    isUsableLearnedDelay(learned.ms, o.slotGapMs)
  );
}

export function runDelayMs(o: RunDelayInput): number {
  if (o.jitterSeconds === 0) return 0;
  if (startsAtLearnedDelay(o)) return o.learned!.ms;
  // The fresh draw keeps the same bound as a learned delay: `*\/10` with a 900 s jitter would otherwise
  // start past the next slot two times in three, and that slot would be skipped as still running.
  const windowMs = Math.min(o.jitterSeconds * 1000, o.slotGapMs === undefined ? Infinity : o.slotGapMs / 2);
  return Math.floor((o.random ?? Math.random)() * windowMs);
}
