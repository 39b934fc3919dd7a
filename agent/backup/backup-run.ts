import type { EventOf } from "@felhom/protocol";
import type { AgentConfig } from "../config/schema.ts";
import type { DockerEngine } from "../docker/docker-engine.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import { requireVerified, resolveIdentity, type VerifiedIdentity } from "../identity/identity-service.ts";
import { refuseAsRestoredCopy } from "../identity/restore-record.ts";
import { AgentError, errorMessage } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import type { PveClient } from "../pve/client.ts";
import { submitVzdump } from "../pve/submit.ts";
import { type FollowEvent, type FollowOptions, followTask, type TaskResult } from "../pve/task-follower.ts";
import { quiesceConsistency } from "../quiesce/consistency.ts";
import { QuiesceFailedError } from "../quiesce/errors.ts";
import type { QuiesceHandle, ResumeReport } from "../quiesce/executor.ts";
import { QuiesceJournal } from "../quiesce/journal.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import {
  journalLeftOpen,
  journalPath,
  prepareQuiesce,
  quiesceStacks,
  retryLeftoverResume,
} from "../quiesce/quiesce-stacks.ts";
import {
  type BackupDeps,
  type BackupEvent,
  type BackupMode,
  type BackupOutcome,
  type BackupPhase,
  type JournalBackupSection,
  LogTail,
  type Trigger,
} from "./backup-types.ts";
import { finishBackup } from "./finish-backup.ts";
import { stopModeBlackoutSeconds } from "./last-backup.ts";
import { clearMarker, writeMarker } from "./marker.ts";
import { notesTemplate } from "./notes.ts";
import { type OutsideArchive, outsideArchive, readMountPoints } from "./outside-archive.ts";
import { PROTECTED_LIMIT_HINT, protectedLimitProblem } from "./protected-limit.ts";
import { backupRefusedAhead } from "./refused-ahead.ts";
import { DEFAULT_STALL_BOUNDS, type StallBounds, StallWatch, stoppedStalledTask } from "./stall-watch.ts";

/**
 * A task still running after this long is not followed further: the backup is reported failed (the lock
 * is released, the next schedule can run) while PVE goes on with whatever it is stuck on.
 */
const TASK_FOLLOW_LIMIT_MS = 12 * 3600 * 1000;

export interface BackupRequest {
  backupId: string;
  mode: BackupMode;
  trigger: Trigger;
  /**
   * The agent is shutting down. Snapshot mode: resume now and leave the task to the next start, which
   * follows it and reports it. Stop mode after the POST: the guest itself is going down for the backup;
   * touch nothing, the next boot resumes and reports.
   */
  signal?: AbortSignal;
  /**
   * Whether the caller tries again if the node's vzdump lock is busy: `retriesLeft` more attempts
   * (backup.busy_retry), so that the failure says what will really happen. Undefined: no retry.
   */
  busyRetry?: { retriesLeft: number };
}

export class VzdumpLockBusyError extends AgentError {
  constructor(busyRetry: BackupRequest["busyRetry"]) {
    const base =
      "another backup holds the node's vzdump lock: PVE refused this one at once and the stacks were resumed";
    if (busyRetry && busyRetry.retriesLeft > 0) {
      super(
        "vzdump_lock_busy",
        `${base}; the agent tries again later (up to ${busyRetry.retriesLeft} more times)`,
        {
          hint: "nothing to do now; move the schedules of guests on this node apart if this happens often",
        },
      );
    } else {
      super(
        "vzdump_lock_busy",
        `${base}; ${busyRetry ? "no retry is left (backup.busy_retry.attempts)" : "this request is not retried"}`,
        {
          hint: "run the backup again once the node's other backup has finished (felhom-guest backup, or the hub's backup.run)",
        },
      );
    }
  }
}

/**
 * One backup, in the stages of product-brief §3. The undo of the quiesce (its `resume`) exists before
 * the first container is touched and runs on every exit path; the journal holds what a restarted agent
 * needs if this process dies anywhere in between.
 */
