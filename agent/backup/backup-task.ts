import type { VerifiedIdentity } from "../identity/identity-service.ts";
import { AgentError } from "../lib/errors.ts";
import { eventLine } from "../lib/report-text.ts";
import { submitVzdump } from "../pve/submit.ts";
import { followTask } from "../pve/task-follower.ts";
import type { BackupRequest } from "./backup-types.ts";
import { notesTemplate } from "./notes.ts";
import type { RunningBackup } from "./running-backup.ts";
import { DEFAULT_STALL_BOUNDS, StallWatch, stoppedStalledTask } from "./stall-watch.ts";

/**
 * A task still running after this long is not followed further: the backup is reported failed (the lock
 * is released, the next schedule can run) while PVE goes on with whatever it is stuck on.
 */
const TASK_FOLLOW_LIMIT_MS = 12 * 3600 * 1000;

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

/** POSTs the vzdump task for this guest; the run learns its UPID (journalled before anything follows it). */
export async function submitBackupTask(
  run: RunningBackup,
  { node, vmid }: VerifiedIdentity,
): Promise<string> {
  const { pve, log, backup: cfg } = run.deps;
  const submitted = await submitVzdump(
    pve,
    node,
    {
      vmid,
      storage: cfg.storage,
      mode: run.mode,
      compress: "zstd",
      // Never queue: a queued task that the agent stopped could be granted the node lock between its
      // `waiting...` line and the stop's SIGTERM, and the SIGKILL 5 s later can leave `lock: backup` or a
      // `vzdump` snapshot on the CT (VZDump.pm `getlock`, RESTEnvironment.pm `check_worker`). With 0, PVE
      // refuses at once, `(wait = 0)`, and there is nothing to stop.
      lockwait: 0,
      notesTemplate: notesTemplate(run.req.backupId),
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
  run.upid = submitted.upid;
  run.dispatch({ type: "submitted" });
  await run.journalPatch({
    upid: submitted.upid,
    phase: run.mode === "snapshot" ? "snapshot-wait" : "follow",
  });
  return submitted.upid;
}

/**
 * Follows the task to its end, feeding what its log says to the run's machine (snapshot line, busy lock,
 * failed snapshot) and its lines to the hub. A task that makes no progress is stopped and reported, not
 * followed for TASK_FOLLOW_LIMIT_MS. Throws VzdumpLockBusyError for a busy node's refusal.
 */
export async function followBackupTask(
  run: RunningBackup,
  { node, vmid }: VerifiedIdentity,
  upid: string,
  storageType: string | undefined,
): Promise<void> {
  const { pve, backup: cfg } = run.deps;
  const { signal } = run.req;
  const stall = new AbortController();
  let stalled: string | undefined;
  const watch = new StallWatch({
    bounds: run.deps.stall ?? DEFAULT_STALL_BOUNDS,
    storageType,
    storage: () => pve.storageStatus(node, cfg.storage),
    onStall: (reason) => {
      stalled = reason;
      stall.abort();
    },
  });
  try {
    for await (const ev of followTask(pve, node, upid, {
      deadlineMs: TASK_FOLLOW_LIMIT_MS,
      ...run.deps.follow,
      signal: signal ? AbortSignal.any([signal, stall.signal]) : stall.signal,
      // Quick polls only while the stacks wait on the task; once resumed (a deadline too), the usual backoff.
      isUrgent: () => run.urgent,
    })) {
      watch.see(ev);
      if (ev.type === "line") {
        run.tail.push(ev.text);
        run.progress({ line: eventLine(ev.text) });
      } else if (ev.type === "phase") {
        if (ev.phase.phase === "bytes-written") run.progress({ bytes: ev.phase.bytes });
        else if (ev.phase.phase === "backup-mode") run.dispatch({ type: "pve-mode", mode: ev.phase.mode });
        else
          run.dispatch({ type: "task-phase", phase: ev.phase.phase, ...(ev.seen ? { seen: ev.seen } : {}) });
      } else if (ev.type === "end") {
        run.task = ev.result;
      }
    }
  } catch (err) {
    if (stalled === undefined || signal?.aborted) throw err;
    run.dispatch({ type: "task-stalled" });
    throw await stoppedStalledTask(pve, { node, vmid, upid }, stalled);
  } finally {
    watch.stop();
  }
  run.dispatch({ type: "task-ended" });
  if (run.busy) throw new VzdumpLockBusyError(run.req.busyRetry);
  if (!run.task) throw new AgentError("internal", "the task follower ended without a result");
}
