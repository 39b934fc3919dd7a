import { eventBody } from "@felhom/protocol";
import { describe, expect, it } from "vitest";
import { VzdumpLockBusyError } from "../../agent/backup/backup-task.ts";
import { busyRetryDelayMs } from "../../agent/backup/busy-retry.ts";
import { outcomeEvent } from "../../agent/backup/outcome-event.ts";

describe("busy retry", () => {
  it("keeps the first four waits at the base, then doubles them up to ten times the base, each ± 50 %", () => {
    const mid = () => 0.5;
    const waits = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((attempt) => busyRetryDelayMs(60, attempt, mid) / 1000);
    expect(waits).toEqual([60, 60, 60, 60, 120, 240, 480, 600, 600, 600]);
    expect(busyRetryDelayMs(60, 1, () => 0)).toBe(30_000);
    expect(busyRetryDelayMs(60, 1, () => 1)).toBe(90_000);
    expect(busyRetryDelayMs(60, 9, () => 0)).toBe(300_000);
  });

  it("never waits longer than a day, so the hub's backup.failed.retry.inSeconds stays within the protocol", () => {
    // 5760 s × 10 × 1.5 is the largest base that needs no cap; the config allows up to 86,400 s.
    expect(busyRetryDelayMs(5760, 9, () => 1)).toBe(86_400_000);
    expect(busyRetryDelayMs(5761, 9, () => 1)).toBe(86_400_000);
    expect(busyRetryDelayMs(86_400, 1, () => 0)).toBe(43_200_000);
    expect(busyRetryDelayMs(86_400, 1, () => 0.5)).toBe(86_400_000);
    const inSeconds = Math.ceil(busyRetryDelayMs(86_400, 10, () => 1) / 1000);
    const event = outcomeEvent(
      {
        ok: false,
        failure: {
          backupId: "bk-20261205-014400-abcd",
          mode: "snapshot",
          phase: "submit",
          code: "vzdump_lock_busy",
          message: "busy",
          exitStatus: null,
          upid: null,
          logTail: [],
          stacksResumed: true,
        },
      },
      { attempt: 1, retriesLeft: 1, inSeconds },
    );
    expect(eventBody.safeParse(event).success).toBe(true);
  });

  it("covers a lock held for a large guest's backup with the default 10 attempts (the 9 waits between them)", () => {
    const covered = (random: () => number) =>
      [1, 2, 3, 4, 5, 6, 7, 8, 9].reduce((sum, attempt) => sum + busyRetryDelayMs(60, attempt, random), 0);
    // 60 GB at 110 MB/s is about 9.3 minutes; the old policy's ten attempts covered 270-810 s.
    expect(covered(() => 0) / 60_000).toBe(19);
    expect(covered(() => 0.5) / 60_000).toBe(38);
    expect(covered(() => 1) / 60_000).toBe(57);
  });

  it("says what happens after a busy node for each trigger: a retry, no retry left, or none for this request", () => {
    expect(new VzdumpLockBusyError({ retriesLeft: 2 }).message).toMatch(
      /tries again later \(up to 2 more times\)$/,
    );
    expect(new VzdumpLockBusyError({ retriesLeft: 0 }).message).toMatch(/no retry is left/);
    const once = new VzdumpLockBusyError(undefined);
    expect(once.message).toMatch(/this request is not retried$/);
    expect(once.hint).toMatch(/run the backup again/);
  });
});
