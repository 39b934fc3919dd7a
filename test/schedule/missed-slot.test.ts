import cron from "node-cron";
import { describe, expect, it } from "vitest";
import { findMissedSlot, MAX_LOOKBACK_MS } from "../../agent/schedule/missed-slot.ts";
import { validateCron } from "../../agent/schedule/scheduler.ts";

const at = (iso: string) => new Date(iso);
const daily0230 = (d: Date) => d.getUTCHours() === 2 && d.getUTCMinutes() === 30;

describe("missed schedule slots", () => {
  it("finds the slot that passed while the guest was off", () => {
    expect(findMissedSlot(daily0230, at("2026-11-26T12:00:00Z"), at("2026-11-27T08:00:00Z"))).toEqual(
      at("2026-11-27T02:30:00Z"),
    );
  });

  it("reports the newest of several missed slots, once", () => {
    expect(findMissedSlot(daily0230, at("2026-11-20T12:00:00Z"), at("2026-11-27T08:00:00Z"))).toEqual(
      at("2026-11-27T02:30:00Z"),
    );
  });

  it("finds nothing when the last handled slot is the latest one", () => {
    expect(findMissedSlot(daily0230, at("2026-11-27T02:30:00Z"), at("2026-11-27T08:00:00Z"))).toBeUndefined();
  });

  it("does not look back further than a month", () => {
    const yearly = (d: Date) => d.getTime() === at("2026-01-01T00:00:00Z").getTime();
    const now = at("2026-11-27T08:00:00Z");
    expect(findMissedSlot(yearly, at("2025-06-01T00:00:00Z"), now)).toBeUndefined();
    expect(now.getTime() - MAX_LOOKBACK_MS).toBeGreaterThan(at("2026-01-01T00:00:00Z").getTime());
  });

  it("agrees with node-cron's own matcher for the configured expression", () => {
    const task = cron.createTask("30 2 * * *", () => {}, { timezone: "UTC" });
    expect(
      findMissedSlot((d) => task.match(d), at("2026-11-26T03:00:00Z"), at("2026-11-27T03:00:00Z")),
    ).toEqual(at("2026-11-27T02:30:00Z"));
    void task.destroy();
  });
});

describe("cron validation", () => {
  it("accepts five fields and refuses seconds or garbage with the reason", () => {
    expect(validateCron("30 2 * * *")).toBeUndefined();
    expect(validateCron("0 30 2 * * *")).toMatch(/5 fields/);
    expect(validateCron("61 2 * * *")).toMatch(/minute/i);
  });
});
