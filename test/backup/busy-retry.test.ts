import { describe, expect, it } from "vitest";
import { VzdumpLockBusyError } from "../../agent/backup/backup-task.ts";
import { busyRetryDelayMs } from "../../agent/backup/busy-retry.ts";

describe("busy retry", () => {
  it("waits at least half the base and at most the exponential cap", () => {
    expect(busyRetryDelayMs(1, 300, () => 0)).toBe(150_000);
    expect(busyRetryDelayMs(1, 300, () => 1)).toBe(300_000);
    expect(busyRetryDelayMs(3, 300, () => 1)).toBe(1_200_000);
    expect(busyRetryDelayMs(3, 300, () => 0)).toBe(150_000);
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
