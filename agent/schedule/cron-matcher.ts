/**
 * A matcher for the plain cron grammar (numbers, names, `*`, ranges, steps, lists; `?` for a day field) with
 * node-cron 4's meaning, for wall-clock minutes read as UTC (slots.ts). node-cron's own matcher formats every
 * date it is asked about through Intl.DateTimeFormat, and the first such formatter maps ICU's locale and zone
 * data into the process: 8 MiB of an idle daemon's resident set (README, Measured) to answer "is 02:30 a
 * slot". This one reads the UTC fields of the date. node-cron stays the validator and the matcher of its
 * extensions (L, W, #): for those `plainCronMatcher` returns undefined. test/schedule/cron-matcher.test.ts
 * checks it against node-cron's matcher on generated expressions.
 */

type Bounds = { min: number; max: number; names?: readonly string[] };

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const MONTH_NAMES = [
  "january",
  "february",
  "march",
  "april",
  "may",
  "june",
  "july",
  "august",
  "september",
  "october",
  "november",
  "december",
];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const DAY_NAMES = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

// minute, hour, day of month, month, day of week (7 is Sunday too, as in node-cron and vixie cron).
const FIELDS: readonly Bounds[] = [
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  { min: 1, max: 12, names: [...MONTHS, ...MONTH_NAMES] },
  { min: 0, max: 6, names: [...DAYS, ...DAY_NAMES] },
];

const ITEM_RE = /^(?:(\*)|([a-z]+|\d+)(?:-([a-z]+|\d+))?)(?:\/(\d+))?$/;

/** A number or a name of the field (short or long: months from 1, days from 0), undefined for anything else. */
function value(token: string, bounds: Bounds): number | undefined {
  if (/^\d+$/.test(token)) return Number(token);
  const names = bounds.names ?? [];
  const i = names.indexOf(token);
  return i < 0 ? undefined : (i % (names.length / 2)) + bounds.min;
}

/**
 * The values of one field, or undefined outside the plain grammar. As node-cron: `*` is the field's whole
 * range, a range may wrap (`22-2`), a step applies to a range or `*` only, `?` is `*` in the day fields.
 */
function expand(field: string, bounds: Bounds, dayField: boolean): Set<number> | undefined {
  const out = new Set<number>();
  for (const item of (dayField && field === "?" ? "*" : field).toLowerCase().split(",")) {
    const m = ITEM_RE.exec(item);
    if (!m) return undefined;
    const [, star, fromText, toText, stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    const from = star ? bounds.min : value(fromText!, bounds);
    const to = star ? bounds.max : toText === undefined ? from : value(toText, bounds);
    if (from === undefined || to === undefined || step < 1) return undefined;
    if (!star && toText === undefined && stepText !== undefined) return undefined; // `5/15`: node-cron's to judge
    const size = bounds.max - bounds.min + 1;
    const span = from <= to ? to - from : (((to - from) % size) + size) % size;
    for (let offset = 0; offset <= span; offset += step) {
      const v = from + offset;
      out.add(from <= to || v <= bounds.max ? v : v - size);
    }
  }
  return out;
}

/**
 * Whether a 5-field expression matches a date's UTC minute, hour, day, month and weekday (node-cron's
 * meaning: day of month AND day of week), or undefined when the expression is outside the plain grammar.
 */
export function plainCronMatcher(expression: string): ((date: Date) => boolean) | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) return undefined;
  const sets = fields.map((f, i) => expand(f, FIELDS[i]!, i === 2 || i === 4));
  if (sets.some((s) => s === undefined)) return undefined;
  const [minutes, hours, days, months, weekdays] = sets as Set<number>[];
  if (weekdays!.has(7)) weekdays!.add(0);
  return (date) =>
    minutes!.has(date.getUTCMinutes()) &&
    hours!.has(date.getUTCHours()) &&
    days!.has(date.getUTCDate()) &&
    months!.has(date.getUTCMonth() + 1) &&
    weekdays!.has(date.getUTCDay());
}
