/**
 * When the node's vzdump lock is held by another guest's backup, the agent gives up at once (it must not
 * sit quiesced in a queue), resumes, and tries again later. Delays grow exponentially from the configured
 * base with full jitter, so that guests that collided once do not collide again in lockstep.
 */
export function busyRetryDelayMs(attempt: number, baseSeconds: number, random = Math.random): number {
  const cap = baseSeconds * 1000 * 2 ** Math.max(0, attempt - 1);
  // Never less than half the base: retrying a busy node within seconds only adds load.
  return Math.round(baseSeconds * 500 + random() * (cap - baseSeconds * 500));
}
