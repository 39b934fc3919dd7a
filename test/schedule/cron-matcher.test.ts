import fc from "fast-check";
import cron from "node-cron";
import { afterEach, describe, expect, it } from "vitest";
import { plainCronMatcher } from "../../agent/schedule/cron-matcher.ts";
import { scheduleSlots } from "../../agent/schedule/slots.ts";

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const LONG_MONTHS = ["january", "february", "march", "april", "june", "july", "august", "september"];
const LONG_DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/** One field of the plain grammar: `*`, a value, a range (wrapping too), each with an optional step; lists. */
function field(min: number, max: number, names: string[] = []): fc.Arbitrary<string> {
  const token = fc.oneof(
    fc.integer({ min, max }).map(String),
    ...(names.length > 0 ? [fc.constantFrom(...names, ...names.map((n) => n.toUpperCase()))] : []),
  );
  const item = fc.oneof(
    fc.constant("*"),
    token,
    fc.tuple(token, token).map(([a, b]) => `${a}-${b}`),
    fc
      .tuple(
        fc.oneof(
          fc.constant("*"),
          fc.tuple(token, token).map(([a, b]) => `${a}-${b}`),
        ),
        fc.integer({ min: 1, max: max + 1 }),
      )
      .map(([r, s]) => `${r}/${s}`),
  );
  return fc.array(item, { minLength: 1, maxLength: 3 }).map((items) => items.join(","));
}

const expression = fc
  .tuple(
    field(0, 59),
    field(0, 23),
    field(1, 31),
    field(1, 12, [...MONTHS, ...LONG_MONTHS]),
    field(0, 7, [...DAYS, ...LONG_DAYS]),
  )
  .map((fields) => fields.join(" "));

/** node-cron's own matcher, as slots.ts used it for every expression before. */
function nodeCronMatcher(expr: string): { match: (date: Date) => boolean; [Symbol.dispose]: () => void } {
  const task = cron.createTask(expr, () => {}, { timezone: "UTC" });
  return { match: (date) => task.match(date), [Symbol.dispose]: () => void task.destroy() };
}

describe("the plain cron matcher", () => {
  it("agrees with node-cron's matcher on every expression of the plain grammar node-cron accepts", () => {
    fc.assert(
      fc.property(
        expression,
        fc.array(fc.integer({ min: Date.UTC(2024, 0, 1) / 60_000, max: Date.UTC(2030, 0, 1) / 60_000 }), {
          minLength: 20,
          maxLength: 20,
        }),
        (expr, minutes) => {
          fc.pre(cron.validate(expr));
          const plain = plainCronMatcher(expr);
          expect(plain, expr).toBeDefined();
          using theirs = nodeCronMatcher(expr);
          for (const m of minutes) {
            const date = new Date(m * 60_000);
            expect(plain!(date), `${expr} at ${date.toISOString()}`).toBe(theirs.match(date));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("agrees on the minutes an expression matches, not only on random ones", () => {
    const cases = [
      "30 2 * * *",
      "*/15 9-17 * * mon-fri",
      "0 22-2/2 * * *",
      "0 0 1 jan,jul *",
      "5 4 * * 7",
      "0 0 ? * SUN",
    ];
    for (const expr of cases) {
      const plain = plainCronMatcher(expr)!;
      using theirs = nodeCronMatcher(expr);
      const from = Date.UTC(2026, 0, 1) / 60_000;
      let matched = 0;
      for (let m = from; m < from + 14 * 24 * 60; m++) {
        const date = new Date(m * 60_000);
        const ours = plain(date);
        if (ours) matched++;
        if (ours !== theirs.match(date)) expect.fail(`${expr} at ${date.toISOString()}`);
      }
      expect(matched, expr).toBeGreaterThan(0);
    }
  });

  it("leaves node-cron's extensions and anything else outside the plain grammar to node-cron", () => {
    for (const expr of [
      "0 0 L * *",
      "0 0 15W * *",
      "0 0 * * 1#2",
      "0 0 * * 5L",
      "5/15 * * * *",
      "0 0 * *",
      "@daily",
    ]) {
      expect(plainCronMatcher(expr), expr).toBeUndefined();
    }
  });
});

describe("slots in the guest's own zone", () => {
  const saved = process.env.TZ;
  afterEach(() => {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  });

  // Without `timezone` the slots are read through Date's local fields (no Intl); in the zone the process runs
  // in they must be what the same zone named through Intl gives, daylight-saving days included.
  it.each(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])(
    "are those of the same zone named explicitly (%s, across both daylight-saving changes of 2026)",
    (zone) => {
      process.env.TZ = zone;
      // Spring and autumn on both hemispheres: 2026-03-01 to 04-10 and 09-25 to 11-05.
      const windows = [
        ["2026-03-01T00:00:00Z", "2026-04-10T00:00:00Z"],
        ["2026-09-25T00:00:00Z", "2026-11-05T00:00:00Z"],
      ].map(([from, to]) => [new Date(from!), new Date(to!)] as const);
      for (const expr of ["30 2 * * *", "15 * * * *", "0,30 1-3 * * *"]) {
        for (const [from, to] of windows) {
          const local = scheduleSlots({ cron: expr }, from, to).map((d) => d.toISOString());
          const named = scheduleSlots({ cron: expr, timezone: zone }, from, to).map((d) => d.toISOString());
          expect(local.length, `${zone} ${expr}`).toBeGreaterThan(30);
          expect(local, `${zone} ${expr} from ${from.toISOString()}`).toEqual(named);
        }
      }
    },
  );
});
