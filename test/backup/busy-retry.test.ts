import { describe, expect, it } from "vitest";
import { VzdumpLockBusyError } from "../../agent/backup/backup-task.ts";
import { busyRetryDelayMs } from "../../agent/backup/busy-retry.ts";

describe("busy retry", () => {
  it("waits the base ± 50 %, the same spread for every attempt (no growth)", () => {
    expect(busyRetryDelayMs(60, () => 0)).toBe(30_000);
    expect(busyRetryDelayMs(60, () => 0.5)).toBe(60_000);
    expect(busyRetryDelayMs(60, () => 1)).toBe(90_000);
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
