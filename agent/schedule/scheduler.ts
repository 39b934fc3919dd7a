import { z } from "zod";
import { validateCron, validateTimezone } from "../lib/cron.ts";
import { AgentError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import { findMissedSlot } from "./missed-slot.ts";
import { isUsableLearnedDelay, type LearnedDelay, runDelayMs, startsAtLearnedDelay } from "./run-delay.ts";
import { nextSlot, type SlotSpec } from "./slots.ts";

export interface ScheduleConfig {
  cron: string;
  timezone?: string | undefined;
  jitter_seconds: number;
  missed: "run" | "skip";
}

/**
 * Why a scheduled backup starts: its slot (possibly up to LATE_TOLERANCE_MS late), or the one catch-up for a
 * slot missed while the guest was off, passed unnoticed for longer, or was left pending by a reload.
 */
export type ScheduledRunReason = { kind: "slot"; slot: Date } | { kind: "missed"; slot: Date };

/**
 * `last_slot`: every slot up to here is handled (ran, was skipped, or belonged to an earlier schedule).
 * `pending`: a slot whose run was due but whose backup had not started (the jitter wait, or the run's own wait
 * before its first attempt: a quiet storage) when the agent stopped or the runtime was rebuilt; a start without
 * catch-up (reload) runs it, a daemon start treats it as missed.
 * `learned`: the delay after its slot at which the last slot's backup got the node (run-delay.ts).
 */
const stateSchema = z.object({
  last_slot: z.iso.datetime(),
  pending: z.iso.datetime().optional(),
  learned: z.object({ ms: z.int().min(0), jitter_seconds: z.number().min(0) }).optional(),
});

/**
 * What the run's backup tells the schedule: the time (ms epoch) at which the backup that ended the run
 * started, when it got the node; undefined when the node's lock refused it to the end (forget the delay).
 */
export type LearnDelay = (gotNodeAtMs: number | undefined) => void;

/**
 * What the run tells the schedule when its first attempt starts: from then on the slot is being done, no
 * longer pending. A run that ends without calling it had the slot done otherwise (another backup of the guest
 * ran), unless the scheduler was stopped first: then nothing ran and the slot stays pending.
 */
export type RunBegan = () => void;

/**
 * Where in its slot the run starts: at the learned delay (the node was free for this guest there last time,
 * and every guest comes back to its own place) or at a fresh draw (the first night, after a forget, a catch-up).
 */
export interface RunPlace {
  learned: boolean;
  /**
   * When the run is due (ms epoch): its delay after the slot over. A run given a lead (the scheduler's `leadMs`)
   * begins that much earlier and quiesces no earlier than this.
   */
  at: number;
}

/**
 * How late a slot may still run as a slot. A timer fires late when the event loop stalls or the wall clock
 * steps over the slot (NTP, a resumed guest); node-cron's default of 1 s silently dropped that day's backup.
 * Later than this it counts as missed and the `missed` policy decides, as after a restart.
 */
export const LATE_TOLERANCE_MS = 15 * 60_000;
/** A slot run later than this after its minute is logged as late (with the slot time). */
export const LATE_WARNING_MS = 5_000;
const MINUTE = 60_000;
/** nextRun() looks this far ahead; a rarer schedule reports no next run rather than stalling the loop. */
export const NEXT_RUN_HORIZON_DAYS = 62;

/**
 * The first slot after `after`, within the horizon: what the scheduler arms and what `felhom-guest status`
 * shows as the next run. One function, so that the two agree around daylight-saving changes (status used
 * node-cron's getNextRun, which follows node-cron's matcher, not the slots' rule in slots.ts).
 */
export function nextScheduledSlot(spec: SlotSpec, after: Date): Date | undefined {
  return nextSlot(spec, after, NEXT_RUN_HORIZON_DAYS);
}

/**
 * Runs `onRun` on the configured cron schedule, each run delayed after its slot so that a fleet does not hit
 * one node at once: at random within the jitter window the first time, then where the last slot's backup got
 * the node (run-delay.ts; `onRun` reports it through `learn`). Overlap is impossible twice over: a slot that comes
 * while a run is still going is skipped, and the backup service's own lock (a second request joins the
 * running backup).
 *
 * The clock is our own, not node-cron's runner: a timer at every minute boundary; once the next slot (found
 * once per slot) is due, it runs the newest slot in (previous tick, now] by scheduleSlots' rule, so a late
 * timer or a wall clock that stepped forward still runs the slot once (a backward step runs nothing twice:
 * the tick cursor never goes back), and slots follow the daylight-saving rule documented there. node-cron
 * remains the cron parser and matcher.
 *
 * Missed-run policy: the handled-through time and a pending slot are persisted; at a start with `catchUp`,
 * if a slot passed since then while the agent was not running (guest off, agent stopped), `missed: run`
 * starts ONE catch-up run (after the jitter), `missed: skip` just waits for the next slot. On the very
 * first start nothing counts as missed.
 */
export class Scheduler {
  readonly #config: ScheduleConfig;
  readonly #statePath: string;
  readonly #log: Logger;
  readonly #onRun: (
    reason: ScheduledRunReason,
    learn: LearnDelay,
    began: RunBegan,
    place: RunPlace,
  ) => Promise<void>;
  readonly #leadMs: (place: { learned: boolean }) => number;
  #tick: NodeJS.Timeout | undefined;
  #delayed: NodeJS.Timeout | undefined;
  /** The live clock's position: slots up to here were looked at; it never goes back (a clock stepped back). */
  #cursor = new Date(0);
  /** Persisted as last_slot. */
  #handled = new Date(0);
  #pending: Date | undefined;
  #learned: LearnedDelay | undefined;
  /** Bumped by stop(): a run's late answer must not write over the state of a scheduler started since. */
  #generation = 0;
  #busy = false;
  /** The first slot after the tick cursor; no scan happens before #nextUntil (its time, or an hour on). */
  #next: Date | undefined;
  #nextUntil = 0;
  #saving: Promise<void> = Promise.resolve();

  constructor(options: {
    config: ScheduleConfig;
    statePath: string;
    log: Logger;
    onRun: (reason: ScheduledRunReason, learn: LearnDelay, began: RunBegan, place: RunPlace) => Promise<void>;
    /**
     * How long before its time a run begins: a run that looks at the backup storage before quiescing starts its
     * look then, so that on a quiet node it quiesces at its time (agent/app/scheduled-backup.ts); default 0.
     */
    leadMs?: (place: { learned: boolean }) => number;
  }) {
    const problem = validateCron(options.config.cron);
    if (problem) {
      throw new AgentError("config_invalid", `schedule.cron: ${problem}`, {
        hint: 'e.g. "30 2 * * *" for 02:30 daily',
      });
    }
    const zoneProblem = options.config.timezone ? validateTimezone(options.config.timezone) : undefined;
    if (zoneProblem) throw new AgentError("config_invalid", `schedule.timezone: ${zoneProblem}`);
    this.#config = options.config;
    this.#statePath = options.statePath;
    this.#log = options.log;
    this.#onRun = options.onRun;
    this.#leadMs = options.leadMs ?? (() => 0);
  }

  /**
   * `catchUp` (default true) is for the daemon's start, when the agent may have been off: the missed-run
   * policy applies to slots since the last handled one. A runtime rebuilt while the agent kept running
   * (config.reload, enroll) passes false: nothing was missed, and a changed cron must not make its slots
   * between the old schedule's last slot and now look missed (that was a fleet-wide backup on every cron
   * change). `runPending` (reload, enroll: the agent kept running) runs a slot that was still waiting out
   * its jitter when the old scheduler stopped, whatever the missed policy; at a daemon start it counts as
   * missed. Defaults to `!catchUp`.
   */
  async start(options: { catchUp?: boolean; runPending?: boolean; now?: Date } = {}): Promise<void> {
    const now = options.now ?? new Date();
    const catchUp = options.catchUp ?? true;
    this.#cursor = now;
    this.#busy = false;
    const state = await readJsonFile(this.#statePath, stateSchema);
    const pending = state?.pending ? new Date(state.pending) : undefined;
    const missed =
      state && catchUp ? findMissedSlot(this.#config, new Date(state.last_slot), now) : undefined;
    // Everything up to now is accounted for, so a later restart does not find these slots missed. Never
    // backwards: after the clock stepped back, a slot already handled would otherwise run again.
    const last = state ? new Date(state.last_slot) : undefined;
    this.#handled = last && last > now ? last : now;
    this.#pending = undefined;
    this.#learned = state?.learned;
    const overdue = missed ?? pending;
    const runPending = options.runPending ?? !catchUp;
    const runIt = missed ? this.#config.missed === "run" : runPending || this.#config.missed === "run";
    if (overdue && runIt) {
      this.#log.info(
        { slot: overdue.toISOString() },
        missed
          ? "a scheduled backup was missed while the agent was not running; catching up once"
          : "a scheduled backup was due when the schedule last stopped; running it",
      );
      this.#run({ kind: "missed", slot: overdue });
    } else {
      if (overdue) {
        this.#log.info(
          { slot: overdue.toISOString() },
          "a scheduled backup was missed while the agent was not running; policy is skip",
        );
      }
      this.#save();
    }
    await this.#saving;
    this.#findNext(this.#cursor);
    this.#arm();
  }

  /** The tick's next slot while it lies ahead; between its time and the tick that runs it, null. */
  nextRun(): Date | null {
    if (!this.#tick || !this.#next || this.#next.getTime() <= Date.now()) return null;
    return this.#next;
  }

  /**
   * The first slot after `from`. The search walks minutes through the zone database (~60 ms for a daily
   * slot, ~1 s two months out, and garbage the idle daemon's RSS shows), so it runs once per slot, or once
   * an hour when nothing is in reach, never on every tick.
   */
  #findNext(from: Date): void {
    this.#next = nextScheduledSlot(this.#config, from);
    this.#nextUntil = this.#next ? this.#next.getTime() : from.getTime() + 3_600_000;
  }

  /**
   * Stops the clock and a run still waiting out its jitter; that slot, and one whose run has not begun its
   * first attempt (RunBegan), stays pending for the next start.
   */
  async stop(): Promise<void> {
    this.#generation++;
    clearTimeout(this.#tick);
    clearTimeout(this.#delayed);
    this.#tick = undefined;
    this.#delayed = undefined;
    await this.#saving;
  }

  #arm(): void {
    this.#tick = setTimeout(() => this.#onTick(), MINUTE - (Date.now() % MINUTE));
  }

  #onTick(): void {
    const now = new Date();
    // Nothing can be due before the next slot found from an earlier tick: no scan until then.
    if (now > this.#cursor && now.getTime() >= this.#nextUntil) {
      // The same bounded scan as at start: a guest resumed after weeks asks about a month, not the gap.
      const slot = findMissedSlot(this.#config, this.#cursor, now);
      // A slot already handled (the clock stepped back since) never runs twice.
      if (slot && slot > this.#handled) this.#due(slot, now.getTime() - slot.getTime());
      this.#findNext(now);
    }
    if (now > this.#cursor) this.#cursor = now;
    this.#arm();
  }

  #due(slot: Date, lateMs: number): void {
    const at = slot.toISOString();
    if (lateMs <= LATE_TOLERANCE_MS) {
      if (lateMs > LATE_WARNING_MS) this.#log.warn({ slot: at, lateMs }, "scheduled backup slot runs late");
      this.#run({ kind: "slot", slot });
    } else if (this.#config.missed === "run") {
      this.#log.warn({ slot: at, lateMs }, "a scheduled backup slot passed unnoticed; catching up once");
      this.#run({ kind: "missed", slot });
    } else {
      this.#log.warn({ slot: at, lateMs }, "a scheduled backup slot passed unnoticed; policy is skip");
      this.#handle(slot);
      this.#save();
    }
  }

  /** Starts a run after its delay (run-delay.ts), unless one is still going (the slot then counts as handled). */
  #run(reason: ScheduledRunReason): void {
    this.#handle(reason.slot);
    if (this.#busy) {
      this.#log.warn(
        { slot: reason.slot.toISOString() },
        "scheduled backup skipped: the previous one still runs",
      );
      this.#save();
      return;
    }
    this.#busy = true;
    this.#pending = reason.slot;
    this.#save();
    const gap = this.#slotGapMs(reason);
    // At its learned place only if the run starts there: a tick late by more than the learned delay starts
    // at once, somewhere the node was not known to be free.
    const learned =
      reason.kind === "slot" &&
      startsAtLearnedDelay({
        jitterSeconds: this.#config.jitter_seconds,
        learned: this.#learned,
        slotGapMs: gap,
      }) &&
      reason.slot.getTime() + this.#learned!.ms >= Date.now();
    const waitMs = this.#waitMs(reason, gap);
    const lead = Math.min(waitMs, this.#leadMs({ learned }));
    this.#delayed = setTimeout(() => {
      // Its time counted from the timer, not from the wall clock when it was armed: a clock stepped back
      // during the delay would otherwise hold the run's look (and its attempt) that much past its time.
      const place: RunPlace = { learned, at: Date.now() + lead };
      void this.#fire(reason, gap, place).finally(() => {
        this.#busy = false;
      });
    }, waitMs - lead);
  }

  /** From a slot to the following one, by the slots the scheduler runs; none for a catch-up (no place learned). */
  #slotGapMs(reason: ScheduledRunReason): number | undefined {
    if (reason.kind !== "slot") return undefined;
    const following = nextScheduledSlot(this.#config, reason.slot);
    return following && following.getTime() - reason.slot.getTime();
  }

  /**
   * How long from now until the run starts. A slot's run starts at its delay after the slot's time (a late
   * tick has used part of it), where it learns; a catch-up (a missed or pending slot, its time long past)
   * draws afresh from now and never uses the learned place, which belongs to the slot's time.
   */
  #waitMs(reason: ScheduledRunReason, slotGapMs: number | undefined): number {
    const jitterSeconds = this.#config.jitter_seconds;
    if (reason.kind !== "slot") return runDelayMs({ jitterSeconds, learned: undefined, slotGapMs });
    const delay = runDelayMs({ jitterSeconds, learned: this.#learned, slotGapMs });
    return Math.max(0, reason.slot.getTime() + delay - Date.now());
  }

  async #fire(reason: ScheduledRunReason, slotGapMs: number | undefined, place: RunPlace): Promise<void> {
    const generation = this.#generation;
    const learn: LearnDelay = (gotNodeAt) => {
      if (generation !== this.#generation) return;
      // Only a slot's own run, measured from the slot's time, says where in the slot the node was free: a
      // catch-up started at another time. Under a jitter of 0 the operator wants the exact time: nothing to
      // learn, or one busy night would move the backup for good.
      if (reason.kind !== "slot" || this.#config.jitter_seconds === 0) return;
      const ms =
        gotNodeAt === undefined ? undefined : Math.max(0, Math.round(gotNodeAt - reason.slot.getTime()));
      this.#learned =
        ms !== undefined && isUsableLearnedDelay(ms, slotGapMs)
          ? { ms, jitter_seconds: this.#config.jitter_seconds }
          : undefined;
      this.#save();
    };
    // The slot stays pending until its backup begins (or the run ends while this scheduler runs): a reload or
    // restart before that runs it again, as one in the jitter wait, instead of losing it with no event.
    const began: RunBegan = () => {
      if (generation !== this.#generation || this.#pending === undefined) return;
      this.#pending = undefined;
      this.#save();
    };
    try {
      await this.#onRun(reason, learn, began, place);
    } catch (err) {
      // The run reports its own failure; the schedule keeps going.
      this.#log.error({ err, reason: reason.kind }, "scheduled backup failed");
    }
    began();
  }

  #handle(slot: Date): void {
    if (slot > this.#handled) this.#handled = slot;
  }

  /** Persists the current state; writes are queued so that they land in order. */
  #save(): void {
    const state = {
      last_slot: this.#handled.toISOString(),
      ...(this.#pending ? { pending: this.#pending.toISOString() } : {}),
      ...(this.#learned ? { learned: this.#learned } : {}),
    };
    this.#saving = this.#saving
      .then(() => writeJsonDurable(this.#statePath, state))
      .catch((err) => this.#log.error({ err }, "could not record the schedule state"));
  }
}
