import { describe, expect, it } from "vitest";
import {
  holdOffDrawMs,
  nextQuietCheckMs,
  quietLookAheadMs,
  quietStorageTiming,
  storageLooksBusy,
  waitForQuietStorage,
} from "../../agent/backup/quiet-storage.ts";

describe("a quiet backup storage before quiescing", () => {
  it("scales its timing with the busy retry base: 2 s looks, 7.5 s re-checks and 10 minutes at the default", () => {
    expect(quietStorageTiming(60)).toEqual({
      sampleMs: 2_000,
      recheckMs: 7_500,
      holdOffMs: 4_000,
      budgetMs: 600_000,
    });
    expect(quietStorageTiming(10)).toEqual({
      sampleMs: 10_000 / 30,
      recheckMs: 1_250,
      holdOffMs: 10_000 / 15,
      budgetMs: 100_000,
    });
    // A long base does not make one look hold a backup back longer.
    expect(quietStorageTiming(600).sampleMs).toBe(2_000);
  });

  it("draws the hold-off from 0 to 1.5 times the nominal, and looks ahead of an attempt by two samples and the nominal", () => {
    const t = quietStorageTiming(60);
    expect(holdOffDrawMs(t, () => 0)).toBe(0);
    expect(holdOffDrawMs(t, () => 0.5)).toBe(3_000);
    expect(holdOffDrawMs(t, () => 0.999_999)).toBe(6_000);
    expect(quietLookAheadMs(t)).toBe(8_000);
  });

  it("calls an archive's growth busy, and a log's, a shrink or an unreadable storage not", () => {
    expect(storageLooksBusy(1e9, 1e9 + 110e6, 1_000)).toBe(true);
    expect(storageLooksBusy(1e9, 1e9 + 5e6, 1_000)).toBe(true);
    expect(storageLooksBusy(1e9, 1e9 + 4e6, 1_000)).toBe(false);
    expect(storageLooksBusy(1e9, 1e9 + 20e6, 5_000)).toBe(false);
    expect(storageLooksBusy(1e9, 0.9e9, 1_000)).toBe(false);
    expect(storageLooksBusy(undefined, 1e9, 1_000)).toBe(false);
    expect(storageLooksBusy(1e9, undefined, 1_000)).toBe(false);
  });

  it("re-checks after the nominal wait ± 50 %, never past the chain's budget, and not at all once it is spent", () => {
    const t = { sampleMs: 5_000, recheckMs: 10_000, holdOffMs: 4_000, budgetMs: 600_000 };
    expect(nextQuietCheckMs(t, 0, () => 0)).toBe(5_000);
    expect(nextQuietCheckMs(t, 0, () => 1)).toBe(15_000);
    expect(nextQuietCheckMs(t, 595_000, () => 1)).toBe(5_000);
    expect(nextQuietCheckMs(t, 600_000, () => 0.5)).toBeUndefined();
  });

  it("backs the re-checks off after repeated busy checks: doubled after 4, four times after 8, no further", () => {
    const t = { sampleMs: 2_000, recheckMs: 7_500, holdOffMs: 4_000, budgetMs: 600_000 };
    const at = (busyChecks: number) => nextQuietCheckMs(t, 0, () => 0.5, busyChecks);
    expect([1, 4, 5, 8, 9, 12, 13, 40].map(at)).toEqual([
      7_500, 7_500, 15_000, 15_000, 30_000, 30_000, 30_000, 30_000,
    ]);
  });

  // Looks a few ms apart: one 1 ms apart can read the same Date.now() twice, a look of no time.
  const timing = { sampleMs: 5, recheckMs: 2, holdOffMs: 2, budgetMs: 10_000 };
  const never = new AbortController().signal;

  it("goes at the first check that sees no growth, after the checks that saw some", async () => {
    // An archive writes for three checks (two looks each), then the storage stands still: one quiet check,
    // then the one that confirms it after the hold-off.
    const used = [0, 50e6, 100e6, 150e6, 200e6, 250e6, 250e6, 250e6, 250e6, 250e6, 250e6, 250e6];
    let looks = 0;
    const busy: number[] = [];
    const wait = await waitForQuietStorage({
      timing,
      used: async () => used[looks++],
      waitedMs: 0,
      signal: never,
      onBusy: (growth) => busy.push(growth),
    });
    expect(looks).toBe(10);
    expect(wait.ended).toBe("quiet");
    expect(busy).toHaveLength(3);
    for (const g of busy) expect(g).toBeGreaterThan(1e6);
  });

  it("ahead of an attempt's time, confirms a quiet storage with a check that ends at that time, not before", async () => {
    const lookAt: number[] = [];
    const until = Date.now() + 150;
    const wait = await waitForQuietStorage({
      timing,
      used: async () => {
        lookAt.push(Date.now());
        return 250e6;
      },
      waitedMs: 0,
      until,
      signal: never,
      // A drawn hold-off would be 0 to 3 ms: the confirmation would end some 140 ms before the attempt's time.
      random: () => 0.5,
    });
    expect(wait.ended).toBe("quiet");
    expect(lookAt).toHaveLength(4);
    expect(lookAt[3]).toBeGreaterThanOrEqual(until - 1);
    // The look ahead of the attempt's time is not a wait of the chain's budget.
    expect(wait.waitedMs).toBeLessThan(100);
  });

  it("ahead of an attempt whose time has come (the look began late), still holds off half the nominal", async () => {
    const lookAt: number[] = [];
    const wait = await waitForQuietStorage({
      timing: { sampleMs: 5, recheckMs: 2, holdOffMs: 80, budgetMs: 10_000 },
      used: async () => {
        lookAt.push(Date.now());
        return 250e6;
      },
      waitedMs: 0,
      until: Date.now(),
      signal: never,
    });
    expect(wait.ended).toBe("quiet");
    expect(lookAt).toHaveLength(4);
    // Two bare checks would span only two samples of another guest's hand-over window.
    expect(lookAt[2]! - lookAt[1]!).toBeGreaterThanOrEqual(39);
  });

  it("does not go on one quiet check: the other guest's archive that starts in the hold-off is waited for", async () => {
    // A quiet check (the hand-over window: the other guest holds the lock, its archive has no bytes yet), then
    // growth at the confirming check, then quiet twice.
    const used = [0, 0, 0, 100e6, 200e6, 200e6, 200e6, 200e6, 200e6];
    let looks = 0;
    const busy: number[] = [];
    const wait = await waitForQuietStorage({
      timing,
      used: async () => used[looks++],
      waitedMs: 0,
      signal: never,
      onBusy: (growth) => busy.push(growth),
    });
    expect(looks).toBe(8);
    expect(busy).toHaveLength(1);
    expect(wait.ended).toBe("quiet");
  });

  it("goes once the chain's budget is spent, however long the storage keeps growing (an unrelated writer)", async () => {
    let used = 0;
    let clock = 0;
    const { waitedMs: waited, ended } = await waitForQuietStorage({
      timing: { sampleMs: 1, recheckMs: 2, holdOffMs: 2, budgetMs: 3_000 },
      used: async () => {
        clock += 500;
        used += 100e6;
        return used;
      },
      waitedMs: 1_000,
      signal: never,
      now: () => clock,
    });
    // Each look moves the clock by 500 ms: the checks stop once 1 s before and these reach 3 s.
    expect(waited).toBeGreaterThanOrEqual(2_000);
    expect(waited).toBeLessThan(3_000);
    expect(ended).toBe("budget");
  });

  it("does not wait on a storage it cannot read, nor after an abort", async () => {
    let looks = 0;
    await waitForQuietStorage({
      timing,
      used: async () => {
        looks++;
        throw new Error("403");
      },
      waitedMs: 0,
      signal: never,
    });
    expect(looks).toBe(1);
    const aborted = new AbortController();
    aborted.abort();
    looks = 0;
    await waitForQuietStorage({
      timing,
      used: async () => ++looks * 100e6,
      waitedMs: 0,
      signal: aborted.signal,
    });
    expect(looks).toBe(0);
  });
});
