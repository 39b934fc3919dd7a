import { describe, expect, it } from "vitest";
import { MAX_LEARNED_DELAY_MS, runDelayMs, startsAtLearnedDelay } from "../../agent/schedule/run-delay.ts";

const DAY = 86_400_000;

describe("a scheduled run's delay", () => {
  it("is random within the jitter window when nothing was learned", () => {
    expect(runDelayMs({ jitterSeconds: 900, learned: undefined, slotGapMs: DAY, random: () => 0.25 })).toBe(
      225_000,
    );
  });

  it("is the learned delay under the same jitter window, also past the window (a retry got the node)", () => {
    const learned = { ms: 1_000_000, jitter_seconds: 900 };
    expect(runDelayMs({ jitterSeconds: 900, learned, slotGapMs: DAY, random: () => 0.25 })).toBe(1_000_000);
    expect(runDelayMs({ jitterSeconds: 900, learned, slotGapMs: undefined, random: () => 0.25 })).toBe(
      1_000_000,
    );
  });

  it("draws afresh under a changed window or after a delay beyond the bound", () => {
    const random = () => 0.5;
    const learned = { ms: 500_000, jitter_seconds: 900 };
    expect(runDelayMs({ jitterSeconds: 60, learned, slotGapMs: DAY, random })).toBe(30_000);
    const tooLate = { ms: MAX_LEARNED_DELAY_MS + 1, jitter_seconds: 900 };
    expect(runDelayMs({ jitterSeconds: 900, learned: tooLate, slotGapMs: DAY, random })).toBe(450_000);
  });

  it("draws afresh when the learned delay does not end well before the following slot (under half the gap)", () => {
    const random = () => 0.5;
    const learned = { ms: 1_900_000, jitter_seconds: 900 };
    // */30: a 30-minute gap; 1,900,000 ms would run past the next slot and have it skipped.
    expect(runDelayMs({ jitterSeconds: 900, learned, slotGapMs: 1_800_000, random })).toBe(450_000);
    const half = { ms: 900_000, jitter_seconds: 900 };
    expect(runDelayMs({ jitterSeconds: 900, learned: half, slotGapMs: 1_800_000, random })).toBe(450_000);
    const under = { ms: 899_999, jitter_seconds: 900 };
    expect(runDelayMs({ jitterSeconds: 900, learned: under, slotGapMs: 1_800_000, random })).toBe(899_999);
  });

  it("draws within half the gap to the following slot when the jitter window is longer (*/10 with 900 s)", () => {
    const tenMinutes = 600_000;
    const draw = (random: number) =>
      runDelayMs({ jitterSeconds: 900, learned: undefined, slotGapMs: tenMinutes, random: () => random });
    expect(draw(0.5)).toBe(150_000);
    expect(draw(0.999_999)).toBeLessThan(tenMinutes / 2);
    // No following slot within the horizon: the whole window.
    expect(
      runDelayMs({ jitterSeconds: 900, learned: undefined, slotGapMs: undefined, random: () => 0.5 }),
    ).toBe(450_000);
  });

  it("is 0 under a jitter of 0, whatever was learned: the operator wants the exact time", () => {
    const learned = { ms: 340_000, jitter_seconds: 0 };
    expect(runDelayMs({ jitterSeconds: 0, learned, slotGapMs: DAY, random: () => 0.9 })).toBe(0);
    expect(runDelayMs({ jitterSeconds: 0, learned: undefined, slotGapMs: DAY, random: () => 0.9 })).toBe(0);
  });

  it("says whether the run starts at its learned place: the same window, within the bounds, a jitter", () => {
    const learned = { ms: 340_000, jitter_seconds: 900 };
    const at = (o: Partial<Parameters<typeof startsAtLearnedDelay>[0]>) =>
      startsAtLearnedDelay({ jitterSeconds: 900, learned, slotGapMs: DAY, ...o });
    expect(at({})).toBe(true);
    expect(at({ learned: undefined })).toBe(false);
    expect(at({ jitterSeconds: 60 })).toBe(false);
    expect(at({ slotGapMs: 600_000 })).toBe(false);
    expect(at({ learned: { ms: 340_000, jitter_seconds: 0 }, jitterSeconds: 0 })).toBe(false);
  });
});
