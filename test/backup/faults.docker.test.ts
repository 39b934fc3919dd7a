import { createServer } from "node:net";
import { eventBody } from "@felhom/protocol";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { BackupService } from "../../agent/backup/backup-service.ts";
import type { BackupOutcome, BusyRetry } from "../../agent/backup/backup-types.ts";
import { outcomeEvent } from "../../agent/backup/outcome-event.ts";
import { recoverAtStart } from "../../agent/backup/recover-at-start.ts";
import { acquireOperationLock } from "../../agent/operation/operation-lock.ts";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, type HarnessOptions, startGuestHarness } from "../support/guest-harness.ts";

/** Faults on purpose (product-brief §2): whatever PVE does, the stacks come back and the report is true. */
let h: GuestHarness | undefined;
let before: string[] = [];
afterEach(async () => {
  // Nothing is left down: every container that ran before the test runs after it.
  if (h) expect(await h.running()).toEqual(before);
  await h?.close();
  h = undefined;
});

async function harness(o: HarnessOptions = {}) {
  h = await startGuestHarness({ archiveBytesPerSecond: 20e6, ...o });
  before = await h.running();
  return h;
}

/** What the journal says about the consistency of the copy PVE took (or would have taken). */
const journalledConsistency = async (g: GuestHarness) =>
  (await QuiesceJournal.open(statePaths(g.stateDir).quiesceJournal))?.data.backup.consistency;

/** A backup whose task counts as stalled after 3 s without progress (production: 10 min). */
const stalledBackup = (g: GuestHarness) =>
  runBackup(
    { ...g.deps(), stall: { logSilenceMs: 3_000, archiveIdleMs: 3_000, checkEveryMs: 250 } },
    { backupId: newBackupId(), mode: "snapshot", trigger: { source: "cli" } },
  );

/** A backup service with busy retries that records each outcome and the retry it promised. */
function recordingService(g: GuestHarness, busyRetry: { attempts: number; delay_seconds: number }) {
  const outcomes: BackupOutcome[] = [];
  const retries: Array<BusyRetry | undefined> = [];
  const service = new BackupService({
    ...g.deps(),
    backup: { ...g.backupConfig, busy_retry: busyRetry },
    onOutcome: (o, _trigger, info) => {
      outcomes.push(o);
      retries.push(info.retry);
    },
  });
  return { service, outcomes, retries };
}

const backup = (g: GuestHarness) =>
  runBackup(g.deps(), { backupId: newBackupId(), mode: "snapshot", trigger: { source: "cli" } });

