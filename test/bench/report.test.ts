import { describe, expect, it } from "vitest";
import { formatFigure, median, peakInWindow } from "./report.ts";

describe("benchmark report lines", () => {
  it("computes the ratio against the same-run baseline and prints the documented keys", () => {
    const line = JSON.parse(
      formatFigure("quiesce", { metric: "total", value: 300, unit: "ms", baseline: 600 }),
    );
    expect(line).toEqual({
      bench: "quiesce",
      metric: "total",
      value: 300,
      unit: "ms",
      baseline: 600,
      ratio: 0.5,
    });
  });

  it("prints null baseline and ratio when there is no comparison", () => {
    const line = JSON.parse(formatFigure("x", { metric: "rss", value: 1.23456, unit: "MiB" }));
    expect(line).toMatchObject({ value: 1.235, baseline: null, ratio: null });
  });

  it("takes the median of odd and even sample counts", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it("finds the busiest window of a given width among ascending timestamps", () => {
    expect(peakInWindow([], 1_000)).toBe(0);
    // 0, 900 and 999 fall in one second; 1000 starts the next one.
    expect(peakInWindow([0, 900, 999, 1_000, 1_500, 3_000], 1_000)).toBe(4);
    expect(peakInWindow([0, 2_000, 4_000], 1_000)).toBe(1);
  });
});
