import { performance } from "node:perf_hooks";

/**
 * Lateness beyond this is taken for a freeze of the whole process, not a busy event loop. PVE freezes the
 * CT (its cgroup freezer stops every process in it, this one included) while it takes the storage snapshot
 * (pve-guest-common AbstractConfig.pm `snapshot_create`, pve-container LXC/Config.pm `__snapshot_freeze`).
 */
export const FROZEN_AFTER_MS = 1_000;

/**
 * `setTimeout` that tells its callback how late it fired, on the monotonic clock (which goes on while the
 * process is frozen). On thaw every overdue timer fires at once, before any socket is read: a timer that
 * judges what it has not heard yet must know it was asleep when its time came.
 */
export function lateTimeout(ms: number, fn: (lateMs: number) => void): NodeJS.Timeout {
  const due = performance.now() + ms;
  return setTimeout(() => fn(Math.max(0, Math.round(performance.now() - due))), ms);
}
