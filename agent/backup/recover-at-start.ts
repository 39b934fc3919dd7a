import { AgentError, describeError } from "../lib/errors.ts";
import { backupSection, type JournalBackupSection } from "../operation/journal-section.ts";
import { listOurTasks } from "../pve/submit.ts";
import { followTaskToEnd, type TaskResult } from "../pve/task-follower.ts";
import { VzdumpLogRecogniser } from "../pve/vzdump-log.ts";
import type { ResumeReport } from "../quiesce/executor.ts";
import { QuiesceJournal } from "../quiesce/journal.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import { resumeFromJournal } from "../quiesce/resume-from-journal.ts";
import { statePaths } from "../state/paths.ts";
import type { Consistency } from "./backup-machine.ts";
import type { BackupDeps } from "./backup-types.ts";
import {
  type BackupOutcome,
  type BackupPhase,
  LogTail,
  pveModeField,
  resultWarnings,
} from "./backup-types.ts";
import { downtimeOf, resumeWarnings } from "./downtime.ts";
import { type FinishedBackup, finishBackup } from "./finish-backup.ts";
import { clearMarker } from "./marker.ts";
import { DEFAULT_STALL_BOUNDS, StallWatch, stoppedStalledTask } from "./stall-watch.ts";

export interface StartRecovery {
  /** What resuming an unfinished quiesce did (undefined: nothing was left quiesced). */
  resumed: ResumeReport | undefined;
  /** The backup that was in flight when the agent stopped, finished and reported now. */
  outcome: BackupOutcome | undefined;
}

/**
 * At agent start, before anything else: an unfinished quiesce journal means the agent died (SIGKILL,
 * power loss) or the guest went down for its own stop-mode backup while stacks were quiesced. First the
 * stacks come back, at once: nothing is worth keeping them down. Then the backup that was in flight is
 * followed to its end, verified and reported, so that no backup ever goes unreported and none is
 * reported green that did not happen.
 *
 * Only for the journal's own guest: a restored copy boots with its original's journal, and following that
 * task would report the original's backup as its own. The daemon calls this only after
 * agent/boot/start-up.ts decided who this system is.
 */
export async function recoverAtStart(
  deps: BackupDeps,
  /** The daemon is stopping: the stacks are resumed first anyway; following the task is left to the next start. */
  signal?: AbortSignal,
): Promise<StartRecovery> {
  const { log } = deps;
  const path = statePaths(deps.stateDir).quiesceJournal;
  const journal = await QuiesceJournal.open(path);
  if (!journal) return { resumed: undefined, outcome: undefined };
  // Another operation's journal (a snapshot's): its stacks are resumed, there is no backup to report.
  const section = backupSection(journal.data) ?? {};
  const backupId = journal.data.backupId;

  let resumed: ResumeReport | undefined;
  if (!journal.finished) {
    // Resumed now, the copy is app-consistent only if the snapshot already existed (or the task ended),
    // and only if the run had not already journalled it as crash-consistent (a failed quiesce step, a bare
    // freeze, a resume before the snapshot that this process died in the middle of).
    const consistency =
      section.consistency !== "crash" && section.upid && section.node
        ? await snapshotTaken(deps, section.node, section.upid)
        : "crash";
    section.consistency = consistency;
    resumed = await resumeFromJournal(path, deps.engine, { logger: log });
    const reopened = await QuiesceJournal.open(path);
    await reopened?.update({ backup: { consistency } });
    log.warn(
      { backupId, resumed: resumed?.resumed.length, failures: resumed?.failures.length },
      "resumed stacks left quiesced by an earlier run",
    );
  }
  await clearMarker(deps.stateDir).catch((err) =>
    log.warn({ err: describeError(err) }, "could not clear the marker"),
  );

  if (
    section.reported ||
    section.mode === undefined ||
    section.node === undefined ||
    section.vmid === undefined
  ) {
    return { resumed, outcome: undefined };
  }
  const outcome = await finishInFlight(
    deps,
    backupId,
    section as JournalBackupSection,
    journal.data.plan,
    resumed,
    signal,
  );
  // Interrupted by a shutdown: not reported, so the next start follows and reports it.
  if (!outcome) return { resumed, outcome: undefined };
  const latest = await QuiesceJournal.open(path);
  await latest?.update({ backup: { reported: true } });
  return { resumed, outcome };
}

/** True once the task log shows the storage snapshot done (or the task over). One read, no waiting. */
async function snapshotTaken(deps: BackupDeps, node: string, upid: string): Promise<Consistency> {
  try {
    const status = await deps.pve.taskStatus(node, upid);
    if (status.status === "stopped") return "app";
    const log = await deps.pve.taskLog(node, upid, { start: 0, limit: 0 });
    const recogniser = new VzdumpLogRecogniser();
    const seen = log.lines.flatMap((l) => recogniser.feed(l.t));
    return seen.some((p) => p.phase === "snapshot-created" || p.phase === "suspend-resumed")
      ? "app"
      : "crash";
  } catch (err) {
    deps.log.warn(
      { err: describeError(err) },
      "could not read the task to judge consistency; assuming crash-consistent",
    );
    return "crash";
  }
}

