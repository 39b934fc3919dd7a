import { describe, expect, it } from "vitest";
import { validateCron } from "../../agent/lib/cron.ts";
import { findMissedSlot, MAX_LOOKBACK_MS } from "../../agent/schedule/missed-slot.ts";

const at = (iso: string) => new Date(iso);
const daily0230 = { cron: "30 2 * * *", timezone: "UTC" };

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
    const yearly = { cron: "0 0 1 1 *", timezone: "UTC" };
    const now = at("2026-11-27T08:00:00Z");
    expect(findMissedSlot(yearly, at("2025-06-01T00:00:00Z"), now)).toBeUndefined();
    expect(now.getTime() - MAX_LOOKBACK_MS).toBeGreaterThan(at("2026-01-01T00:00:00Z").getTime());
  });

  it("counts the slot a spring-forward gap moved to 03:00 local as missed", () => {
    const berlin = { cron: "30 2 * * *", timezone: "Europe/Berlin" };
    expect(findMissedSlot(berlin, at("2026-03-28T12:00:00Z"), at("2026-03-29T08:00:00Z"))).toEqual(
      at("2026-03-29T01:00:00Z"),
    );
  });

  it("does not count the second 02:30 of the fall-back day as missed after the first one ran", () => {
    const berlin = { cron: "30 2 * * *", timezone: "Europe/Berlin" };
    expect(findMissedSlot(berlin, at("2026-10-25T00:30:00Z"), at("2026-10-25T08:00:00Z"))).toBeUndefined();
  });
});

describe("cron validation", () => {
  it("accepts five fields and refuses seconds or garbage with the reason", () => {
    expect(validateCron("30 2 * * *")).toBeUndefined();
    expect(validateCron("0 30 2 * * *")).toMatch(/5 fields/);
    expect(validateCron("61 2 * * *")).toMatch(/minute/i);
  });
});
