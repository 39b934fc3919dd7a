import { type SlotSpec, scheduleSlots } from "./slots.ts";

/**
 * The missed-run policy's decision, pure: the newest schedule slot in (since, now], by the same slot rule
 * the live schedule follows (so a slot moved by a daylight-saving gap counts, a repeated one does not count
 * twice). The scan is capped: after a month off, one catch-up backup is what the policy promises, not an
 * archaeology of every slot.
 */
export const MAX_LOOKBACK_MS = 31 * 24 * 3600 * 1000;

export function findMissedSlot(spec: SlotSpec, since: Date, now: Date): Date | undefined {
  const floor = new Date(Math.max(since.getTime(), now.getTime() - MAX_LOOKBACK_MS));
  if (floor >= now) return undefined;
  return scheduleSlots(spec, floor, now).at(-1);
}
