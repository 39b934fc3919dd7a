import { eventBody } from "@felhom/protocol";
import { describe, expect, it } from "vitest";
import { type BackupOutcome, resultWarnings } from "../../agent/backup/backup-types.ts";
import { outcomeEvent } from "../../agent/backup/outcome-event.ts";
import { planRun, snapshotVerdict } from "../../agent/backup/snapshot-plan.ts";

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

describe("a backup.completed whose warnings name many mount points", () => {
  it("validates: a plan note over 24 mount points and PVE's unanswered check are cut to the protocol's line", () => {
    const mountPoints = Array.from({ length: 24 }, (_, i) => ({
      key: i === 0 ? "rootfs" : `mp${i - 1}`,
      volume: `nfs-bulk:101/vm-101-disk-${i}.raw`,
      path: i === 0 ? "/" : `/srv/data${i}`,
      type: "volume" as const,
      inBackup: true,
      reason: (i === 0 ? "rootfs" : "enabled") as "rootfs" | "enabled",
    }));
    const cfg = { policy: "crash" as const, maxDowntimeSeconds: 300, maxHoldSeconds: 3600 };
    const planned = planRun("snapshot", snapshotVerdict({ hasFeature: false }, mountPoints), cfg);
    if (!planned.ok) throw new Error(planned.message);
    const note = planned.plan.note!;
    expect(note.length).toBeGreaterThan(1000);
    expect(note).toMatch(
      /^CT cannot be snapshotted \(a volume on a storage without snapshots, one of: rootfs /,
    );
    const unanswered = snapshotVerdict({ error: `HTTP 500: ${"x".repeat(1500)}` }, mountPoints);
    const completed: BackupOutcome = {
      ok: true,
      result: {
        backupId: "b-20261205-0300",
        mode: "snapshot",
        pveMode: "suspend",
        upid: "UPID:pve:0000A1B2:0001C3D4:6750F000:vzdump:101:felhom@pve!agent:",
        volid: "local:backup/vzdump-lxc-101-2026_12_05-03_00_00.tar.zst",
        sizeBytes: 1,
        totalMs: 1,
        downtime: [],
        exitStatus: "OK",
        warnings: resultWarnings([note, unanswered.can === "unknown" ? unanswered.why : ""]),
        consistency: "crash",
        stacksResumed: true,
      },
    };
    const event = outcomeEvent(completed);
    expect(eventBody.safeParse(event).success).toBe(true);
    if (completed.ok) expect(completed.result.warnings.map((w) => w.length)).toEqual([1000, 1000]);
  });
});