async function finishInFlight(
  deps: BackupDeps,
  backupId: string,
  s: JournalBackupSection,
  plan: QuiescePlan,
  resumed: ResumeReport | undefined,
  signal: AbortSignal | undefined,
): Promise<BackupOutcome | undefined> {
  const tail = new LogTail(20);
  // A failed post hook is among the failures too, but leaves nothing down: `finished` is the alarm.
  const stacksResumed = resumed ? resumed.finished : true;
  let phase = s.phase;
  // The same phase events as a backup finished live, told apart by their trigger.
  const enter = (next: BackupPhase) => {
    phase = next;
    deps.emit({
      kind: "backup.phase",
      backupId,
      mode: s.mode,
      phase: next,
      trigger: { source: "journal-replay" },
    });
  };
  const journalPatch = async (patch: Partial<JournalBackupSection>) => {
    const journal = await QuiesceJournal.open(statePaths(deps.stateDir).quiesceJournal).catch(
      () => undefined,
    );
    await journal
      ?.update({ backup: patch })
      .catch((err) => deps.log.error({ err: describeError(err) }, "journal write failed"));
  };
  // As a live run does (PROTOCOL.md): the blackout its run announced ends, and `report` precedes every
  // outcome. The run that would have said so is gone (killed, or its guest went down for a stop-mode backup).
  const conclude = (outcome: BackupOutcome): BackupOutcome => {
    const reason = s.mode === "stop" ? "stop-mode" : "snapshot-freeze";
    deps.emit({ kind: "blackout.ended", reason, operationId: backupId });
    enter("report");
    return outcome;
  };
  // The failure names the phase that failed: built before conclude() enters `report`.
  /** vzdump's `backup mode: X`, once the follower read it. */
  let pveMode: string | undefined;
  const fail = (code: string, message: string, task?: TaskResult): BackupOutcome =>
    conclude({
      ok: false,
      failure: {
        backupId,
        mode: s.mode,
        ...pveModeField(pveMode),
        phase,
        code,
        message: message.slice(0, 2000),
        exitStatus: task?.exitstatus ?? null,
        upid: s.upid ?? null,
        logTail: tail.lines(),
        stacksResumed,
      },
    });
  if (!s.upid) {
    // The agent stopped before PVE confirmed the POST. Whether it reached PVE is decided by the node's
    // task list, never by re-sending.
    const since = Math.floor(Date.parse(s.startedAt) / 1000) - 120;
    const ours = await listOurTasks(deps.pve, s.node, { type: "vzdump", vmid: s.vmid }, since).catch(
      () => [],
    );
    if (ours.length === 0)
      return fail(
        "interrupted",
        "the agent stopped before the backup was submitted to PVE; no task was started",
      );
    s.upid = ours.sort((a, b) => b.starttime - a.starttime)[0]!.upid;
  }
  if (resumed) enter("resume");
  enter("follow");
  let task: TaskResult;
  // A task that hangs is stopped and reported here too, not followed until the next reboot.
  const stall = new AbortController();
  let stalled: string | undefined;
  const watch = new StallWatch({
    bounds: deps.stall ?? DEFAULT_STALL_BOUNDS,
    storage: () => deps.pve.storageStatus(s.node, s.storage),
    onStall: (reason) => {
      stalled = reason;
      stall.abort();
    },
  });
  try {
    task = await followTaskToEnd(
      deps.pve,
      s.node,
      s.upid,
      { ...deps.follow, signal: signal ? AbortSignal.any([signal, stall.signal]) : stall.signal },
      (ev) => {
        watch.see(ev);
        if (ev.type === "line") tail.push(ev.text);
        else if (ev.type === "phase" && ev.phase.phase === "backup-mode") pveMode = ev.phase.mode;
      },
    );
  } catch (err) {
    if (signal?.aborted) return undefined;
    if (stalled !== undefined) {
      const error = await stoppedStalledTask(deps.pve, { node: s.node, vmid: s.vmid, upid: s.upid }, stalled);
      return fail(error.code, describeError(error));
    }
    return fail(
      err instanceof AgentError ? err.code : "internal",
      `could not follow task ${s.upid}: ${describeError(err)}`,
    );
  } finally {
    watch.stop();
  }
  let finished: FinishedBackup;
  try {
    finished = await finishBackup(deps, { backupId, node: s.node, vmid: s.vmid, task, enter, journalPatch });
  } catch (err) {
    return fail(err instanceof AgentError ? err.code : "internal", describeError(err), task);
  }
  return conclude({
    ok: true,
    result: {
      backupId,
      mode: s.mode,
      ...pveModeField(pveMode),
      upid: s.upid,
      volid: finished.volid,
      sizeBytes: finished.sizeBytes,
      totalMs: Date.now() - Date.parse(s.startedAt),
      downtime: resumed ? downtimeOf(resumed, plan) : [],
      exitStatus: task.exitstatus,
      warnings: resultWarnings([
        ...finished.warnings,
        ...(resumed ? resumeWarnings(resumed) : []),
        ...(s.outside?.warnings ?? []),
        ...(s.planWarnings ?? []),
      ]),
      consistency: s.mode === "stop" ? "app" : (s.consistency ?? "crash"),
      stacksResumed,
      ...(finished.pruned ? { pruned: finished.pruned } : {}),
      ...(s.outside?.notInArchive.length ? { notInArchive: s.outside.notInArchive } : {}),
    },
  });
}
