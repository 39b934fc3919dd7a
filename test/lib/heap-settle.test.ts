import { constants, PerformanceObserver } from "node:perf_hooks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { heapSettler, settleHeapSoon } from "../../agent/lib/heap-settle.ts";

afterEach(() => {
  vi.useRealTimers();
});

describe("heap settler", () => {
  it("runs its collections apart, then stops; called again, it starts the whole series again", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const collect = vi.fn();
    const settle = heapSettler({ collect, collections: 3, apartMs: 10_000 });

    settle();
    vi.advanceTimersByTime(9_999);
    expect(collect).toHaveBeenCalledTimes(0);
    vi.advanceTimersByTime(1);
    expect(collect).toHaveBeenCalledTimes(1);
    // Another operation ended: its garbage needs the whole series, not the two left of the first.
    settle();
    vi.advanceTimersByTime(60_000);
    expect(collect).toHaveBeenCalledTimes(4);
  });

  it("forces full collections of V8's heap, without a gc() in this context's globals", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const forced: number[] = [];
    const seen = new Promise<void>((resolve) => {
      const observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          const { kind, flags } = (e as unknown as { detail: { kind: number; flags: number } }).detail;
          if (
            kind === constants.NODE_PERFORMANCE_GC_MAJOR &&
            flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED
          )
            forced.push(kind);
        }
        if (forced.length > 0) {
          observer.disconnect();
          resolve();
        }
      });
      observer.observe({ entryTypes: ["gc"] });
    });
    settleHeapSoon();
    vi.advanceTimersByTime(10_000);
    vi.useRealTimers();
    await seen;
    expect(forced.length).toBeGreaterThan(0);
    expect("gc" in globalThis).toBe(false);
  });
});
