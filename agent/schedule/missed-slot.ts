/**
 * The missed-run policy's decision, pure: was there a schedule slot in (since, now]? Slots are whole
 * minutes (the agent accepts 5-field cron expressions only), so scanning minute starts is exact. The scan
 * is capped: after a month off, one catch-up backup is what the policy promises, not an archaeology of
 * every slot.
 */
export const MAX_LOOKBACK_MS = 31 * 24 * 3600 * 1000;

export function findMissedSlot(matches: (minute: Date) => boolean, since: Date, now: Date): Date | undefined {
  const floor = Math.max(since.getTime(), now.getTime() - MAX_LOOKBACK_MS);
  // Newest first: the catch-up reports the most recent slot it stands for.
  let t = Math.floor(now.getTime() / 60_000) * 60_000;
  for (; t > floor; t -= 60_000) {
    const minute = new Date(t);
    if (matches(minute)) return minute;
  }
  return undefined;
}