export async function runBackup(deps: BackupDeps, req: BackupRequest): Promise<BackupOutcome> {
  const { pve, log, backup: cfg } = deps;
  const { backupId, mode } = req;
  const started = Date.now();
  const tail = new LogTail(20);
  let phase: BackupPhase = "lock";
  let upid: string | null = null;
  let task: TaskResult | undefined;
  let handle: QuiesceHandle | undefined;
  let journal: QuiesceJournal | undefined;
  let resumed: Promise<ResumeReport> | undefined;
  let consistency: "app" | "crash" = "app";

  const announcePhase = (p: BackupPhase) =>
    deps.emit({ kind: "backup.phase", backupId, mode, phase: p, trigger: req.trigger });
  /**
   * The main line's phase: the one a failure names. `resume` runs beside it (from the snapshot, the
   * deadline or the task's end, while the task is still followed) and cannot fail the backup, so it is
   * announced without becoming the phase a failure reports.
   */
  const enter = (next: BackupPhase) => {
    phase = next;
    announcePhase(next);
  };
  let blackout: "stop-mode" | "snapshot-freeze" | undefined;
  /** The operation is over: the hub (and the link) stop waiting out the blackout it announced. */
  const endBlackout = () => {
    if (blackout) deps.emit({ kind: "blackout.ended", reason: blackout, operationId: backupId });
    blackout = undefined;
  };
  const journalPatch = (patch: Partial<JournalBackupSection>) =>
    journal
      ?.update({ backup: { ...patch } })
      .catch((err) => log.error({ err: errorMessage(err) }, "journal write failed"));

  /** Resume once, for whatever reason comes first: the snapshot exists, the deadline, the task ended, an error. */
  const startResume = (
    why: "snapshot" | "deadline" | "task-ended" | "busy" | "error",
  ): Promise<ResumeReport> | undefined => {
    if (!handle) return undefined;
    if (!resumed) {
      // Resumed before the storage snapshot existed: whatever PVE archives now is crash-consistent.
      if (why !== "snapshot" && why !== "task-ended") consistency = "crash";
      log.info({ backupId, why }, "resuming stacks");
      const h = handle;
      resumed = (async () => {
        announcePhase("resume");
        // Journalled before the first container moves: an agent killed after the resume must still know
        // whether the snapshot was taken while the stacks were down.
        await journalPatch({ consistency });
        const report = await h.resume();
        if (report.trigger !== "caller" && consistency === "app") {
          // The executor's own dead man's switch resumed the stacks before this run asked: the snapshot
          // that follows sees them running.
          consistency = "crash";
          await journalPatch({ consistency });
        }
        // The live system is no longer "inside a backup"; a restored copy still finds the marker.
        await clearMarker(deps.stateDir).catch((err) =>
          log.warn({ err: errorMessage(err) }, "could not clear the marker"),
        );
        return report;
      })();
    }
    return resumed;
  };

  let deadline: NodeJS.Timeout | undefined;
  // The service took the one-backup-per-guest lock before this run: the first event names the backup.
  enter("lock");
  try {
    enter("preflight");
    const { identity, plan, outside } = await preflight(deps, req);
    const { node, vmid } = identity;
    const notes = notesTemplate(backupId);

    enter("announce");
    blackout = mode === "stop" ? "stop-mode" : "snapshot-freeze";
    deps.emit({
      kind: "blackout",
      reason: blackout,
      expectedSeconds:
        mode === "stop" ? await stopModeBlackoutSeconds(deps.stateDir) : cfg.max_downtime_seconds,
      operationId: backupId,
    });

    // Stopping already: do not take the stacks down only to bring them back.
    if (req.signal?.aborted)
      throw new AgentError("interrupted", "the agent is shutting down; nothing was quiesced");
    enter("journal");
    // Downtime begins with the journal's fsync (a slow shutdown or pre hook counts), as does the
    // executor's backstop.
    const quiesceStarted = Date.now();
    const quiesced = await quiesceStacks(
      { engine: deps.engine, stateDir: deps.stateDir, logger: log },
      // The executor's own dead man's switch is the backstop should this process hang; the real
      // downtime deadline is the timer below, which also records that the backup became crash-consistent.
      // In stop mode the stacks stay down for the whole archive by design (the guest is off).
      {
        backupId,
        plan,
        downtimeDeadlineMs: (mode === "stop" ? 86_400 : cfg.max_downtime_seconds + 60) * 1000,
        // Journalled with the plan, so that an agent killed mid-quiesce still reports this backup.
        backup: {
          mode,
          trigger: req.trigger.source,
          startedAt: new Date(started).toISOString(),
          node,
          vmid,
          storage: cfg.storage,
          phase: "quiesce",
          ...(outside.notInArchive.length ? { outside } : {}),
        } satisfies JournalBackupSection,
        journalled: () => enter("quiesce"),
      },
    );
    handle = quiesced.handle;
    journal = quiesced.journal;
    consistency = quiesceConsistency(plan, handle);
    // Journalled now: an agent killed later must not take this copy for app-consistent.
    if (consistency === "crash") await journalPatch({ consistency });
    if (mode === "snapshot") {
      deadline = setTimeout(
        () => {
          log.warn(
            { backupId, seconds: cfg.max_downtime_seconds },
            "downtime deadline passed before the snapshot; resuming, the backup will be crash-consistent",
          );
          void startResume("deadline");
        },
        Math.max(0, cfg.max_downtime_seconds * 1000 - (Date.now() - quiesceStarted)),
      );
    }

    enter("marker");
    await writeMarker(deps.stateDir, {
      backupId,
      mode,
      takenAt: new Date().toISOString(),
      vmid,
      node,
      hostname: identity.hostname,
    });

    if (req.signal?.aborted)
      throw new AgentError("interrupted", "the agent is shutting down; the backup was not submitted");
    enter("submit");
    await journalPatch({ phase: "submit" });
    const submitted = await submitVzdump(
      pve,
      node,
      {
        vmid,
        storage: cfg.storage,
        mode,
        compress: "zstd",
        // Never queue: a queued task that the agent stopped could be granted the node lock between its
        // `waiting...` line and the stop's SIGTERM, and the SIGKILL 5 s later can leave `lock: backup` or a
        // `vzdump` snapshot on the CT (VZDump.pm `getlock`, RESTEnvironment.pm `check_worker`). With 0, PVE
        // refuses at once, `(wait = 0)`, and there is nothing to stop.
        lockwait: 0,
        notesTemplate: notes,
        // PVE notifies its admin of every job end, and of every refusal of a busy node (VZDump.pm
        // `send_notification`): through the notification system a success mail per guest per run by
        // default, and a token cannot set a job-id that would let a matcher tell these jobs apart. Legacy
        // mail on failure only goes to /etc/vzdump.conf's mailto, and nowhere if the admin set none; the
        // hub hears every outcome anyway. README "What the PVE admin sees".
        notificationMode: "legacy-sendmail",
        mailNotification: "failure",
        ...(cfg.protected ? { protected: true } : {}),
        // `remove` stays at PVE's default: with remove=0 a storage that has a keep-limit refuses every
        // backup of a guest already at that limit ("max backup limit of N enforced by the target
        // storage"), which our own retention keeps it at. The storage's policy prunes inside the task,
        // after the new archive is written; ours runs after it is verified.
      },
      { logger: log },
    );
    if (submitted.kind === "not-local") {
      throw new AgentError("guest_moved", `PVE says CT ${vmid} is not on node ${node}; nothing was started`, {
        hint: "the guest was probably migrated just now; the next run re-discovers the node",
      });
    }
    upid = submitted.upid;
    await journalPatch({ upid, phase: mode === "snapshot" ? "snapshot-wait" : "follow" });

    enter(mode === "snapshot" ? "snapshot-wait" : "follow");
    let busy = false;
    // A task that makes no progress is stopped and reported, not followed for TASK_FOLLOW_LIMIT_MS.
    const stall = new AbortController();
    let stalled: string | undefined;
    const watch = new StallWatch({
      bounds: deps.stall ?? DEFAULT_STALL_BOUNDS,
      storageUsed: async () => (await pve.storageStatus(node, cfg.storage)).used,
      onStall: (reason) => {
        stalled = reason;
        stall.abort();
      },
    });
    const onFollowEvent = (ev: FollowEvent): void => {
      if (ev.type === "line") {
        tail.push(ev.text);
        deps.emit({ kind: "backup.progress", backupId, phase, line: ev.text.slice(0, 1000) });
      } else if (ev.type === "phase") {
        const p = ev.phase;
        if (p.phase === "global-lock-timeout" && !busy) {
          // Another guest's backup holds the node: PVE refused ours at once and the task is ending.
          busy = true;
          void startResume("busy");
        } else if (mode === "snapshot" && p.phase === "snapshot-failed") {
          // No snapshot will come: resume now, and nothing of this run counts as app-consistent.
          clearTimeout(deadline);
          void startResume("error");
        } else if (mode === "snapshot" && (p.phase === "snapshot-created" || p.phase === "suspend-resumed")) {
          clearTimeout(deadline);
          void startResume("snapshot");
          enter("follow");
        } else if (p.phase === "bytes-written") {
          deps.emit({ kind: "backup.progress", backupId, phase, bytes: p.bytes });
        }
      } else if (ev.type === "end") {
        task = ev.result;
      }
    };
    const submittedUpid = upid;
    try {
      for await (const ev of followTask(pve, node, upid, {
        deadlineMs: TASK_FOLLOW_LIMIT_MS,
        ...deps.follow,
        signal: req.signal ? AbortSignal.any([req.signal, stall.signal]) : stall.signal,
        // Quick polls only while the stacks wait on the task; once resumed (a deadline too), the usual backoff.
        isUrgent: () => resumed === undefined,
      })) {
        watch.see(ev);
        onFollowEvent(ev);
      }
    } catch (err) {
      if (stalled === undefined || req.signal?.aborted) throw err;
      void startResume("error");
      throw await stoppedStalledTask(pve, { node, vmid, upid: submittedUpid }, stalled);
    } finally {
      watch.stop();
    }
    clearTimeout(deadline);
    if (busy) throw new VzdumpLockBusyError(req.busyRetry);
    await startResume("task-ended");
    if (!task) throw new AgentError("internal", "the task follower ended without a result");
    const finished = await finishBackup(deps, { backupId, node, vmid, task, enter, journalPatch });
    const warnings = finished.warnings;

    endBlackout();
    enter("report");
    const report = await resumed!;
    // The archive is good, but a stack is down: the hub must hear it (and the journal stays open, so the
    // next backup or start retries the resume).
    warnings.push(...resumeWarnings(report), ...outside.warnings);
    await journalPatch({ phase: "report", reported: true });
    return {
      ok: true,
      result: {
        backupId,
        mode,
        upid,
        volid: finished.volid,
        sizeBytes: finished.sizeBytes,
        totalMs: Date.now() - started,
        downtime: downtimeOf(report, plan),
        exitStatus: task.exitstatus,
        warnings: warnings.slice(0, 100),
        consistency,
        stacksResumed: report.finished,
        ...(finished.pruned ? { pruned: finished.pruned } : {}),
        ...(outside.notInArchive.length ? { notInArchive: outside.notInArchive } : {}),
      },
    };
  } catch (err) {
    clearTimeout(deadline);
    // A quiesce that aborted journalled this backup before it threw: mark it reported, or the next start
    // would report it a second time.
    if (!journal && err instanceof QuiesceFailedError) journal = await ownJournal(deps.stateDir, backupId);
    const shuttingDown = req.signal?.aborted === true;
    if (!(shuttingDown && mode === "stop" && upid)) startResume("error");
    const report = resumed ? await resumed : undefined;
    const resumeReport =
      report ?? (err instanceof QuiesceFailedError ? (err.resumeReport as ResumeReport) : undefined);
    // Interrupted by a shutdown after the POST, the task goes on in PVE: the next start reports it.
    const deferred = shuttingDown && upid !== null;
    await journalPatch(deferred ? { phase } : { phase, reported: true });
    if (!deferred) {
      endBlackout();
      // `backup.failed` follows; it names the phase that failed, not this one.
      announcePhase("report");
    }
    log.error({ backupId, phase, err: errorMessage(err) }, "backup failed");
    return {
      ok: false,
      failure: {
        backupId,
        mode,
        phase,
        code: shuttingDown ? "interrupted" : err instanceof AgentError ? err.code : "internal",
        message: errorMessage(err).slice(0, 2000),
        exitStatus: task?.exitstatus ?? null,
        upid,
        logTail: tail.lines(),
        // A failed post hook is in the failures too, but leaves nothing down: `finished` is the alarm.
        stacksResumed: resumeReport ? resumeReport.finished : !(await journalLeftOpen(deps.stateDir)),
      },
    };
  }
}

