import { describe, expect, it } from "vitest";
import { scheduledLook } from "../../agent/app/scheduled-backup.ts";

describe("which scheduled attempts look at the backup storage first", () => {
  it("none under jitter_seconds 0, the retries at the learned place, every attempt at a fresh draw", () => {
    expect(scheduledLook({ exactTime: true, atLearnedPlace: false })).toBe(false);
    expect(scheduledLook({ exactTime: true, atLearnedPlace: true })).toBe(false);
    expect(scheduledLook({ exactTime: false, atLearnedPlace: true })).toBe("retries");
    // Only this one begins ahead of its time (the daemon's scheduler lead): its first attempt looks.
    expect(scheduledLook({ exactTime: false, atLearnedPlace: false })).toBe(true);
  });
});
