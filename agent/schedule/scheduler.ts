import cron, { type ScheduledTask } from "node-cron";
import { z } from "zod";
import { AgentError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import { findMissedSlot } from "./missed-slot.ts";

export interface ScheduleConfig {
  cron: string;
  timezone?: string | undefined;
  jitter_seconds: number;
  missed: "run" | "skip";
}

/** Why a scheduled backup starts: its slot, or the catch-up for a slot missed while the guest was off. */
export type ScheduledRunReason = { kind: "slot"; slot: Date } | { kind: "missed"; slot: Date };

const stateSchema = z.object({ last_slot: z.iso.datetime() });

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
 * Checks a time zone the way the scheduler will use it: node-cron and the slot computation both format
 * through Intl.DateTimeFormat, which throws RangeError for a zone it does not know.
 */
export function validateTimezone(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    return undefined;
  } catch {
    return `unknown time zone "${timezone}"; use an IANA name such as Europe/Budapest or UTC`;
  }
}

/**
 * Runs `onRun` on the configured cron schedule, each run delayed by a random jitter (node-cron's
 * maxRandomDelay) so that a fleet does not hit one node at once. Overlap is impossible twice over:
 * node-cron's noOverlap, and the backup service's own lock (a second request joins the running backup).
 *
 * Missed-run policy: the time of the last slot is persisted; at start, if a slot passed since then while
 * the agent was not running (guest off, agent stopped), `missed: run` starts ONE catch-up run (after the
 * jitter), `missed: skip` just waits for the next slot. On the very first start nothing counts as missed.
 */
export class Scheduler {
  #task: ScheduledTask | undefined;
  readonly #config: ScheduleConfig;
  readonly #statePath: string;
  readonly #log: Logger;
  readonly #onRun: (reason: ScheduledRunReason) => Promise<void>;
  #catchUp: NodeJS.Timeout | undefined;

  constructor(options: {
    config: ScheduleConfig;
    statePath: string;
    log: Logger;
    onRun: (reason: ScheduledRunReason) => Promise<void>;
  }) {
    const problem = validateCron(options.config.cron);
    if (problem) {
      throw new AgentError("config_invalid", `schedule.cron: ${problem}`, {
        hint: 'e.g. "30 2 * * *" for 02:30 daily',
      });
    }
    this.#config = options.config;
    this.#statePath = options.statePath;
    this.#log = options.log;
    this.#onRun = options.onRun;
  }

  async start(now = new Date()): Promise<void> {
    const task = cron.createTask(this.#config.cron, (ctx) => this.#fire({ kind: "slot", slot: ctx.date }), {
      name: "backup",
      noOverlap: true,
      maxRandomDelay: this.#config.jitter_seconds * 1000,
      ...(this.#config.timezone ? { timezone: this.#config.timezone } : {}),
    });
    this.#task = task;
    const state = await readJsonFile(this.#statePath, stateSchema);
    if (!state) {
      await this.#remember(now);
    } else {
      const missed = findMissedSlot((d) => task.match(d), new Date(state.last_slot), now);
      if (missed && this.#config.missed === "run") {
        const delay = Math.floor(Math.random() * this.#config.jitter_seconds * 1000);
        this.#log.info(
          { slot: missed.toISOString(), delayMs: delay },
          "a scheduled backup was missed while the agent was not running; catching up once",
        );
        this.#catchUp = setTimeout(() => void this.#fire({ kind: "missed", slot: missed }), delay);
      } else if (missed) {
        this.#log.info(
          { slot: missed.toISOString() },
          "a scheduled backup was missed while the agent was not running; policy is skip",
        );
        await this.#remember(now);
      }
    }
    await task.start();
  }

  nextRun(): Date | null {
    return this.#task?.getNextRun() ?? null;
  }

  async stop(): Promise<void> {
    clearTimeout(this.#catchUp);
    await this.#task?.destroy();
    this.#task = undefined;
  }

  async #fire(reason: ScheduledRunReason): Promise<void> {
    await this.#remember(reason.slot);
    try {
      await this.#onRun(reason);
    } catch (err) {
      // The run reports its own failure; the schedule keeps going.
      this.#log.error({ err, reason: reason.kind }, "scheduled backup failed");
    }
  }

  #remember(slot: Date): Promise<void> {
    return writeJsonDurable(this.#statePath, { last_slot: slot.toISOString() });
  }
}