describeDocker("backup faults (pve sim + real docker)", () => {
  it("refuses before any downtime what PVE would refuse only after the quiesce: a missing VM.Backup, a storage without backup content", async () => {
    const g = await harness({ variant: "missing-vm-backup" });
    const quiesced = () => g.events.some((e) => e.kind === "backup.phase" && e.phase === "quiesce");
    expect(await backup(g)).toMatchObject({
      ok: false,
      failure: {
        phase: "preflight",
        code: "pve_permission_denied",
        message: expect.stringMatching(/lacks VM\.Backup on \/vms\/101/),
        stacksResumed: true,
      },
    });
    expect(quiesced()).toBe(false);
    expect(g.sim.requests.some((r) => r.method === "POST")).toBe(false);
    await g.close();

    const ok = await harness();
    ok.sim.storages.get("bk")!.content = ["iso"];
    expect(await backup(ok)).toMatchObject({
      ok: false,
      failure: {
        phase: "preflight",
        code: "storage_unavailable",
        message: expect.stringMatching(/does not take backups/),
      },
    });
    expect(ok.events.some((e) => e.kind === "backup.phase" && e.phase === "quiesce")).toBe(false);
  });

  it("resumes the stacks at the downtime deadline when the snapshot never comes, and reports the task's real end", async () => {
    const g = await harness({ backup: { max_downtime_seconds: 3 } });
    g.sim.faults.hangTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    const done = backup(g);
    // The resume starts at the deadline, and the stacks are back while the task still hangs.
    const resumeStarted = () => g.events.some((e) => e.kind === "backup.phase" && e.phase === "resume");
    await expect.poll(resumeStarted, { timeout: 30_000, interval: 100 }).toBe(true);
    expect(g.events.some((e) => e.kind === "backup.phase" && e.phase === "follow")).toBe(false);
    await expect.poll(() => g.running(), { timeout: 30_000, interval: 250 }).toEqual(before);
    const task = g.sim.tasks.list().find((t) => t.type === "vzdump")!;
    expect(task.running).toBe(true);
    await g.pve.stopTask("pve1", task.upid);
    const outcome = await done;
    expect(outcome).toMatchObject({ ok: false, failure: { code: "vzdump_failed", stacksResumed: true } });
    // Had the task gone on, its archive would have been taken with the stacks running again.
    expect(await journalledConsistency(g)).toBe("crash");
  });

  it("takes a snapshot PVE failed to create for no snapshot: resumed at once, failed, journalled crash-consistent", async () => {
    const g = await harness();
    g.sim.faults.failSnapshot({ type: "vzdump" }, "lvcreate snapshot error: no space");
    const outcome = await backup(g);
    expect(outcome).toMatchObject({
      ok: false,
      failure: { code: "vzdump_failed", exitStatus: "job errors", stacksResumed: true },
    });
    expect(await journalledConsistency(g)).toBe("crash");
  });

  it("finds a good archive whose notes PVE could not write by the task log, and reports the warning", async () => {
    const g = await harness();
    g.sim.faults.failNotes({ type: "vzdump" }, "storage is read-only for notes");
    const outcome = await backup(g);
    const volid = g.sim.vzdumpRuns.at(-1)?.volid;
    expect(outcome).toMatchObject({ ok: true, result: { exitStatus: "WARNINGS: 1", volid } });
    const warnings = outcome.ok ? outcome.result.warnings : [];
    expect(warnings).toContain("WARN: unable to add notes - storage is read-only for notes");
    expect(warnings.some((w) => w.startsWith(`archive ${volid} has no notes with the backup id`))).toBe(true);
  });

  it("stops a task that hangs before the snapshot within the stall bound, reports it failed with the stacks up, and the next backup runs", async () => {
    const g = await harness({ backup: { max_downtime_seconds: 2 } });
    // Silent after this line, but a stop still reaches it (its clean-up runs and unlocks the CT).
    g.sim.faults.pauseTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    expect(await stalledBackup(g)).toMatchObject({
      ok: false,
      failure: {
        code: "vzdump_stalled",
        stacksResumed: true,
        message: expect.stringMatching(
          /made no progress \(no new log line for \d+ s\); the agent stopped it.*next backup can run/,
        ),
      },
    });
    expect(g.sim.tasks.list().every((t) => !t.running)).toBe(true);
    expect(await g.running()).toEqual(before);
    expect(await backup(g)).toMatchObject({ ok: true, result: { exitStatus: "OK" } });
  });

  it("stops a hung task found at start too, and reports it instead of following it until the next reboot", async () => {
    const g = await harness();
    const paused = g.sim.faults.pauseTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    const shutdown = new AbortController();
    const run = runBackup(g.deps(), {
      backupId: newBackupId(),
      mode: "snapshot",
      trigger: { source: "cli" },
      signal: shutdown.signal,
    });
    await paused.reached;
    await expect
      .poll(async () => (await QuiesceJournal.open(statePaths(g.stateDir).quiesceJournal))?.data.backup.upid)
      .toBeDefined();
    shutdown.abort(); // the agent stops; its next start finds the task in the journal
    expect(await run).toMatchObject({ ok: false, failure: { code: "interrupted" } });
    const { outcome } = await recoverAtStart({
      ...g.deps(),
      stall: { logSilenceMs: 3_000, archiveIdleMs: 3_000, checkEveryMs: 250 },
    });
    expect(outcome).toMatchObject({ ok: false, failure: { code: "vzdump_stalled", stacksResumed: true } });
    expect(g.sim.tasks.list().every((t) => !t.running)).toBe(true);
  });

  it("tells the admin what to run on the host when the stopped hung task left the CT locked", async () => {
    const g = await harness({ backup: { max_downtime_seconds: 2 } });
    // Deaf to the SIGTERM: the SIGKILL ends it before its clean-up, and `lock: backup` stays.
    g.sim.faults.hangTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    expect(await stalledBackup(g)).toMatchObject({
      ok: false,
      failure: {
        code: "vzdump_stalled",
        stacksResumed: true,
        message: expect.stringMatching(/locked \(backup\).*on the PVE host run pct unlock 101/),
      },
    });
    g.sim.setGuestLock(101, undefined); // what `pct unlock 101` does
  });

  it("counts the downtime deadline from the start of the quiesce: a pre hook that uses it up makes the backup crash-consistent", async () => {
    const g = await harness({
      dbStrategy: "exec",
      dbLabels: { "felhom.quiesce.pre": '["sleep", "3"]' },
      backup: { max_downtime_seconds: 2 },
    });
    const outcome = await backup(g);
    expect(outcome).toMatchObject({ ok: true, result: { exitStatus: "OK", consistency: "crash" } });
    // Resumed at once after the quiesce, before the snapshot was even asked for.
    const phases = g.events.flatMap((e) => (e.kind === "backup.phase" ? [e.phase] : []));
    expect(phases.indexOf("resume")).toBeLessThan(phases.indexOf("snapshot-wait"));
  });

  it("reports a database that was only frozen (pause, no pre hook) as crash-consistent, and a frozen one flushed by its pre hook as app-consistent", async () => {
    const bare = await harness({ dbStrategy: "pause" });
    expect(await backup(bare)).toMatchObject({ ok: true, result: { consistency: "crash" } });
    expect(await bare.running()).toEqual(before);
    await bare.close();
    const flushed = await harness({ dbStrategy: "pause", dbLabels: { "felhom.quiesce.pre": '["sync"]' } });
    expect(await backup(flushed)).toMatchObject({ ok: true, result: { consistency: "app" } });
  });

  it("reports an aborted quiesce once: the next start has nothing left to report", async () => {
    const g = await harness({ dbStrategy: "exec", dbLabels: { "felhom.quiesce.pre": '["false"]' } });
    const outcome = await backup(g);
    expect(outcome).toMatchObject({ ok: false, failure: { code: "quiesce_failed", stacksResumed: true } });
    expect((await recoverAtStart(g.deps())).outcome).toBeUndefined();
  });

  it("reports a container that would not start again on a good backup, refuses the next backup while it stays down, and goes on once it runs", async () => {
    const port = await freePort();
    const g = await harness({ appPort: port });
    const paused = g.sim.faults.pauseTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    const done = backup(g);
    await paused.reached;
    // The stacks are quiesced: something else takes the app's published port, so it cannot start again.
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, "127.0.0.1", r));
    try {
      paused.resume();
      const outcome = await done;
      expect(outcome).toMatchObject({ ok: true, result: { exitStatus: "OK", stacksResumed: false } });
      const warnings = outcome.ok ? outcome.result.warnings : [];
      expect(warnings.some((w) => /^resume: start of \S*[_-]app[_-]1 failed: /.test(w))).toBe(true);
      expect((await QuiesceJournal.open(statePaths(g.stateDir).quiesceJournal))?.finished).toBe(false);

      // The next backup tries the resume again first, and while the app stays down it quiesces nothing.
      const vzdumps = g.sim.vzdumpRuns.length;
      expect(await backup(g)).toMatchObject({
        ok: false,
        failure: { code: "stacks_down", stacksResumed: false },
      });
      expect(g.sim.vzdumpRuns.length).toBe(vzdumps);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    // Once the port is free again, the next backup finishes that resume first and runs.
    expect(await backup(g)).toMatchObject({ ok: true, result: { consistency: "app" } });
    expect((await QuiesceJournal.open(statePaths(g.stateDir).quiesceJournal))?.finished).toBe(true);
  });

  it("rides out 5xx answers and dropped connections while following the task, and still verifies the archive", async () => {
    const g = await harness();
    g.sim.faults.failNext(3, 503, "/log");
    g.sim.faults.dropConnections(2, "/status");
    const outcome = await backup(g);
    expect(outcome).toMatchObject({ ok: true, result: { exitStatus: "OK", consistency: "app" } });
    const failed = g.sim.requests.filter((r) => r.status === 503 || r.status === -1);
    expect(failed.length).toBe(5);
  });

  it("gives up at once when another guest holds the node's vzdump lock, resumes, and succeeds on a later retry", async () => {
    const g = await harness();
    const lock = g.sim.holdGlobalVzdumpLock();
    const { service, outcomes, retries } = recordingService(g, { attempts: 2, delay_seconds: 2 });
    const settled: Array<{ ok: boolean; startedAt: number }> = [];
    const first = await service.request({
      mode: "snapshot",
      trigger: { source: "schedule" },
      retryWhenBusy: true,
      onSettled: (o, startedAt) => settled.push({ ok: o.ok, startedAt }),
    });
    expect(first.started).toBe(true);
    const failed = await first.done;
    expect(failed).toMatchObject({
      ok: false,
      failure: {
        code: "vzdump_lock_busy",
        stacksResumed: true,
        message: expect.stringMatching(/the agent tries again later \(up to 1 more times\)/),
      },
    });
    expect(await g.running()).toEqual(before);
    const releasedAt = Date.now();
    lock.release();
    await expect.poll(() => outcomes.length, { timeout: 60_000, interval: 250 }).toBe(2);
    expect(outcomes[1]).toMatchObject({ ok: true, result: { exitStatus: "OK" } });
    // The refusal was not the slot's result (the daemon records neither it nor its metrics); the retry was.
    // The hub hears when: the first attempt's retry is 2 s ± 50 % away (attempts: 2, so one left).
    expect(retries).toEqual([{ attempt: 1, retriesLeft: 1, inSeconds: expect.any(Number) }, undefined]);
    expect(retries[0]!.inSeconds).toBeGreaterThanOrEqual(1);
    expect(retries[0]!.inSeconds).toBeLessThanOrEqual(3);
    expect(eventBody.safeParse(outcomeEvent(outcomes[0]!, retries[0])).success).toBe(true);
    // The request ends once, with the retry and the time it started: where the schedule learns the node was free.
    expect(settled).toEqual([{ ok: true, startedAt: expect.any(Number) }]);
    expect(settled[0]!.startedAt).toBeGreaterThanOrEqual(releasedAt);
    service.stop();
  });

  it("reports a promised retry as the slot's failure when the agent stops before it, and only then ends the request", async () => {
    const g = await harness();
    const lock = g.sim.holdGlobalVzdumpLock();
    const { service, outcomes, retries } = recordingService(g, { attempts: 3, delay_seconds: 600 });
    const settled: BackupOutcome[] = [];
    let ended = false;
    try {
      const first = await service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
        onSettled: (o) => settled.push(o),
      });
      void first.settled.then(() => {
        ended = true;
      });
      expect(await first.done).toMatchObject({ ok: false, failure: { code: "vzdump_lock_busy" } });
      await new Promise((r) => setImmediate(r));
      // A retry is promised: the slot has not ended (the schedule waits on `settled`).
      expect(retries).toEqual([{ attempt: 1, retriesLeft: 2, inSeconds: expect.any(Number) }]);
      expect(ended).toBe(false);
      service.stop();
      await first.settled;
    } finally {
      lock.release();
    }
    // The hub hears the slot's end once, final (no retry), saying why no retry came.
    expect(retries).toHaveLength(2);
    expect(retries[1]).toBeUndefined();
    expect(outcomes[1]).toMatchObject({
      ok: false,
      failure: {
        code: "vzdump_lock_busy",
        stacksResumed: true,
        message: expect.stringMatching(/no retry came: the agent stopped before retrying$/),
      },
    });
    expect(settled).toEqual([outcomes[1]]);
    expect(eventBody.safeParse(outcomeEvent(outcomes[1]!, retries[1])).success).toBe(true);
    expect(await g.running()).toEqual(before);
  });

  it("reports a refusal met after the service stopped as final, without promising a retry", async () => {
    const g = await harness();
    const lock = g.sim.holdGlobalVzdumpLock();
    const reported: Array<{ outcome: BackupOutcome; retry: BusyRetry | undefined }> = [];
    const service = new BackupService({
      ...g.deps(),
      backup: { ...g.backupConfig, busy_retry: { attempts: 3, delay_seconds: 2 } },
      onOutcome: (outcome, _trigger, info) => reported.push({ outcome, retry: info.retry }),
    });
    try {
      const first = await service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
      });
      expect(first.started).toBe(true);
      // The daemon stops (or reloads) while the attempt runs; PVE then refuses it.
      service.stop();
      await first.done;
      await first.settled;
    } finally {
      lock.release();
    }
    expect(reported).toEqual([
      {
        outcome: expect.objectContaining({
          ok: false,
          failure: expect.objectContaining({
            code: "vzdump_lock_busy",
            message: expect.stringMatching(/no retry came: the agent stopped before retrying$/),
          }),
        }),
        retry: undefined,
      },
    ]);
  });

  it("reports the slot failed when its last retry finds another operation holding the guest", async () => {
    const g = await harness();
    const lock = g.sim.holdGlobalVzdumpLock();
    const { service, outcomes, retries } = recordingService(g, { attempts: 2, delay_seconds: 2 });
    const settled: BackupOutcome[] = [];
    const first = await service.request({
      mode: "snapshot",
      trigger: { source: "schedule" },
      retryWhenBusy: true,
      onSettled: (o) => settled.push(o),
    });
    await first.done;
    lock.release();
    // A snapshot takes the guest before the one retry left.
    const snapshot = await acquireOperationLock(g.stateDir, {
      pid: process.pid,
      kind: "snapshot",
      operationId: "op-snapshot",
    });
    expect(snapshot.acquired).toBe(true);
    try {
      await first.settled;
    } finally {
      if (snapshot.acquired) await snapshot.release();
    }
    expect(retries).toEqual([{ attempt: 1, retriesLeft: 1, inSeconds: expect.any(Number) }, undefined]);
    expect(outcomes[1]).toMatchObject({
      ok: false,
      failure: {
        code: "vzdump_lock_busy",
        message: expect.stringMatching(
          /no retry came: snapshot op-snapshot held the guest at the last attempt$/,
        ),
      },
    });
    expect(settled).toEqual([outcomes[1]]);
    service.stop();
  });

  it("never queues for a busy node lock (lockwait 0), so no stop can race PVE's grant and leave the CT locked", async () => {
    const g = await harness();
    g.sim.vzdumpConf.mailto = ["admin@example.com"];
    const lock = g.sim.holdGlobalVzdumpLock();
    // Had the agent queued and then stopped its task, PVE would grant the lock as the stop landed.
    g.sim.faults.grantLockOnStop({ type: "vzdump" });
    try {
      // A CLI or hub request is not retried, and the failure says so.
      expect(await backup(g)).toMatchObject({
        ok: false,
        failure: {
          code: "vzdump_lock_busy",
          stacksResumed: true,
          message: expect.stringMatching(/this request is not retried/),
        },
      });
    } finally {
      lock.release();
    }
    const post = g.sim.requests.find((r) => r.method === "POST" && r.path === "/nodes/pve1/vzdump");
    expect(post?.params.lockwait).toBe("0");
    expect(g.sim.requests.some((r) => r.method === "DELETE" && r.path.includes("/tasks/"))).toBe(false);
    expect(g.sim.getGuest(101)?.lock).toBeUndefined();
    expect(await backup(g)).toMatchObject({ ok: true, result: { exitStatus: "OK" } });
    // PVE mailed the admin's vzdump.conf address about the refusal only, not about the good backup.
    expect(g.sim.notifications).toEqual([
      expect.objectContaining({ via: "sendmail", severity: "error", to: ["admin@example.com"] }),
    ]);
  });

  it("refuses a protected backup before quiescing once the guest has backup.max_protected_backups of them, and names PVE's refusal when the storage's limit is lower", async () => {
    const g = await harness({ backup: { protected: true, max_protected_backups: 2 } });
    g.sim.storages.get("bk")!.maxProtectedBackups = 1;
    expect(await backup(g)).toMatchObject({ ok: true });
    // The storage allows one: PVE refuses inside the task, and the failure says why.
    expect(await backup(g)).toMatchObject({
      ok: false,
      failure: { code: "protected_limit_reached", stacksResumed: true },
    });
    // The config mirrors a limit of one: refused before anything is quiesced or sent.
    const tight = { ...g.deps(), backup: { ...g.backupConfig, max_protected_backups: 1 } };
    const vzdumps = g.sim.vzdumpRuns.length;
    const stops = g.sim.requests.length;
    expect(
      await runBackup(tight, { backupId: newBackupId(), mode: "snapshot", trigger: { source: "cli" } }),
    ).toMatchObject({
      ok: false,
      failure: { phase: "preflight", code: "protected_limit_reached", stacksResumed: true },
    });
    expect(g.sim.vzdumpRuns.length).toBe(vzdumps);
    expect(g.sim.requests.slice(stops).every((r) => r.method === "GET")).toBe(true);
  });

  it("runs a scheduled backup later when a snapshot holds the guest at its time", async () => {
    const g = await harness();
    const snapshot = await acquireOperationLock(g.stateDir, {
      pid: process.pid,
      kind: "snapshot",
      operationId: "op-snapshot",
    });
    expect(snapshot.acquired).toBe(true);
    const outcomes: BackupOutcome[] = [];
    const service = new BackupService({
      ...g.deps(),
      backup: { ...g.backupConfig, busy_retry: { attempts: 3, delay_seconds: 2 } },
      onOutcome: (o) => outcomes.push(o),
    });
    const first = await service.request({
      mode: "snapshot",
      trigger: { source: "schedule" },
      retryWhenBusy: true,
    });
    expect(first).toMatchObject({ started: false, holder: { kind: "snapshot", operationId: "op-snapshot" } });
    if (snapshot.acquired) await snapshot.release();
    await expect.poll(() => outcomes.length, { timeout: 60_000, interval: 250 }).toBe(1);
    expect(outcomes[0]).toMatchObject({ ok: true, result: { exitStatus: "OK" } });
    service.stop();
  });

  it("refuses a second backup while one runs and hands back the running backup's id", async () => {
    const g = await harness();
    const service = new BackupService(g.deps());
    const first = await service.request({ mode: "snapshot", trigger: { source: "cli" } });
    const second = await service.request({ mode: "snapshot", trigger: { source: "hub" } });
    expect(second).toMatchObject({
      started: false,
      holder: { kind: "backup", operationId: first.started && first.backupId },
    });
    expect(await first.done).toMatchObject({ ok: true });
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}
