import type { VerifiedIdentity } from "../identity/identity-service.ts";
import type { JournalBackupSection } from "../operation/journal-section.ts";
import { withQuiescedStacks } from "../operation/quiesced-stacks.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import { preflight } from "./backup-preflight.ts";
import { followBackupTask, submitBackupTask } from "./backup-task.ts";
import type { BackupDeps, BackupOutcome, BackupRequest } from "./backup-types.ts";
import { finishBackup } from "./finish-backup.ts";
import { stopModeBlackoutSeconds } from "./last-backup.ts";
import { writeMarker } from "./marker.ts";
import type { OutsideArchive } from "./outside-archive.ts";
import { RunningBackup } from "./running-backup.ts";

/**
 * One backup, in the stages of product-brief §3. The undo of the quiesce (its `resume`) exists before
 * the first container is touched and runs on every exit path; the journal holds what a restarted agent
 * needs if this process dies anywhere in between. When the stacks resume and what the copy is worth is
 * decided by the run's state machine (backup-machine.ts); this is the phase list that drives it.
 */
export async function runBackup(deps: BackupDeps, req: BackupRequest): Promise<BackupOutcome> {
  const { backupId } = req;
  const cfg = deps.backup;
  const run = new RunningBackup(deps, req);
  // The service took the one-operation-per-guest lock before this run: the first event names the backup.
  run.enter("lock");
  try {
    run.enter("preflight");
    const { identity, plan, outside, storageType, runPlan, planWarnings } = await preflight(deps, req);
    run.planned(runPlan, planWarnings);
    const mode = run.mode;

    run.enter("announce");
    // Snapshot mode: the deadline that applies until PVE's log says more (the hold bound from the start when
    // the preflight knew the CT cannot snapshot). A hold learned from `trying 'suspend' mode instead`
    // announces the rest of its bound then (backup-machine.ts `extend-blackout`): announcing the hold for
    // every unsure verdict would silence "agent offline" for an hour on CTs that snapshot in seconds.
    run.announceBlackout(
      mode === "stop" ? await stopModeBlackoutSeconds(deps.stateDir) : runPlan.deadlineSeconds,
    );
    run.refuseIfStopping("nothing was quiesced");

    run.enter("journal");
    const section: JournalBackupSection = {
      kind: "backup",
      mode,
      trigger: req.trigger.source,
      startedAt: new Date(run.started).toISOString(),
      node: identity.node,
      vmid: identity.vmid,
      storage: cfg.storage,
      phase: "quiesce",
      ...(outside.notInArchive.length ? { outside } : {}),
      ...(run.planWarnings.length ? { planWarnings: run.planWarnings } : {}),
    };
    return await withQuiescedStacks(
      { engine: deps.engine, stateDir: deps.stateDir, logger: deps.log },
      {
        operationId: backupId,
        plan,
        // The executor's backstop, should this process hang; the real downtime deadline is the machine's,
        // which also records that the backup became crash-consistent. In stop mode the stacks stay down
        // for the whole archive by design (the guest is off).
        downtimeDeadlineMs:
          (mode === "stop"
            ? 86_400
            : Math.max(runPlan.deadlineSeconds, runPlan.onFallback === "hold" ? runPlan.holdSeconds : 0) +
              60) * 1000,
        section,
        // Downtime begins with the journal's fsync (a slow shutdown or pre hook counts).
        journalled: () => run.journalled(),
      },
      (quiesced) =>
        run.whileQuiesced(quiesced, plan, () => whileDown(run, identity, plan, outside, storageType)),
    );
  } catch (err) {
    return await run.failed(err);
  }
}

/** From the quiesce to the report: marker, submit, the task (the stacks resume inside it), finish. */
async function whileDown(
  run: RunningBackup,
  identity: VerifiedIdentity,
  plan: QuiescePlan,
  outside: OutsideArchive,
  storageType: string | undefined,
): Promise<BackupOutcome> {
  const { deps, req } = run;
  const { node, vmid } = identity;
  run.enter("marker");
  const takenAt = new Date().toISOString();
  await writeMarker(deps.stateDir, {
    backupId: req.backupId,
    mode: run.mode,
    takenAt,
    vmid,
    node,
    hostname: identity.hostname,
  });
  run.refuseIfStopping("the backup was not submitted");

  run.enter("submit");
  await run.journalPatch({ phase: "submit" });
  const upid = await submitBackupTask(run, identity);

  run.enter(run.mode === "snapshot" ? "snapshot-wait" : "follow");
  await followBackupTask(run, identity, upid, storageType);
  await run.stacksBack();

  const finished = await finishBackup(deps, {
    backupId: req.backupId,
    node,
    vmid,
    task: run.task!,
    enter: (phase) => run.enter(phase),
    journalPatch: run.journalPatch,
  });

  run.endBlackout();
  run.enter("report");
  return await run.completed(finished, plan, outside);
}
