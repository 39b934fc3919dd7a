import { existsSync } from "node:fs";
import { BACKUP_PHASES } from "@felhom/protocol";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import type { OperationEvent } from "../../agent/operation/operation-deps.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, type HarnessOptions, startGuestHarness } from "../support/guest-harness.ts";

/**
 * The phases on the wire are the documented ones (PROTOCOL.md, Backup phases): every backup starts with
 * `lock`, `journal` is the journal's fsync (the journal exists only once `quiesce` is entered), `report`
 * precedes every outcome, the blackout ends before it, and a failure names the phase that failed — never
 * the resume that runs beside the task.
 */
let h: GuestHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** The run's events, and for each phase event whether the quiesce journal was on disk when it was sent. */
async function backupRecorded(o: HarnessOptions = {}, before?: (g: GuestHarness) => () => void) {
  h = await startGuestHarness({ archiveBytesPerSecond: 20e6, ...o });
  const g = h;
  const events: OperationEvent[] = [];
  const journalAt = new Map<string, boolean>();
  const emit = (e: OperationEvent) => {
    events.push(e);
    if (e.kind === "backup.phase") journalAt.set(e.phase, existsSync(statePaths(g.stateDir).quiesceJournal));
  };
  const after = before?.(g);
  let outcome: BackupOutcome;
  try {
    outcome = await runBackup(g.deps({ emit }), {
      backupId: newBackupId(),
      mode: "snapshot",
      trigger: { source: "cli" },
    });
  } finally {
    after?.();
  }
  const phases = events.flatMap((e) => (e.kind === "backup.phase" ? [e.phase] : []));
  const order = events.map((e) => (e.kind === "backup.phase" ? e.phase : e.kind));
  return { outcome, phases, order, journalAt };
}

describeDocker("backup phases on the wire (pve sim + real docker)", () => {
  it("a good backup sends every documented phase in order; journal before the journal exists, quiesce after", async () => {
    const { outcome, phases, order, journalAt } = await backupRecorded();
    expect(outcome).toMatchObject({ ok: true });
    // PROTOCOL.md's table, in its order (no retention configured here).
    expect(phases).toEqual(BACKUP_PHASES.filter((p) => p !== "retention"));
    expect(journalAt.get("journal")).toBe(false);
    expect(journalAt.get("quiesce")).toBe(true);
    // The blackout is announced before the journal and ends with the operation, before its report.
    expect(order.indexOf("blackout")).toBeLessThan(order.indexOf("journal"));
    expect(order.indexOf("blackout.ended")).toBe(order.indexOf("report") - 1);
  });

  // A 403 for a missing privilege would be one too, but preflight now refuses that before any downtime.
  it("a task that fails before the snapshot names snapshot-wait, not resume; report precedes the failure", async () => {
    const { outcome, phases, order } = await backupRecorded({}, (g) => {
      g.sim.faults.failSnapshot({ type: "vzdump" }, "snapshot feature is not available");
      return () => undefined;
    });
    expect(outcome).toMatchObject({
      ok: false,
      failure: { phase: "snapshot-wait", code: "vzdump_failed", stacksResumed: true },
    });
    expect(phases.slice(-3)).toEqual(["snapshot-wait", "resume", "report"]);
    expect(order.slice(-2)).toEqual(["blackout.ended", "report"]);
  });

  it("a busy node's vzdump lock names snapshot-wait", async () => {
    const { outcome, phases } = await backupRecorded({ backup: { lockwait_minutes: 0 } }, (g) => {
      const lock = g.sim.holdGlobalVzdumpLock();
      return () => lock.release();
    });
    expect(outcome).toMatchObject({
      ok: false,
      failure: { phase: "snapshot-wait", code: "vzdump_lock_busy", stacksResumed: true },
    });
    expect(phases.at(-1)).toBe("report");
  });

  it("a task that fails while archiving, after the snapshot, names follow", async () => {
    const { outcome, phases } = await backupRecorded({}, (g) => {
      g.sim.faults.failTask({ type: "vzdump" }, "archive write failed: No space left on device");
      return () => undefined;
    });
    expect(outcome).toMatchObject({
      ok: false,
      failure: { phase: "follow", code: "vzdump_failed", stacksResumed: true },
    });
    expect(phases.slice(-3)).toEqual(["resume", "follow", "report"]);
  });
});
