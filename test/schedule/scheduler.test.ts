import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../agent/log/logger.ts";
import { type ScheduledRunReason, Scheduler } from "../../agent/schedule/scheduler.ts";

let dir: string;
let scheduler: Scheduler | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-sched-"));
});
afterEach(async () => {
  await scheduler?.stop();
  scheduler = undefined;
  await rm(dir, { recursive: true, force: true });
});

function start(missed: "run" | "skip", runs: ScheduledRunReason[], now: Date) {
  scheduler = new Scheduler({
    config: { cron: "30 2 * * *", timezone: "UTC", jitter_seconds: 0, missed },
    statePath: join(dir, "schedule.json"),
    log: silentLogger(),
    onRun: async (r) => {
      runs.push(r);
    },
  });
  return scheduler.start(now);
}

const lastSlot = (iso: string) =>
  writeFile(join(dir, "schedule.json"), JSON.stringify({ last_slot: new Date(iso).toISOString() }));

describe("scheduler", () => {
  it("catches up once for a slot missed while the guest was off, when the policy is run", async () => {
    await lastSlot("2026-11-20T02:30:00Z");
    const runs: ScheduledRunReason[] = [];
    await start("run", runs, new Date("2026-11-27T09:00:00Z"));
    await expect.poll(() => runs.length).toBe(1);
    expect(runs[0]).toEqual({ kind: "missed", slot: new Date("2026-11-27T02:30:00Z") });
    const state = JSON.parse(await readFile(join(dir, "schedule.json"), "utf8"));
    expect(state.last_slot).toBe("2026-11-27T02:30:00.000Z");
  });

  it("does not run a missed slot when the policy is skip, and records that it was seen", async () => {
    await lastSlot("2026-11-20T02:30:00Z");
    const runs: ScheduledRunReason[] = [];
    await start("skip", runs, new Date("2026-11-27T09:00:00Z"));
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toEqual([]);
    const state = JSON.parse(await readFile(join(dir, "schedule.json"), "utf8"));
    expect(state.last_slot).toBe("2026-11-27T09:00:00.000Z");
  });

  it("treats the first start ever as nothing missed", async () => {
    const runs: ScheduledRunReason[] = [];
    await start("run", runs, new Date("2026-11-27T09:00:00Z"));
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toEqual([]);
    expect(scheduler?.nextRun()?.getUTCHours()).toBe(2);
  });

  it("refuses a cron expression with a seconds field, naming the key", () => {
    expect(
      () =>
        new Scheduler({
          config: { cron: "0 30 2 * * *", jitter_seconds: 0, missed: "run" },
          statePath: join(dir, "s.json"),
          log: silentLogger(),
          onRun: async () => {},
        }),
    ).toThrow(/schedule\.cron: must have 5 fields/);
  });
});
