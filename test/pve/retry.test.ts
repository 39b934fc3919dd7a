import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../agent/pve/retry.ts";

describe("pve retry backoff", () => {
  it("draws a full-jitter delay below the exponential bound and the cap", () => {
    expect(backoffDelay(1, 250, 4_000, () => 0.999)).toBe(249);
    expect(backoffDelay(3, 250, 4_000, () => 0.999)).toBe(999);
    expect(backoffDelay(10, 250, 4_000, () => 0.999)).toBe(3_996);
    expect(backoffDelay(10, 250, 4_000, () => 0)).toBe(0);
    expect(backoffDelay(2, 250, 4_000, () => 0.5)).toBe(250);
  });
});
