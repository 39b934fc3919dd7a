import type { Event } from "@felhom/protocol";
import type { BackupOutcome, BusyRetry } from "./backup-types.ts";

/**
 * The event for a finished backup, as the hub receives it. `retry`: the backup service tries this one again
 * (a busy node's refusal), so the hub can tell it from a final failure.
 */
export function outcomeEvent(outcome: BackupOutcome, retry?: BusyRetry): Event {
  return outcome.ok
    ? { kind: "backup.completed", ...outcome.result }
    : { kind: "backup.failed", ...outcome.failure, ...(retry ? { retry } : {}) };
}
