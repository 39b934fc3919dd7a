import { describe, expect, it } from "vitest";
import { VzdumpLockBusyError } from "../../agent/backup/backup-task.ts";
import { busyRetryDelayMs } from "../../agent/backup/busy-retry.ts";

describe("busy retry", () => {
  it("keeps the first four waits at the base, then doubles them up to ten times the base, each ± 50 %", () => {
    const mid = () => 0.5;
    const waits = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((attempt) => busyRetryDelayMs(60, attempt, mid) / 1000);
    expect(waits).toEqual([60, 60, 60, 60, 120, 240, 480, 600, 600, 600]);
    expect(busyRetryDelayMs(60, 1, () => 0)).toBe(30_000);
    expect(busyRetryDelayMs(60, 1, () => 1)).toBe(90_000);
    expect(busyRetryDelayMs(60, 9, () => 0)).toBe(300_000);
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
