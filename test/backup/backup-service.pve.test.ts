import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runScheduledBackup } from "../../agent/app/scheduled-backup.ts";
import { BackupService } from "../../agent/backup/backup-service.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { writeRestoreRecord } from "../../agent/identity/restore-record.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import type { OperationEvent } from "../../agent/operation/operation-deps.ts";
import { acquireOperationLock, operationHolder } from "../../agent/operation/operation-lock.ts";
import type { PveClient } from "../../agent/pve/client.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { simBackupConfig, simClient } from "../support/sim-client.ts";

/**
 * The service names a backup before its first event: whoever relays one backup's events (the daemon's
 * control socket, for an operator's `felhom-guest backup`) follows exactly its events from the first,
 * with nothing to buffer. A restored copy's record makes the run fail at preflight, before any downtime,
 * so the run is short and needs no Docker.
 */
describe("the backup service, against the PVE simulator", () => {
  let sim: PveSimulator;
  let pve: PveClient;
  let stateDir: string;

  beforeAll(async () => {
    sim = await startPveSimulator();
    const self = await selfScopedGuest(sim, { vmid: 101, hostname: "web1", hwaddr: "bc:24:11:0a:0b:0d" });
    pve = simClient(sim, self);
    stateDir = await mkdtemp(join(tmpdir(), "felhom-service-"));
    await writeRestoreRecord(stateDir, {
      detectedAt: new Date().toISOString(),
      fromBackupId: "bk-original",
      takenAt: new Date().toISOString(),
      originalVmid: 101,
      signals: ["marker"],
      originalUpid: null,
    });
  });

  afterAll(async () => {
    await pve?.close();
    await sim?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const newService = (emit: (e: OperationEvent) => void, busyRetry = "") => {
    return new BackupService({
      pve,
      engine: new DockerEngine({ socketPath: join(stateDir, "no-docker.sock") }),
      stateDir,
      backup: simBackupConfig(...(busyRetry ? ["busy_retry:", `  ${busyRetry}`] : [])),
      localFacts: () => ({ hostname: "web1", macs: [] }),
      emit,
      log: silentLogger(),
    });
  };

  it("hands out the backup's id before the backup's first event, and every event names it", async () => {
    const seen: (string | OperationEvent)[] = [];
    const service = newService((e) => seen.push(e));
    const ticket = await service.request({
      mode: "snapshot",
      trigger: { source: "cli" },
      onStarted: (id) => seen.push(id),
    });
    expect(ticket.started).toBe(true);
    if (!ticket.started) return;
    expect(await ticket.done).toMatchObject({
      ok: false,
      failure: { phase: "preflight", code: "identity_unverified" },
    });
    expect(seen[0]).toBe(ticket.backupId);
    const events = seen.slice(1) as OperationEvent[];
    expect(events.map((e) => (e.kind === "backup.phase" ? e.phase : e.kind))).toEqual([
      "lock",
      "preflight",
      "report",
    ]);
    for (const e of events) expect(e.kind === "backup.phase" && e.backupId).toBe(ticket.backupId);
  });

  it("releases the guest's lock when the caller's onStarted throws: no backup holds it that never ran", async () => {
    const service = newService(() => {});
    await expect(
      service.request({
        mode: "snapshot",
        trigger: { source: "cli" },
        onStarted: () => {
          throw new Error("relay gone");
        },
      }),
    ).rejects.toThrow("relay gone");
    expect(await operationHolder(stateDir)).toBeUndefined();
  });

  it("holds a schedule slot while its retry is pending, and lets it go at once when the service stops", async () => {
    // A snapshot holds the guest: the scheduled backup waits for a retry 10 min away (no Docker needed).
    const snapshot = await acquireOperationLock(stateDir, {
      pid: process.pid,
      kind: "snapshot",
      operationId: "op-snap",
    });
    expect(snapshot.acquired).toBe(true);
    const service = newService(() => {}, "delay_seconds: 600");
    const learned: Array<number | undefined> = [];
    let began = 0;
    let slotEnded = false;
    try {
      const slot = runScheduledBackup(
        service,
        { mode: "snapshot", signal: new AbortController().signal, log: silentLogger() },
        (at) => learned.push(at),
        () => began++,
      ).then(() => {
        slotEnded = true;
      });
      await new Promise((r) => setTimeout(r, 50));
      expect(slotEnded).toBe(false);
      service.stop();
      await slot;
    } finally {
      if (snapshot.acquired) await snapshot.release();
    }
    // Nothing was refused by PVE, so there is nothing to report and nothing to learn; no attempt began, so
    // the schedule keeps the slot pending for the next start.
    expect(learned).toEqual([]);
    expect(began).toBe(0);
  });

  it("runs no retry whose timer fired just before stop(): the attempt gives the lock back untouched", async () => {
    const snapshot = await acquireOperationLock(stateDir, {
      pid: process.pid,
      kind: "snapshot",
      operationId: "op-snap-race",
    });
    expect(snapshot.acquired).toBe(true);
    const service = newService(() => {}, "delay_seconds: 600");
    const started: string[] = [];
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const ticket = await service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
        onStarted: (id) => started.push(id),
      });
      expect(ticket.started).toBe(false);
      if (snapshot.acquired) await snapshot.release();
      // The retry's timer fires and its attempt starts taking the lock; stop() comes before it has it.
      vi.advanceTimersByTime(900_000);
      service.stop();
      vi.useRealTimers();
      await ticket.settled;
      await service.settled();
    } finally {
      vi.useRealTimers();
    }
    expect(started).toEqual([]);
    expect(await operationHolder(stateDir)).toBeUndefined();
  });
});
