import cron from "node-cron";
import { plainCronMatcher } from "./cron-matcher.ts";

/** What decides when a backup is due: a 5-field cron expression, read in `timezone` (or the guest's zone). */
export interface SlotSpec {
  cron: string;
  timezone?: string | undefined;
}

const MINUTE = 60_000;
const MINUTES_PER_DAY = 1440;
const DAY = MINUTES_PER_DAY * MINUTE;
/** More than any daylight-saving shift (1 h in Europe, 30 min on Lord Howe, 2 h historically). */
const SHIFT_WINDOW_MINUTES = 180;

/**
 * Vixie cron's distinction: a job with `*` in its minute or hour field runs on the clock as it is (twice in
 * a repeated hour, not in a skipped one); every other job is a fixed time of day.
 */
export function isFixedTime(expression: string): boolean {
  const [minute = "", hour = ""] = expression.trim().split(/\s+/);
  return !minute.includes("*") && !hour.includes("*");
}

/**
 * The slots of a schedule in (from, to], oldest first, as whole minutes. Pure apart from reading the zone
 * database.
 *
 * A fixed time of day runs at the first instant the local clock reaches it, which is Debian's (vixie) cron
 * rule for daylight-saving changes: when the clock jumps forward over it (02:30 on the spring-forward day
 * in Europe/Berlin) it runs once at the first minute after the jump (03:00 local); when the clock repeats
 * an hour (the fall-back day) it runs the first time only. node-cron's own matcher has neither: it matches
 * no minute on the spring-forward day and both 02:30s on the fall-back day.
 */
export function scheduleSlots(spec: SlotSpec, from: Date, to: Date): Date[] {
  // A matcher in UTC applied to wall-clock minutes (local time read as if it were UTC): that is the cron
  // expression in local time without any daylight-saving shift, so skipped local times can be asked about.
  const wallMatcher = utcMatcher(spec.cron);
  try {
    const matchesWall = (wall: number) => wallMatcher.match(new Date(wall * MINUTE));
    const wallMinute = wallClock(spec.timezone);
    const fixed = isFixedTime(spec.cron);
    const first = Math.floor(from.getTime() / MINUTE) + 1;
    const last = Math.floor(to.getTime() / MINUTE);
    // The latest wall minute the clock has shown: a fixed time at or below it has had its run.
    let shown = Number.NEGATIVE_INFINITY;
    for (let m = first - SHIFT_WINDOW_MINUTES; m < first; m++) shown = Math.max(shown, wallMinute(m));
    const slots: Date[] = [];
    for (let m = first; m <= last; m++) {
      const wall = wallMinute(m);
      if (fixed) {
        for (let w = Math.max(shown + 1, wall - SHIFT_WINDOW_MINUTES); w <= wall; w++) {
          if (matchesWall(w)) {
            slots.push(new Date(m * MINUTE));
            break;
          }
        }
      } else if (matchesWall(wall)) {
        slots.push(new Date(m * MINUTE));
      }
      shown = Math.max(shown, wall);
    }
    return slots;
  } finally {
    wallMatcher.close();
  }
}

/** The first slot after `after`, looking up to `horizonDays` ahead (one day at a time, so a daily schedule is cheap). */
export function nextSlot(spec: SlotSpec, after: Date, horizonDays = 31): Date | undefined {
  const days = dayFilter(spec);
  try {
    for (let day = 0; day < horizonDays; day++) {
      const from = new Date(after.getTime() + day * DAY);
      const to = new Date(from.getTime() + DAY);
      if (!days.mayHoldSlot(from, to)) continue;
      const [slot] = scheduleSlots(spec, from, to);
      if (slot) return slot;
    }
    return undefined;
  } finally {
    days.close();
  }
}

/**
 * Whether a 24-hour window can hold a slot at all, judged by the expression's date fields alone: the minute
 * scan costs a time-zone lookup per minute, and a monthly schedule would otherwise scan a month of minutes
 * (about a second) for every next-run question. Conservative: the local days it checks reach back and ahead
 * by the daylight-saving window, as scheduleSlots does.
 */
function dayFilter(spec: SlotSpec): { mayHoldSlot(from: Date, to: Date): boolean; close(): void } {
  const fields = spec.cron.trim().split(/\s+/);
  if (fields.length !== 5) return { mayHoldSlot: () => true, close: () => {} };
  // Every minute of a matching local day matches: node-cron's own day-of-month/weekday rule, hours ignored.
  const dateMatcher = utcMatcher(`* * ${fields.slice(2).join(" ")}`);
  const wallMinute = wallClock(spec.timezone);
  const wallDay = (at: Date, shiftMinutes: number) =>
    Math.floor((wallMinute(Math.floor(at.getTime() / MINUTE)) + shiftMinutes) / MINUTES_PER_DAY);
  return {
    mayHoldSlot(from, to) {
      const last = wallDay(to, SHIFT_WINDOW_MINUTES);
      for (let d = wallDay(from, -SHIFT_WINDOW_MINUTES); d <= last; d++) {
        if (dateMatcher.match(new Date(d * DAY))) return true;
      }
      return false;
    },
    close: () => dateMatcher.close(),
  };
}

/**
 * A cron expression matched against a date's UTC fields: the plain matcher (cron-matcher.ts), node-cron's for
 * its extensions (L, W, #), which loads ICU's data. `close` ends node-cron's task.
 */
function utcMatcher(expression: string): { match(date: Date): boolean; close(): void } {
  const plain = plainCronMatcher(expression);
  if (plain) return { match: plain, close: () => {} };
  const task = cron.createTask(expression, () => {}, { timezone: "UTC" });
  return { match: (date) => task.match(date), close: () => void task.destroy() };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * The wall-clock time at minute `m` (minutes since the epoch) in `timezone`, as minutes since the epoch read
 * as UTC. The guest's own zone is read through Date's local fields, which give what Intl.DateTimeFormat
 * without a timeZone gives (both use the process's default zone) without loading ICU's locale data; a named
 * zone needs Intl, and pays for it (README, Measured).
 */
function wallClock(timezone: string | undefined): (m: number) => number {
  if (timezone === undefined) {
    return (m) => {
      const d = new Date(m * MINUTE);
      return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes()) / MINUTE;
    };
  }
  let format = formatters.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      hourCycle: "h23",
    });
    formatters.set(timezone, format);
  }
  const f = format;
  return (m) => {
    const p: Record<string, number> = {};
    for (const part of f.formatToParts(m * MINUTE)) {
      if (part.type !== "literal") p[part.type] = Number(part.value);
    }
    return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!) / MINUTE;
  };
}
