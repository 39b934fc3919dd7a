import { describe, expect, it } from "vitest";
import { isFixedTime, nextSlot, scheduleSlots } from "../../agent/schedule/slots.ts";

const at = (iso: string) => new Date(iso);
const iso = (dates: Date[]) => dates.map((d) => d.toISOString());
const berlin = { cron: "30 2 * * *", timezone: "Europe/Berlin" };

describe("schedule slots", () => {
  it("lists a daily slot once per day at the local time", () => {
    expect(iso(scheduleSlots(berlin, at("2026-11-25T00:00:00Z"), at("2026-11-28T00:00:00Z")))).toEqual([
      "2026-11-25T01:30:00.000Z",
      "2026-11-26T01:30:00.000Z",
      "2026-11-27T01:30:00.000Z",
    ]);
  });

  it("runs a daily time that the spring-forward jump skips once, at the first minute after the gap (03:00 local)", () => {
    // 2026-03-29 in Berlin: 01:59 CET is followed by 03:00 CEST; 02:30 does not exist.
    expect(iso(scheduleSlots(berlin, at("2026-03-28T00:00:00Z"), at("2026-03-31T00:00:00Z")))).toEqual([
      "2026-03-28T01:30:00.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-30T00:30:00.000Z",
    ]);
  });

  it("runs a daily time that the fall-back day repeats only the first time", () => {
    // 2026-10-25 in Berlin: 02:00–02:59 is shown twice (CEST, then CET).
    expect(iso(scheduleSlots(berlin, at("2026-10-24T00:00:00Z"), at("2026-10-27T00:00:00Z")))).toEqual([
      "2026-10-24T00:30:00.000Z",
      "2026-10-25T00:30:00.000Z",
      "2026-10-26T01:30:00.000Z",
    ]);
  });

  it("does not run the repeated time when the range starts between its two occurrences", () => {
    expect(scheduleSlots(berlin, at("2026-10-25T01:00:00Z"), at("2026-10-25T12:00:00Z"))).toEqual([]);
  });

  it("runs two fixed times that both fall into the gap once, not twice", () => {
    const spec = { cron: "0,30 2 * * *", timezone: "Europe/Berlin" };
    expect(iso(scheduleSlots(spec, at("2026-03-29T00:00:00Z"), at("2026-03-29T12:00:00Z")))).toEqual([
      "2026-03-29T01:00:00.000Z",
    ]);
  });

  it("runs an hourly schedule on the clock as it is: in both repeated hours, and not at a skipped 02:30", () => {
    const hourly = { cron: "30 * * * *", timezone: "Europe/Berlin" };
    // Fall-back: 02:30 CEST (00:30Z) and 02:30 CET (01:30Z) both run.
    expect(iso(scheduleSlots(hourly, at("2026-10-25T00:00:00Z"), at("2026-10-25T02:00:00Z")))).toEqual([
      "2026-10-25T00:30:00.000Z",
      "2026-10-25T01:30:00.000Z",
    ]);
    // Spring-forward: 01:30 CET (00:30Z) is followed by 03:30 CEST (01:30Z), nothing in between.
    expect(iso(scheduleSlots(hourly, at("2026-03-29T00:00:00Z"), at("2026-03-29T02:00:00Z")))).toEqual([
      "2026-03-29T00:30:00.000Z",
      "2026-03-29T01:30:00.000Z",
    ]);
  });

  it("excludes the start of the range and includes its end", () => {
    const utc = { cron: "30 2 * * *", timezone: "UTC" };
    expect(scheduleSlots(utc, at("2026-11-27T02:30:00Z"), at("2026-11-27T08:00:00Z"))).toEqual([]);
    expect(scheduleSlots(utc, at("2026-11-27T02:00:00Z"), at("2026-11-27T02:30:00Z"))).toEqual([
      at("2026-11-27T02:30:00Z"),
    ]);
  });

  it("finds the next slot, including the shifted one on the spring-forward day", () => {
    expect(nextSlot(berlin, at("2026-03-28T12:00:00Z"))).toEqual(at("2026-03-29T01:00:00Z"));
    expect(nextSlot({ cron: "0 3 1 * *", timezone: "UTC" }, at("2026-11-27T12:00:00Z"), 40)).toEqual(
      at("2026-12-01T03:00:00Z"),
    );
  });

  it("skips days by the date fields alone without losing a slot the minute scan finds", () => {
    // The day filter only saves work: every answer must be the first slot of a plain scan of the horizon.
    const cases = [
      { spec: { cron: "30 2 29 3 *", timezone: "Europe/Berlin" }, after: "2026-03-01T00:00:00Z" }, // skipped 02:30
      { spec: { cron: "30 2 * * 0", timezone: "Europe/Berlin" }, after: "2026-10-20T00:00:00Z" }, // repeated hour
      { spec: { cron: "30 0 * * 0", timezone: "America/Santiago" }, after: "2026-09-01T00:00:00Z" }, // jump at 00:00
      { spec: { cron: "59 23 31 * *", timezone: "Pacific/Auckland" }, after: "2026-09-01T00:00:00Z" },
      { spec: { cron: "0 3 29 2 *", timezone: "UTC" }, after: "2027-12-31T00:00:00Z" }, // none within 40 days
    ];
    for (const { spec, after } of cases) {
      const from = at(after);
      const [first] = scheduleSlots(spec, from, new Date(from.getTime() + 40 * 86_400_000));
      expect(nextSlot(spec, from, 40), `${spec.cron} ${spec.timezone}`).toEqual(first);
    }
  });

  it("tells a fixed time of day from a wildcard job the way vixie cron does", () => {
    expect(isFixedTime("30 2 * * *")).toBe(true);
    expect(isFixedTime("0 1,3 * * 1-5")).toBe(true);
    expect(isFixedTime("30 * * * *")).toBe(false);
    expect(isFixedTime("*/15 2 * * *")).toBe(false);
  });
});
