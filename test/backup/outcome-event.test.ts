import { eventBody } from "@felhom/protocol";
import { describe, expect, it } from "vitest";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import { outcomeEvent } from "../../agent/backup/outcome-event.ts";

const refused: BackupOutcome = {
  ok: false,
  failure: {
    backupId: "b-20261205-0231",
    mode: "snapshot",
    phase: "submit",
    code: "vzdump_lock_busy",
    message:
      "the node's vzdump lock is held by another backup; the agent tries again later (up to 9 more times)",
    exitStatus: null,
    upid: null,
    logTail: [],
    stacksResumed: true,
  },
};

describe("the hub's event for a backup's outcome", () => {
  it("tells a busy refusal that will be retried (which attempt, how many left, when) from a final failure", () => {
    const retried = outcomeEvent(refused, { attempt: 1, retriesLeft: 9, inSeconds: 47 });
    expect(retried).toMatchObject({
      kind: "backup.failed",
      code: "vzdump_lock_busy",
      retry: { attempt: 1, retriesLeft: 9, inSeconds: 47 },
    });
    expect(eventBody.parse(retried)).toEqual(retried);

    const final = outcomeEvent(refused);
    expect(final).not.toHaveProperty("retry");
    expect(eventBody.parse(final)).toEqual(final);
  });

  it("refuses a retry with nothing left to come: its absence is what says final", () => {
    const event = { ...outcomeEvent(refused), retry: { attempt: 10, retriesLeft: 0, inSeconds: 0 } };
    expect(eventBody.safeParse(event).success).toBe(false);
  });
});