/**
 * Everything that can fail without downtime, checked before the first container is touched: who we are
 * (only a verified identity may write to PVE), that PVE is not busy with this guest, that the storage is
 * usable, and a valid quiesce plan.
 */
async function preflight(
  deps: BackupDeps,
  { backupId, mode }: BackupRequest,
): Promise<{ identity: VerifiedIdentity; plan: QuiescePlan; outside: OutsideArchive }> {
  const { pve, log, backup: cfg } = deps;
  const identity = await verifiedSelf(deps);
  const { node, vmid } = identity;
  const status = await pve.lxcStatus(node, vmid);
  if (status.lock) {
    throw new AgentError("guest_locked", `CT ${vmid} is locked (${status.lock}): PVE is busy with it`, {
      hint: "wait for the running operation (another backup, snapshot or migration) to finish",
    });
  }
  const storage = await pve.storageStatus(node, cfg.storage);
  if (storage.active === false || storage.enabled === false) {
    throw new AgentError("storage_unavailable", `backup storage ${cfg.storage} is not active on ${node}`, {
      hint: "check the storage on the PVE host (mounted? enabled for this node?)",
    });
  }
  const [onStorage, onGuest] = await Promise.all([
    pve.permissions({ path: `/storage/${cfg.storage}` }),
    pve.permissions({ path: `/vms/${vmid}` }),
  ]);
  const refusal = backupRefusedAhead({
    vmid,
    storage: cfg.storage,
    storageContent: storage.content,
    perms: { ...onStorage, ...onGuest },
  });
  if (refusal) throw new AgentError(refusal.code, refusal.message, { hint: refusal.hint });
  if (cfg.protected) {
    // PVE would refuse it only after the stacks were quiesced, and retention never frees a protected slot.
    const problem = protectedLimitProblem(
      await pve.backups(node, cfg.storage, vmid),
      vmid,
      cfg.max_protected_backups,
    );
    if (problem) throw new AgentError("protected_limit_reached", problem, { hint: PROTECTED_LIMIT_HINT });
  }
  await retryLeftoverResume({ engine: deps.engine, stateDir: deps.stateDir, logger: log });
  const mountPoints = await readMountPoints(pve, node, vmid, log);
  const prepared = await prepareQuiesce(
    { engine: deps.engine, stateDir: deps.stateDir, logger: log },
    {
      guestGoesDown: mode === "stop",
      ...(deps.projects ? { projects: deps.projects } : {}),
      ...(mountPoints ? { mountPoints } : {}),
    },
  );
  for (const w of prepared.warnings) log.warn({ backupId, code: w.code }, w.message);
  return { identity, plan: prepared.plan, outside: outsideArchive(prepared) };
}

