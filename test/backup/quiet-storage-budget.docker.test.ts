import { appendFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { BackupService } from "../../agent/backup/backup-service.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { type Logger, silentLogger } from "../../agent/log/logger.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { describeDocker } from "../support/docker.ts";
import { simBackupConfig, simClient } from "../support/sim-client.ts";

/**
 * The wait for a quiet storage has one budget per request, across its busy retries (quiet-storage.ts, README
 * "Look before quiescing": at most 10 minutes per slot at the default): a storage that always grows (another
 * node's backups on a shared NFS, a CephFS) while the node's lock stays held must not cost every retry a full
 * budget of waiting again. The lock is held by a task the test stands for (the simulator's node lock, taken
 * directly); the guest's compose project has no containers (the engine is asked, nothing is stopped), so each
 * attempt reaches PVE and is refused. The storage's `used` is the simulator's own files.
 */
let sim: PveSimulator | undefined;
let stateDir: string | undefined;
afterEach(async () => {
  await sim?.close();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
  sim = stateDir = undefined;
});

/**
 * A guest whose every attempt the busy node refuses while a writer grows the storage; runs one scheduled
 * request and answers what each attempt saw: its outcome, and the looks before it (this token's status reads
 * after the attempt before it ended and before it started: its preflight reads the storage after it started).
 */
async function refusedThroughout(
  timing: { sampleMs: number; recheckMs: number; holdOffMs: number; budgetMs: number },
  attempts: number,
  lookAtStorage: boolean | "retries",
  o: { writer?: boolean; log?: Logger } = {},
): Promise<{ codes: string[]; looks: Array<Array<{ at: number }>>; started: number[] }> {
  sim = await startPveSimulator({ authFailureDelayMs: 50, storageUsedFrom: "files" });
  const self = await selfScopedGuest(sim, { vmid: 101, hostname: "web1", hwaddr: "bc:24:11:0a:0b:0d" });
  const pve = simClient(sim, self);
  stateDir = await mkdtemp(join(tmpdir(), "felhom-quiet-budget-"));
  const backup = simBackupConfig(`busy_retry: { attempts: ${attempts}, delay_seconds: 1 }`);
  const started: number[] = [];
  const ended: number[] = [];
  const outcomes: BackupOutcome[] = [];
  const service = new BackupService({
    pve,
    engine: new DockerEngine(),
    stateDir,
    backup,
    projects: [`felhom-quiet-budget-${process.pid}`],
    localFacts: () => ({ hostname: "web1", macs: ["bc:24:11:0a:0b:0d"] }),
    emit: () => {},
    log: o.log ?? silentLogger(),
    quietStorage: timing,
    onOutcome: (o) => {
      ended.push(Date.now());
      outcomes.push(o);
    },
  });
  // Another task holds the node's lock for the whole test, and a writer grows the storage all along.
  sim.nodeLock(sim.opts.node).tryAcquire("UPID:pve1:00000001:00000001:00000001:vzdump:102:root@pam:");
  const dump = join(sim.storages.get("bk")!.path, "dump");
  await mkdir(dump, { recursive: true });
  let writing = o.writer !== false;
  const writer = (async () => {
    while (writing) {
      await appendFile(join(dump, "other-writer.dat"), Buffer.alloc(2 * 1024 * 1024, 1));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const ticket = await service.request({
      mode: "snapshot",
      trigger: { source: "schedule" },
      retryWhenBusy: true,
      lookAtStorage,
      onStarted: () => started.push(Date.now()),
    });
    await ticket.settled;
  } finally {
    writing = false;
    await writer;
    await pve.close();
  }
  const reads = sim.requests.filter(
    (r) => r.tokenId === self.tokenId && r.path.endsWith("/storage/bk/status"),
  );
  return {
    codes: outcomes.map((o) => (o.ok ? "ok" : o.failure.code)),
    looks: started.map((at, k) => reads.filter((r) => r.at < at && (k === 0 || r.at > ended[k - 1]!))),
    started,
  };
}

/** A logger that records when each promised retry is due (its delay, logged as it is promised). */
function retryTimes(): { log: Logger; dueAts: number[] } {
  const log = silentLogger();
  const info = log.info.bind(log);
  const dueAts: number[] = [];
  log.info = ((obj: { delayMs?: number }, msg?: string) => {
    if (msg === "busy; retrying the backup later") dueAts.push(Date.now() + obj.delayMs!);
    info(obj, msg);
  }) as typeof log.info;
  return { log, dueAts };
}

describeDocker("the wait for a quiet storage across busy retries (pve sim + real docker)", () => {
  it("spends one budget over all attempts of a slot: once it is spent, the later attempts do not look", async () => {
    const timing = { sampleMs: 100, recheckMs: 300, holdOffMs: 100, budgetMs: 3_000 };
    const { log, dueAts } = retryTimes();
    const { codes, looks, started } = await refusedThroughout(timing, 4, true, { log });
    // Every attempt ran and was refused: four attempts, the last one final.
    expect(codes).toEqual(Array(4).fill("vzdump_lock_busy"));
    // The first attempt waited while the storage grew, until the budget was spent: a chain of busy checks.
    expect(looks[0]!.length).toBeGreaterThanOrEqual(6);
    // The budget was spent there: no later attempt looks again (each would wait a budget anew otherwise).
    expect(looks.slice(1).map((l) => l.length)).toEqual([0, 0, 0]);
    // Nor does their timer fire a look's length early (0.3 s here): with no look to end at their time, each
    // retry goes when its delay is over.
    expect(dueAts).toHaveLength(3);
    for (const [k, dueAt] of dueAts.entries()) expect(started[k + 1]).toBeGreaterThanOrEqual(dueAt - 5);
    // The wait lasted the budget, and at most one check (two reads sampleMs apart) longer; a second budget
    // would be 3 s more, far above the reads' latency on a loaded machine.
    const waitedMs = started[0]! - looks[0]![0]!.at;
    expect(waitedMs).toBeGreaterThanOrEqual(timing.budgetMs - timing.recheckMs);
    expect(waitedMs).toBeLessThan(timing.budgetMs + timing.sampleMs + 2_000);
  });

  it("at the learned place, goes at once although the storage grows, and looks before its retries", async () => {
    const timing = { sampleMs: 100, recheckMs: 300, holdOffMs: 100, budgetMs: 1_500 };
    const { codes, looks } = await refusedThroughout(timing, 2, "retries");
    expect(codes).toEqual(["vzdump_lock_busy", "vzdump_lock_busy"]);
    // No look before the first attempt: the whole budget was left to the retry, which waited it out while the
    // storage grew (busy checks, two reads each).
    expect(looks[0]).toEqual([]);
    expect(looks[1]!.length).toBeGreaterThanOrEqual(4);
  });

  it("looks ahead of a retry's time: on a quiet storage the retry quiesces at its time, not a look later", async () => {
    // Nothing writes: the look sees a quiet storage (two checks, four reads), and the node's lock stays held.
    const timing = { sampleMs: 200, recheckMs: 300, holdOffMs: 300, budgetMs: 60_000 };
    const lookMs = 2 * timing.sampleMs + timing.holdOffMs;
    const { log, dueAts } = retryTimes();
    const { codes, looks, started } = await refusedThroughout(timing, 2, true, { writer: false, log });
    expect(codes).toEqual(["vzdump_lock_busy", "vzdump_lock_busy"]);
    const [dueAt] = dueAts;
    expect(dueAt).toBeDefined();
    // The retry's look: its two checks, begun about one look's length before the retry's time ...
    expect(looks[1]).toHaveLength(4);
    expect(looks[1]![0]!.at).toBeLessThan(dueAt! - lookMs / 2);
    // ... and its confirming check ending at it: the retry went at its time, neither before nor a look after.
    expect(looks[1]![3]!.at).toBeGreaterThanOrEqual(dueAt! - 50);
    expect(started[1]).toBeGreaterThanOrEqual(dueAt! - 5);
    expect(started[1]).toBeLessThan(dueAt! + lookMs / 2);
  });
});
