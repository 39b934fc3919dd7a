import type { Event } from "@felhom/protocol";
import type { BackupOutcome } from "./backup-types.ts";

/** The event for a finished backup, as the hub receives it. */
export function outcomeEvent(outcome: BackupOutcome): Event {
  return outcome.ok
    ? { kind: "backup.completed", ...outcome.result }
    : { kind: "backup.failed", ...outcome.failure };
}