/**
 * Who this guest is, for a PVE write (backup, snapshot): verified by PVE, and not a restored copy that has
 * not been enrolled (which the live check alone can verify as its original).
 */
export async function verifiedSelf(
  deps: Pick<BackupDeps, "pve" | "stateDir" | "configuredVmid" | "localFacts">,
): Promise<VerifiedIdentity> {
  await refuseAsRestoredCopy(deps.stateDir);
  return requireVerified(
    await resolveIdentity(deps.pve, { configuredVmid: deps.configuredVmid, local: deps.localFacts() }),
  );
}

async function ownJournal(stateDir: string, backupId: string): Promise<QuiesceJournal | undefined> {
  const j = await QuiesceJournal.open(journalPath(stateDir)).catch(() => undefined);
  return j?.data.backupId === backupId ? j : undefined;
}

/** A good archive can still leave a container down: each failed resume step, as a warning line. */
export function resumeWarnings(report: Pick<ResumeReport, "failures">): string[] {
  return report.failures.map((f) =>
    `resume: ${f.action} of ${f.container} failed: ${f.message}`.slice(0, 1000),
  );
}

/** Per planned service: first container quiesced → last resumed (what the resume report measured). */
export function downtimeOf(report: ResumeReport, plan: QuiescePlan): EventOf<"backup.completed">["downtime"] {
  return plan.levels.flat().flatMap((s) => {
    const ms = report.downtimeMs[`${s.project}/${s.service}`];
    return ms === undefined
      ? []
      : [{ project: s.project, service: s.service, strategy: s.strategy, downtimeMs: Math.round(ms) }];
  });
}
