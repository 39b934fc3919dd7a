/**
 * When the node's vzdump lock is held by another guest's backup, PVE refuses at once (lockwait=0): the agent
 * resumes its stacks (it never sits quiesced in PVE's queue) and a scheduled backup tries again later. The
 * wait after the n-th refused attempt is base × 2^max(0, n − 4), capped at 10 × base, each ± 50 % (equal
 * jitter): with the defaults (60 s, 10 attempts) 60, 60, 60, 60, 120, 240, 480, 600, 600 s, so the ten
 * attempts cover about 38 minutes after the first refusal on average and at least about 19 (every draw at
 * its lowest).
 *
 * Decision (issue 15, measured by `npm run bench -- fleet`, then the review): the first four retries stay
 * quick because a node full of agents is a queue that drains at the node's pace, and the lock frees within
 * one guest's backup: growing waits from the start (the old policy: 300 s base, doubling, 4 attempts) left
 * the lock idle while refused guests waited (held 33 % of the time some guest wanted it at 30 guests, against
 * 55-69 % with quick retries, and the night 1.6-1.7 times as long). The later ones grow because a lock held
 * far longer than one small guest's backup (a 60 GB guest at 110 MB/s, about 9 minutes; the PVE admin's own
 * nightly job) would otherwise outlast every retry: ten retries 60 s apart gave up 270-810 s after the first
 * refusal, and every guest that met such a backup missed its own. The attempt count stays at 10: each refused
 * attempt is one failed-job mail to the PVE admin (README, "What the PVE admin sees"), so more attempts would
 * buy the longer reach with more mails; growth buys it with none. The jitter keeps two guests that collided
 * once from colliding again in lockstep; never less than half the base, as a retry within seconds of a
 * refusal only adds refusals, each of which costs the guest a quiesce.
 *
 * No wait exceeds a day (BUSY_RETRY_MAX_DELAY_MS): the hub hears it as `backup.failed.retry.inSeconds`, which
 * the protocol bounds at 86,400 (a later event would fail the schema and be lost), and a delay_seconds that
 * high (the config allows up to 86,400 s, so 10 × 1.5 × that before the cap) is an admin's "about a day" anyway.
 */
export const BUSY_RETRY_QUICK_ATTEMPTS = 4;
export const BUSY_RETRY_MAX_FACTOR = 10;
export const BUSY_RETRY_MAX_DELAY_MS = 86_400_000;

/** The wait before the next attempt after attempt `attempt` (1 = the first) was refused. */
export function busyRetryDelayMs(baseSeconds: number, attempt: number, random = Math.random): number {
  const growth = 2 ** Math.max(0, attempt - BUSY_RETRY_QUICK_ATTEMPTS);
  const nominalMs = baseSeconds * 1000 * Math.min(growth, BUSY_RETRY_MAX_FACTOR);
  return Math.min(Math.round(nominalMs * (0.5 + random())), BUSY_RETRY_MAX_DELAY_MS);
}
