import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { nextScheduledRun } from "../../agent/cli/commands/status.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { type ScheduledRunReason, Scheduler } from "../../agent/schedule/scheduler.ts";

const schedule = { cron: "30 2 * * *", timezone: "Europe/Berlin", jitter_seconds: 0, missed: "run" as const };

let dir = "";
afterEach(async () => {
  vi.useRealTimers();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The first run the real scheduler makes after starting at `now`, on vitest's fake clock. */
async function firstScheduledRun(now: string, withinMs: number): Promise<string | undefined> {
  dir = await mkdtemp(join(tmpdir(), "felhom-next-run-"));
  vi.useFakeTimers({ now: new Date(now), toFake: ["setTimeout", "clearTimeout", "Date"] });
  const runs: ScheduledRunReason[] = [];
  const scheduler = new Scheduler({
    config: schedule,
    statePath: join(dir, "schedule.json"),
    log: silentLogger(),
    onRun: async (r) => {
      runs.push(r);
    },
  });
  await scheduler.start();
  for (let done = 0; done < withinMs && runs.length === 0; done += 60_000) {
    await vi.advanceTimersByTimeAsync(60_000);
    await new Promise((r) => setImmediate(r));
  }
  await scheduler.stop();
  return runs[0]?.slot.toISOString();
}

// `felhom-guest status` computed its "next run" with node-cron's getNextRun, the scheduler with its own
// slots (vixie cron's rule for daylight-saving changes): around a change the two named different times.
describe("status's next run is the run the scheduler makes", () => {
  it("on the spring-forward day, when 02:30 does not exist: 03:00 local, not the next day", async () => {
    const now = "2026-03-28T12:00:00Z";
    expect(nextScheduledRun(schedule, new Date(now))).toBe("2026-03-29T01:00:00.000Z");
    expect(await firstScheduledRun(now, 26 * 3600_000)).toBe("2026-03-29T01:00:00.000Z");
  });

  it("on the fall-back day, after the first 02:30: the next day's, not the repeated hour's", async () => {
    const now = "2026-10-25T00:45:00Z"; // 02:45 CEST, a quarter of an hour after that day's run
    expect(nextScheduledRun(schedule, new Date(now))).toBe("2026-10-26T01:30:00.000Z");
    expect(await firstScheduledRun(now, 26 * 3600_000)).toBe("2026-10-26T01:30:00.000Z");
  });

  it("names no next run without a schedule", () => {
    expect(nextScheduledRun(undefined, new Date("2026-03-28T12:00:00Z"))).toBeNull();
  });
});
