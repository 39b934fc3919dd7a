import cron from "node-cron";

/** Checks a cron expression the way the scheduler will use it; the message names the bad field. */
export function validateCron(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) {
    return `must have 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  }
  const detail = cron.validateDetailed(expression);
  if (!detail.valid) return detail.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  return undefined;
}

/**
 * Checks a time zone the way the scheduler will use it: the slot computation formats through
 * Intl.DateTimeFormat, which throws RangeError for a zone it does not know (node-cron did so only in start()).
 */
export function validateTimezone(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    return undefined;
  } catch {
    return `unknown time zone "${timezone}"; use an IANA name such as Europe/Budapest or UTC`;
  }
}
