import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runScheduledBackup } from "../../agent/app/scheduled-backup.ts";
import { BackupService, type BackupServiceDeps } from "../../agent/backup/backup-service.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { operationHolder } from "../../agent/operation/operation-lock.ts";
import type { PveClient } from "../../agent/pve/client.ts";
import { Scheduler } from "../../agent/schedule/scheduler.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { simBackupConfig, simClient } from "../support/sim-client.ts";

/**
 * A scheduled backup that waits for a quiet storage is not a backup yet: stop() (a reload, the daemon's
 * shutdown) ends the wait at once, with no attempt, nothing touched, the guest's lock free and the slot left
 * pending to the schedule (it never hears that the backup began). A backup of the guest that starts during the
 * wait (the hub's) is the slot's backup: the wait ends and no second one follows. The storage grows because this
 * test writes to it (the simulator's status is df of its directory, as PVE's); the scheduled request never gets
 * to Docker, so none is needed.
 */
describe("a scheduled backup waiting for a quiet storage, against the PVE simulator", () => {
  let sim: PveSimulator;
  let pve: PveClient;
  let stateDir: string;

  beforeAll(async () => {
    sim = await startPveSimulator();
    const self = await selfScopedGuest(sim, { vmid: 101, hostname: "web1", hwaddr: "bc:24:11:0a:0b:0d" });
    pve = simClient(sim, self);
    stateDir = await mkdtemp(join(tmpdir(), "felhom-quiet-"));
  });

  afterAll(async () => {
    await pve?.close();
    await sim?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  /** A service against the simulator, with no Docker (the scheduled attempts here fail at the quiesce). */
  const newService = (over: Partial<BackupServiceDeps>) =>
    new BackupService({
      pve,
      engine: new DockerEngine({ socketPath: join(stateDir, "no-docker.sock") }),
      stateDir,
      backup: simBackupConfig(),
      localFacts: () => ({ hostname: "web1", macs: ["bc:24:11:0a:0b:0d"] }),
      emit: () => {},
      log: silentLogger(),
      ...over,
    });
  const looks = () => sim.requests.filter((r) => r.path === "/nodes/pve1/storage/bk/status").length;

  /** Another writer: 2 MB every 100 ms into the storage, until the returned stop is awaited. */
  function otherArchive(): () => Promise<void> {
    const file = join(sim.storages.get("bk")!.path, "dump", "other-writer.dat");
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await appendFile(file, Buffer.alloc(2 * 1024 * 1024, 1));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    return async () => {
      writing = false;
      await writer;
      await rm(file, { force: true });
    };
  }

  it("leaves the slot pending at stop() while it waits: no attempt, no event, the schedule told nothing began", async () => {
    const outcomes: BackupOutcome[] = [];
    // stop() comes the moment the service says it waits (a reload or shutdown then): no race with the writer.
    const log = silentLogger();
    const info = log.info.bind(log);
    let waits = 0;
    log.info = ((obj: object, msg?: string) => {
      if (msg?.startsWith("the backup storage is growing")) {
        waits++;
        service.stop();
      }
      info(obj, msg);
    }) as typeof log.info;
    const service: BackupService = new BackupService({
      pve,
      engine: new DockerEngine({ socketPath: join(stateDir, "no-docker.sock") }),
      stateDir,
      backup: simBackupConfig(),
      localFacts: () => ({ hostname: "web1", macs: ["bc:24:11:0a:0b:0d"] }),
      emit: () => {},
      log,
      quietStorage: { sampleMs: 300, recheckMs: 60_000, holdOffMs: 300, budgetMs: 600_000 },
      onOutcome: (o) => outcomes.push(o),
    });
    const stopWriting = otherArchive();
    try {
      // A re-check a minute away: the slot ends at once only because stop() ends the wait.
      let began = 0;
      await runScheduledBackup(
        service,
        { mode: "snapshot", signal: new AbortController().signal, log: silentLogger() },
        () => {},
        () => began++,
      );
      expect(waits).toBe(1);
      expect(began).toBe(0);
      expect(outcomes).toEqual([]);
      expect(sim.vzdumpRuns).toEqual([]);
      expect(await operationHolder(stateDir)).toBeUndefined();
    } finally {
      await stopWriting();
    }
  });

  it("counts a hub backup that starts during the wait as the slot's backup: no second backup", async () => {
    const outcomes: Array<{ ok: boolean; source: string }> = [];
    const service = newService({
      quietStorage: { sampleMs: 300, recheckMs: 300, holdOffMs: 300, budgetMs: 600_000 },
      onOutcome: (o, trigger) => outcomes.push({ ok: o.ok, source: trigger.source }),
    });
    const stopWriting = otherArchive();
    try {
      const scheduled = service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
      });
      await expect.poll(looks, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(4);
      const hub = await service.request({ mode: "snapshot", trigger: { source: "hub", commandId: "c-1" } });
      expect(hub.started).toBe(true);
      if (!hub.started) return;
      // The scheduled request joins the hub's backup at once, while the other archive still grows.
      const ticket = await scheduled;
      expect(ticket).toMatchObject({ started: false, holder: { kind: "backup", operationId: hub.backupId } });
      await hub.done;
      await ticket.settled;
      // One backup in the slot, the hub's (it fails here without Docker; what matters is that it is the only one).
      expect(outcomes).toEqual([{ ok: false, source: "hub" }]);
      expect(await operationHolder(stateDir)).toBeUndefined();
    } finally {
      await stopWriting();
    }
  });

  it("teaches the schedule the time before a wait that ran out of budget, not the time after it", async () => {
    // The storage grows through the whole (short) budget: the node was never seen free in the wait.
    const log = silentLogger();
    const info = log.info.bind(log);
    let firstBusyAt: number | undefined;
    log.info = ((obj: object, msg?: string) => {
      if (msg?.startsWith("the backup storage is growing")) firstBusyAt ??= Date.now();
      info(obj, msg);
    }) as typeof log.info;
    const service = newService({
      log,
      quietStorage: { sampleMs: 300, recheckMs: 300, holdOffMs: 300, budgetMs: 1_500 },
    });
    const stopWriting = otherArchive();
    try {
      const settled: number[] = [];
      const ticket = await service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
        onSettled: (_outcome, startedAt) => settled.push(startedAt),
      });
      await ticket.done;
      await ticket.settled;
      expect(firstBusyAt).toBeDefined();
      expect(settled).toHaveLength(1);
      expect(settled[0]).toBeLessThan(firstBusyAt!);
    } finally {
      await stopWriting();
    }
  });

  it("does not look before the first attempt under jitter_seconds 0 (the exact time) nor at the learned place", async () => {
    const service = newService({
      quietStorage: { sampleMs: 300, recheckMs: 60_000, holdOffMs: 300, budgetMs: 600_000 },
    });
    const stopWriting = otherArchive();
    try {
      for (const run of [{ exactTime: true }, { atLearnedPlace: true }]) {
        const before = looks();
        const looksAtStart: number[] = [];
        // The attempt starts at once (and fails at the quiesce, no Docker here) although the storage grows.
        await runScheduledBackup(
          service,
          { mode: "snapshot", signal: new AbortController().signal, log: silentLogger(), ...run },
          () => {},
          () => looksAtStart.push(looks()),
        );
        // No look before the attempt began (its preflight reads the storage once, later).
        expect(looksAtStart).toEqual([before]);
      }
    } finally {
      await stopWriting();
    }
  });

  it("begins a run's look ahead of its time and quiesces at that time: a quiet storage's confirmation ends there", async () => {
    const service = newService({
      quietStorage: { sampleMs: 200, recheckMs: 5_000, holdOffMs: 300, budgetMs: 600_000 },
    });
    // Called a second earlier than the scheduler would (its timer fired early): still not before its time.
    const dueAt = Date.now() + service.lookAheadMs() + 1_000;
    const before = looks();
    const began: number[] = [];
    await runScheduledBackup(
      service,
      { mode: "snapshot", signal: new AbortController().signal, log: silentLogger(), dueAt },
      () => {},
      () => began.push(Date.now()),
    );
    const reads = sim.requests.filter((r) => r.path === "/nodes/pve1/storage/bk/status").slice(before);
    // The attempt (which fails at the quiesce, no Docker here) began at its time, after a quiet check and the
    // one confirming it, which ended at that time rather than a hold-off after the first.
    expect(began).toHaveLength(1);
    expect(began[0]).toBeGreaterThanOrEqual(dueAt);
    expect(reads.filter((r) => r.at <= began[0]!)).toHaveLength(4);
    expect(reads[3]!.at).toBeGreaterThanOrEqual(dueAt - 50);
  });

  it("takes a storage PVE reports as not active (used 0) as unreadable, not as an archive growing it", async () => {
    const service = newService({
      quietStorage: { sampleMs: 300, recheckMs: 5_000, holdOffMs: 300, budgetMs: 600_000 },
    });
    // A flapping storage (an NFS server that answers every other time), and nothing writing to it: read as
    // 0 then as its real size, it looked like gigabytes a second.
    let reads = 0;
    sim.storages.get("bk")!.unreadable = () => reads++ % 2 === 0;
    try {
      const before = looks();
      const looksAtStart: number[] = [];
      await runScheduledBackup(
        service,
        { mode: "snapshot", signal: new AbortController().signal, log: silentLogger() },
        () => {},
        () => looksAtStart.push(looks()),
      );
      // One look, unreadable: the attempt goes at once (and fails at the quiesce, no Docker here).
      expect(looksAtStart).toEqual([before + 1]);
    } finally {
      delete sim.storages.get("bk")!.unreadable;
    }
  });

  it("looks at nothing for a hub or CLI request: only the schedule's retrying requests wait", async () => {
    const service = newService({
      quietStorage: { sampleMs: 300, recheckMs: 60_000, holdOffMs: 300, budgetMs: 600_000 },
    });
    const stopWriting = otherArchive();
    try {
      for (const trigger of [{ source: "hub", commandId: "c-2" }, { source: "cli" }] as const) {
        const before = looks();
        const looksAtStart: number[] = [];
        const ticket = await service.request({
          mode: "snapshot",
          trigger,
          onStarted: () => looksAtStart.push(looks()),
        });
        if (ticket.started) await ticket.done;
        await ticket.settled;
        expect(looksAtStart).toEqual([before]);
      }
    } finally {
      await stopWriting();
    }
  });

  it("keeps the slot pending in the schedule's state when the runtime stops during the wait, as a reload does", async () => {
    const statePath = join(stateDir, "schedule.json");
    const slot = "2026-12-05T02:30:00.000Z";
    await writeFile(statePath, JSON.stringify({ last_slot: slot, pending: slot }));
    let waiting!: () => void;
    const waits = new Promise<void>((r) => {
      waiting = r;
    });
    const log = silentLogger();
    const info = log.info.bind(log);
    log.info = ((obj: object, msg?: string) => {
      if (msg?.startsWith("the backup storage is growing")) waiting();
      info(obj, msg);
    }) as typeof log.info;
    const service = newService({
      log,
      quietStorage: { sampleMs: 300, recheckMs: 60_000, holdOffMs: 300, budgetMs: 600_000 },
    });
    let runEnded!: Promise<void>;
    const scheduler = new Scheduler({
      config: { cron: "30 2 * * *", timezone: "UTC", jitter_seconds: 0, missed: "run" },
      statePath,
      log: silentLogger(),
      onRun: (_reason, learn, began) => {
        runEnded = runScheduledBackup(
          service,
          { mode: "snapshot", signal: new AbortController().signal, log: silentLogger() },
          learn,
          began,
        );
        return runEnded;
      },
    });
    const stopWriting = otherArchive();
    try {
      // A reload's start runs the pending slot at once (jitter 0); it waits on the other archive.
      await scheduler.start({ catchUp: false });
      await waits;
      // settleRuntime's order: the schedule, then the service.
      const stopped = scheduler.stop();
      service.stop();
      await stopped;
      await runEnded;
      const state = JSON.parse(await readFile(statePath, "utf8"));
      expect(state.pending).toBe(slot);
      expect(sim.vzdumpRuns).toEqual([]);
    } finally {
      await scheduler.stop();
      await stopWriting();
      await rm(statePath, { force: true });
    }
  });

  /** The simulator's client with every call `ms` slower while `slow()` (pvedaemon busy at backup time). */
  const slowClient = (ms: number, slow: () => boolean = () => true): PveClient =>
    new Proxy(pve, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if (typeof v !== "function") return v;
        return async (...args: unknown[]) => {
          if (slow()) await new Promise((r) => setTimeout(r, ms));
          return v.apply(target, args);
        };
      },
    });

  it("joins a hub backup that starts while it still looks up its node (a slow PVE): no second backup", async () => {
    const outcomes: { ok: boolean; source: string }[] = [];
    let slow = true;
    const service = newService({
      pve: slowClient(300, () => slow),
      quietStorage: { sampleMs: 300, recheckMs: 300, holdOffMs: 300, budgetMs: 3_000 },
      onOutcome: (o, trigger) => outcomes.push({ ok: o.ok, source: trigger.source }),
    });
    const stopWriting = otherArchive();
    try {
      const scheduled = service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
      });
      // The hub's request comes while the scheduled one waits for its node (verifiedSelf, several calls).
      const hub = await service.request({ mode: "snapshot", trigger: { source: "hub", commandId: "c-1" } });
      expect(hub.started).toBe(true);
      slow = false;
      if (hub.started) await hub.done;
      const ticket = await scheduled;
      if (ticket.started) await ticket.done;
      await ticket.settled;
      expect(ticket.started).toBe(false);
      // The hub's backup fails at the quiesce (no Docker here); the point is that it is the only one.
      expect(outcomes).toEqual([{ ok: false, source: "hub" }]);
    } finally {
      await stopWriting();
    }
  });

  it("a slot that met another backup of the guest has begun: a stop before that backup ends leaves nothing pending", async () => {
    const statePath = join(stateDir, "schedule-join.json");
    const slot = "2026-12-05T02:30:00.000Z";
    await writeFile(statePath, JSON.stringify({ last_slot: slot, pending: slot }));
    // Slow enough that the hub's backup still runs when the slot's run meets it and the agent stops.
    const service = newService({ pve: slowClient(300) });
    const hub = await service.request({ mode: "snapshot", trigger: { source: "hub", commandId: "c-9" } });
    expect(hub.started).toBe(true);
    let runEnded: Promise<void> | undefined;
    const scheduler = new Scheduler({
      config: { cron: "30 2 * * *", timezone: "UTC", jitter_seconds: 0, missed: "run" },
      statePath,
      log: silentLogger(),
      onRun: (_reason, learn, began) => {
        runEnded = runScheduledBackup(
          service,
          { mode: "snapshot", signal: new AbortController().signal, log: silentLogger(), exactTime: true },
          learn,
          began,
        );
        return runEnded;
      },
    });
    try {
      // The pending slot runs at start (missed: run) and meets the hub's backup.
      await scheduler.start({ catchUp: true });
      await expect.poll(() => runEnded !== undefined, { timeout: 10_000, interval: 10 }).toBe(true);
      // SIGTERM while the hub's backup (the slot's backup) still runs: settleRuntime's order.
      const stopped = scheduler.stop();
      service.stop();
      await stopped;
      if (hub.started) await hub.done;
      await runEnded;
      const state = JSON.parse(await readFile(statePath, "utf8"));
      expect(state.pending).toBeUndefined();
    } finally {
      await rm(statePath, { force: true });
    }
  });
});
