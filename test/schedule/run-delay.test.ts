import { describe, expect, it } from "vitest";
import { MAX_LEARNED_DELAY_MS, runDelayMs } from "../../agent/schedule/run-delay.ts";

describe("a scheduled run's delay", () => {
  it("is random within the jitter window when nothing was learned", () => {
    expect(runDelayMs({ jitterSeconds: 900, learned: undefined, random: () => 0.25 })).toBe(225_000);
    expect(runDelayMs({ jitterSeconds: 0, learned: undefined, random: () => 0.9 })).toBe(0);
  });

  it("is the learned delay under the same jitter window, also past the window (a retry got the node)", () => {
    const learned = { ms: 1_000_000, jitter_seconds: 900 };
    expect(runDelayMs({ jitterSeconds: 900, learned, random: () => 0.25 })).toBe(1_000_000);
  });

  it("draws afresh under a changed window or after a delay beyond the bound", () => {
    expect(
      runDelayMs({ jitterSeconds: 60, learned: { ms: 500_000, jitter_seconds: 900 }, random: () => 0.5 }),
    ).toBe(30_000);
    const tooLate = { ms: MAX_LEARNED_DELAY_MS + 1, jitter_seconds: 900 };
    expect(runDelayMs({ jitterSeconds: 900, learned: tooLate, random: () => 0.5 })).toBe(450_000);
  });
});
