import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../agent/log/logger.ts";
import {
  type LearnDelay,
  type RunBegan,
  type RunPlace,
  type ScheduleConfig,
  type ScheduledRunReason,
  Scheduler,
} from "../../agent/schedule/scheduler.ts";

let dir: string;
let scheduler: Scheduler | undefined;
let runs: ScheduledRunReason[];
let logs: { level: number; msg: string; slot?: string }[];
/** When each run started (fake clock), and what its backup tells the schedule (nothing when unset). */
let runAt: number[];
/** Where each run started in its slot (the scheduler's RunPlace). */
let places: RunPlace[];
let answer: ((learn: LearnDelay, began: RunBegan) => void | Promise<void>) | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-sched-"));
  runs = [];
  logs = [];
  runAt = [];
  places = [];
  answer = undefined;
});
afterEach(async () => {
  await scheduler?.stop();
  scheduler = undefined;
  vi.useRealTimers();
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

const statePath = () => join(dir, "schedule.json");

/** A scheduler on vitest's fake clock, starting at `now`. */
function make(
  config: Partial<ScheduleConfig>,
  now: string,
  leadMs?: (place: { learned: boolean }) => number,
) {
  // Only the clock and timers: setImmediate stays real so file I/O can settle between steps.
  vi.useFakeTimers({ now: new Date(now), toFake: ["setTimeout", "clearTimeout", "Date"] });
  scheduler = new Scheduler({
    config: { cron: "30 2 * * *", timezone: "UTC", jitter_seconds: 0, missed: "run", ...config },
    statePath: statePath(),
    log: createLogger({
      level: "info",
      destination: { write: (line: string) => logs.push(JSON.parse(line)) },
    }),
    onRun: async (r, learn, began, place) => {
      runs.push(r);
      places.push(place);
      runAt.push(Date.now());
      await answer?.(learn, began);
    },
    ...(leadMs ? { leadMs } : {}),
  });
  return scheduler;
}

/** Lets the fake clock run, with real file I/O (the state file) settling in between. */
async function advance(ms: number) {
  const step = 30_000;
  for (let done = 0; done < ms; done += step) {
    await vi.advanceTimersByTimeAsync(Math.min(step, ms - done));
    await new Promise((r) => setImmediate(r));
  }
}

const writeState = (state: object) => writeFile(statePath(), JSON.stringify(state));
/** The state file once the scheduler has stopped (stop waits for its queued writes). */
const readState = async () => {
  await scheduler?.stop();
  return JSON.parse(await readFile(statePath(), "utf8"));
};
const warnings = () => logs.filter((l) => l.level === 40);

describe("scheduler", () => {
  it("catches up once for a slot missed while the guest was off, when the policy is run", async () => {
    await writeState({ last_slot: "2026-11-20T02:30:00.000Z" });
    await make({}, "2026-11-27T09:00:00Z").start();
    await advance(60_000);
    expect(runs).toEqual([{ kind: "missed", slot: new Date("2026-11-27T02:30:00Z") }]);
    expect((await readState()).last_slot).toBe("2026-11-27T09:00:00.000Z");
  });

  it("does not run a missed slot when the policy is skip, and records that it was seen", async () => {
    await writeState({ last_slot: "2026-11-20T02:30:00.000Z" });
    await make({ missed: "skip" }, "2026-11-27T09:00:00Z").start();
    await advance(60_000);
    expect(runs).toEqual([]);
    expect((await readState()).last_slot).toBe("2026-11-27T09:00:00.000Z");
  });

  it("does not run a slot again after a restart with the clock stepped back past it", async () => {
    // Handled up to 02:31; the agent restarts with the clock at 02:20 the same night.
    await writeState({ last_slot: "2026-11-27T02:31:00.000Z" });
    await make({}, "2026-11-27T02:20:00Z").start();
    await advance(20 * 60_000);
    expect(runs).toEqual([]);
    expect((await readState()).last_slot).toBe("2026-11-27T02:31:00.000Z");
  });

  it("treats the first start ever as nothing missed and names the next slot", async () => {
    const s = make({}, "2026-11-27T09:00:00Z");
    await s.start();
    await advance(60_000);
    expect(runs).toEqual([]);
    expect(s.nextRun()).toEqual(new Date("2026-11-28T02:30:00Z"));
  });

  it("runs the slot at its minute", async () => {
    await make({}, "2026-11-27T02:29:10Z").start();
    await advance(60_000);
    expect(runs).toEqual([{ kind: "slot", slot: new Date("2026-11-27T02:30:00Z") }]);
    expect(warnings()).toEqual([]);
  });

  it("still runs a slot whose timer fires late (the clock stepped over it), once, with a warning naming the slot", async () => {
    await make({}, "2026-11-27T02:29:30Z").start();
    // The wall clock jumps 40 s while the timer for 02:30:00 waits: it fires at 02:30:40.
    vi.setSystemTime(new Date("2026-11-27T02:30:10Z"));
    await advance(5 * 60_000);
    expect(runs).toEqual([{ kind: "slot", slot: new Date("2026-11-27T02:30:00Z") }]);
    expect(warnings()).toEqual([
      expect.objectContaining({ msg: "scheduled backup slot runs late", slot: "2026-11-27T02:30:00.000Z" }),
    ]);
  });

  it("runs a slot that fired 2 s late (node-cron's 1 s tolerance dropped it)", async () => {
    await make({}, "2026-11-27T02:29:30Z").start();
    vi.setSystemTime(new Date("2026-11-27T02:29:32Z"));
    await advance(5 * 60_000);
    expect(runs).toEqual([{ kind: "slot", slot: new Date("2026-11-27T02:30:00Z") }]);
  });

  it("treats a slot later than the tolerance as missed: caught up once under run, skipped under skip", async () => {
    await make({}, "2026-11-27T02:29:30Z").start();
    vi.setSystemTime(new Date("2026-11-27T03:29:30Z"));
    await advance(5 * 60_000);
    expect(runs).toEqual([{ kind: "missed", slot: new Date("2026-11-27T02:30:00Z") }]);
    await scheduler?.stop();

    runs = [];
    await make({ missed: "skip" }, "2026-11-28T02:29:30Z").start();
    vi.setSystemTime(new Date("2026-11-28T03:29:30Z"));
    await advance(5 * 60_000);
    expect(runs).toEqual([]);
    expect((await readState()).last_slot).toBe("2026-11-28T02:30:00.000Z");
  });

  it("runs nothing twice when the wall clock steps back over a slot that already ran", async () => {
    await make({}, "2026-11-27T02:29:30Z").start();
    await advance(60_000);
    vi.setSystemTime(new Date("2026-11-27T02:28:00Z"));
    await advance(5 * 60_000);
    expect(runs).toHaveLength(1);
  });

  it("does not catch up when a reload changes the cron (catchUp false), nor at the next restart", async () => {
    // 02:30 ran under the old cron; at 10:00 the cron becomes 03:30.
    await writeState({ last_slot: "2026-11-27T02:30:00.000Z" });
    await make({ cron: "30 3 * * *" }, "2026-11-27T10:00:00Z").start({ catchUp: false });
    await advance(60_000);
    expect(runs).toEqual([]);
    await scheduler?.stop();

    await make({ cron: "30 3 * * *" }, "2026-11-27T11:00:00Z").start();
    await advance(60_000);
    expect(runs).toEqual([]);
  });

  it("runs a slot that was still waiting out its jitter when the runtime was rebuilt, once", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    await make({ jitter_seconds: 600 }, "2026-11-27T02:29:30Z").start();
    await advance(60_000);
    expect(runs).toEqual([]);
    expect((await readState()).pending).toBe("2026-11-27T02:30:00.000Z");

    await make({ jitter_seconds: 600 }, "2026-11-27T02:31:00Z").start({ catchUp: false });
    await advance(10 * 60_000);
    expect(runs).toEqual([{ kind: "missed", slot: new Date("2026-11-27T02:30:00Z") }]);
    expect((await readState()).pending).toBeUndefined();
  });

  it("keeps a slot pending while its run has not begun its backup (a wait before the first attempt), and a reload runs it", async () => {
    // The run waits (for a quiet storage, say) and never begins: the runtime is rebuilt under it.
    let endRun!: () => void;
    answer = () =>
      new Promise<void>((r) => {
        endRun = r;
      });
    await make({}, "2026-11-27T02:29:30Z").start();
    await advance(60_000);
    expect(runs).toHaveLength(1);
    expect((await readState()).pending).toBe("2026-11-27T02:30:00.000Z");
    // The old run ends after the stop (its service stopped it): the slot stays pending.
    endRun();
    await advance(1);
    expect(JSON.parse(await readFile(statePath(), "utf8")).pending).toBe("2026-11-27T02:30:00.000Z");

    answer = (_learn, began) => began();
    await make({}, "2026-11-27T02:31:00Z").start({ catchUp: false });
    await advance(60_000);
    expect(runs.slice(1)).toEqual([{ kind: "missed", slot: new Date("2026-11-27T02:30:00Z") }]);
    expect((await readState()).pending).toBeUndefined();
  });

  it("lets a slot go once its run began its backup, also when the runtime is rebuilt before the backup ends", async () => {
    answer = (_learn, began) => {
      began();
      return new Promise<void>(() => {});
    };
    await make({}, "2026-11-27T02:29:30Z").start();
    await advance(60_000);
    expect(runs).toHaveLength(1);
    expect((await readState()).pending).toBeUndefined();
  });

  it("comes back the next night to the delay at which the last run's backup got the node, not a new random one", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    // The backup got the node 40 s after the run started (a busy retry, say).
    answer = (learn) => learn(Date.now() + 40_000);
    await make({ jitter_seconds: 600 }, "2026-11-27T02:29:30Z").start();
    await advance(10 * 60_000);
    expect(runAt).toEqual([Date.parse("2026-11-27T02:35:00Z")]);
    expect((await readState()).learned).toEqual({ ms: 340_000, jitter_seconds: 600 });

    vi.spyOn(Math, "random").mockReturnValue(0.1);
    await make({ jitter_seconds: 600 }, "2026-11-28T02:29:30Z").start();
    await advance(10 * 60_000);
    expect(runAt.slice(1)).toEqual([Date.parse("2026-11-28T02:35:40Z")]);
    // The run is told where it starts: a draw the first night, the learned place the next.
    expect(places).toEqual([
      { learned: false, at: Date.parse("2026-11-27T02:35:00Z") },
      { learned: true, at: Date.parse("2026-11-28T02:35:40Z") },
    ]);
  });

  it("begins a run that looks at the storage its lead ahead of its time, and tells it that time", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    answer = (learn) => learn(Date.now() + 8_000);
    // As the daemon wires it: a run at a fresh draw looks (8 s ahead), one at its learned place does not.
    const lead = (place: { learned: boolean }) => (place.learned ? 0 : 8_000);
    await make({ jitter_seconds: 600 }, "2026-11-27T02:29:30Z", lead).start();
    await advance(10 * 60_000);
    expect(runAt).toEqual([Date.parse("2026-11-27T02:34:52Z")]);
    expect(places).toEqual([{ learned: false, at: Date.parse("2026-11-27T02:35:00Z") }]);
    // It learns where its backup got the node (its time, the look ahead of it), and comes back there, at once.
    expect((await readState()).learned).toEqual({ ms: 300_000, jitter_seconds: 600 });
    await make({ jitter_seconds: 600 }, "2026-11-28T02:29:30Z", lead).start();
    await advance(10 * 60_000);
    expect(runAt.slice(1)).toEqual([Date.parse("2026-11-28T02:35:00Z")]);
    expect(places.slice(1)).toEqual([{ learned: true, at: Date.parse("2026-11-28T02:35:00Z") }]);
  });

  it("tells a run that looks ahead its time from its timer: a clock stepped back in the delay does not hold it", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    await make({ jitter_seconds: 600 }, "2026-11-27T02:29:30Z", () => 8_000).start();
    await advance(60_000);
    // In the run's delay (300 s), the wall clock is stepped back an hour (NTP correcting a bad RTC).
    vi.setSystemTime(new Date(Date.now() - 3_600_000));
    await advance(5 * 60_000);
    expect(runAt).toHaveLength(1);
    // Its look ends a lead after it began, not an hour and a lead later: the attempt does not wait for the
    // wall clock to catch up with the time computed before the step.
    expect(places[0]!.at - runAt[0]!).toBe(8_000);
  });

  it("does not call a slot whose tick came after its learned place a run at that place (it starts at once)", async () => {
    await writeState({
      last_slot: "2026-11-27T02:30:00.000Z",
      learned: { ms: 340_000, jitter_seconds: 600 },
    });
    await make({ jitter_seconds: 600 }, "2026-11-28T02:29:30Z").start();
    // The clock steps 7 minutes (a resumed guest) before the tick: the slot is late but within the tolerance.
    vi.setSystemTime(new Date("2026-11-28T02:36:40Z"));
    await advance(60_000);
    expect(runs).toEqual([{ kind: "slot", slot: new Date("2026-11-28T02:30:00Z") }]);
    // Due at once (at the tick).
    expect(places).toEqual([{ learned: false, at: expect.any(Number) }]);
    expect(runAt[0]! - places[0]!.at).toBeLessThan(1_000);
  });

  it("draws afresh after a run the busy node refused to the end, and under a changed jitter window", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.1);
    await writeState({
      last_slot: "2026-11-27T02:30:00.000Z",
      learned: { ms: 340_000, jitter_seconds: 600 },
    });
    answer = (learn) => learn(undefined);
    await make({ jitter_seconds: 600 }, "2026-11-28T02:29:30Z").start();
    await advance(10 * 60_000);
    expect(runAt).toEqual([Date.parse("2026-11-28T02:35:40Z")]);
    expect((await readState()).learned).toBeUndefined();

    await writeState({
      last_slot: "2026-11-28T02:30:00.000Z",
      learned: { ms: 340_000, jitter_seconds: 600 },
    });
    answer = undefined;
    await make({ jitter_seconds: 900 }, "2026-11-29T02:29:30Z").start();
    await advance(20 * 60_000);
    expect(runAt.slice(1)).toEqual([Date.parse("2026-11-29T02:31:30Z")]);
    expect((await readState()).learned).toEqual({ ms: 340_000, jitter_seconds: 600 });
  });

  it("keeps every slot of */30 when the learned delay would reach past the next one (draws afresh)", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.1);
    await writeState({
      last_slot: "2026-11-28T01:30:00.000Z",
      learned: { ms: 1_900_000, jitter_seconds: 900 },
    });
    await make({ cron: "*/30 * * * *", jitter_seconds: 900 }, "2026-11-28T01:59:30Z").start();
    await advance(65 * 60_000);
    expect(runAt).toEqual(
      ["2026-11-28T02:01:30Z", "2026-11-28T02:31:30Z", "2026-11-28T03:01:30Z"].map((t) => Date.parse(t)),
    );
    expect(warnings()).toEqual([]);
  });

  it("under a jitter of 0 runs at the slot and learns nothing, also after a busy night", async () => {
    await writeState({
      last_slot: "2026-11-27T02:30:00.000Z",
      learned: { ms: 340_000, jitter_seconds: 0 },
    });
    answer = (learn) => learn(Date.now() + 40_000);
    await make({ jitter_seconds: 0 }, "2026-11-28T02:29:30Z").start();
    await advance(5 * 60_000);
    // A timer of 0 fires 1 ms on, as Node's does.
    expect(runAt).toEqual([Date.parse("2026-11-28T02:30:00Z") + 1]);
    expect((await readState()).learned).toEqual({ ms: 340_000, jitter_seconds: 0 });

    await writeState({ last_slot: "2026-11-28T02:30:00.000Z" });
    await make({ jitter_seconds: 0 }, "2026-11-29T02:29:30Z").start();
    await advance(5 * 60_000);
    expect(runAt.slice(1)).toEqual([Date.parse("2026-11-29T02:30:00Z") + 1]);
    expect((await readState()).learned).toBeUndefined();
  });

  it("learns from a slot's run measured from the slot's time, also when its tick came late; not from a catch-up", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    answer = (learn) => learn(Date.now() + 40_000);
    await make({ jitter_seconds: 600 }, "2026-11-27T02:29:30Z").start();
    // The wall clock steps 5 minutes forward before the 02:30 tick: the slot runs late.
    vi.setSystemTime(new Date("2026-11-27T02:34:30Z"));
    await advance(10 * 60_000);
    // Its delay counts from 02:30: due at 02:35:00, it runs at once at the late tick (a timer of 0: 1 ms on).
    expect(runAt).toEqual([Date.parse("2026-11-27T02:35:00Z") + 1]);
    expect((await readState()).learned).toEqual({ ms: 340_001, jitter_seconds: 600 });

    // A catch-up at boot, hours after its slot: a fresh draw from now, and the learned place stays.
    await make({ jitter_seconds: 600 }, "2026-11-28T09:00:00Z").start();
    await advance(10 * 60_000);
    expect(runAt.slice(1)).toEqual([Date.parse("2026-11-28T09:05:00Z")]);
    expect(places.slice(1)).toEqual([{ learned: false, at: Date.parse("2026-11-28T09:05:00Z") }]);
    expect((await readState()).learned).toEqual({ ms: 340_001, jitter_seconds: 600 });
  });

  it("runs a jittered slot after a reload that kept the cron, also when the missed policy is skip; a restart skips it", async () => {
    await writeState({ last_slot: "2026-11-27T02:30:00.000Z", pending: "2026-11-27T02:30:00.000Z" });
    await make({ missed: "skip" }, "2026-11-27T02:35:00Z").start({ catchUp: true, runPending: true });
    await advance(60_000);
    expect(runs).toEqual([{ kind: "missed", slot: new Date("2026-11-27T02:30:00Z") }]);
    await scheduler?.stop();

    runs = [];
    await writeState({ last_slot: "2026-11-27T02:30:00.000Z", pending: "2026-11-27T02:30:00.000Z" });
    await make({ missed: "skip" }, "2026-11-27T02:35:00Z").start();
    await advance(60_000);
    expect(runs).toEqual([]);
  });

  it("runs the spring-forward day's 02:30 Europe/Berlin once at 03:00 local", async () => {
    await make({ timezone: "Europe/Berlin" }, "2026-03-29T00:50:00Z").start();
    await advance(24 * 3600_000);
    expect(runs).toEqual([
      { kind: "slot", slot: new Date("2026-03-29T01:00:00Z") },
      { kind: "slot", slot: new Date("2026-03-30T00:30:00Z") },
    ]);
  });

  it("runs the fall-back day's 02:30 Europe/Berlin once, not at both 02:30s", async () => {
    await make({ timezone: "Europe/Berlin" }, "2026-10-25T00:20:00Z").start();
    await advance(3 * 3600_000);
    expect(runs).toEqual([{ kind: "slot", slot: new Date("2026-10-25T00:30:00Z") }]);
  });

  it("refuses a cron expression with a seconds field and an unknown time zone, naming the key", () => {
    const build = (config: ScheduleConfig) =>
      new Scheduler({ config, statePath: statePath(), log: createLogger(), onRun: async () => {} });
    expect(() => build({ cron: "0 30 2 * * *", jitter_seconds: 0, missed: "run" })).toThrow(
      /schedule\.cron: must have 5 fields/,
    );
    expect(() =>
      build({ cron: "30 2 * * *", timezone: "Europe/Budpest", jitter_seconds: 0, missed: "run" }),
    ).toThrow(/schedule\.timezone: unknown time zone/);
  });
});
