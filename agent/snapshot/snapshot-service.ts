import { randomBytes } from "node:crypto";
import type { EventOf } from "@felhom/protocol";
import { verifiedSelf } from "../backup/backup-preflight.ts";
import { LogTail } from "../backup/backup-types.ts";
import { downtimeOf } from "../backup/downtime.ts";
import { resolveIdentity } from "../identity/identity-service.ts";
import { AgentError, describeError } from "../lib/errors.ts";
import type { OperationDeps } from "../operation/operation-deps.ts";
import { withOperationLock } from "../operation/operation-lock.ts";
import { withQuiescedStacks } from "../operation/quiesced-stacks.ts";
import { snapshotNameProblem } from "../pve/client.ts";
import { isSuccess } from "../pve/exit-status.ts";
import { submitSnapshot } from "../pve/submit.ts";
import { followTaskToEnd } from "../pve/task-follower.ts";
import { quiesceConsistency } from "../quiesce/consistency.ts";
import { QuiesceFailedError } from "../quiesce/errors.ts";
import type { QuiesceHandle, ResumeReport } from "../quiesce/executor.ts";
import { journalLeftOpen, prepareQuiesce, retryLeftoverResume } from "../quiesce/quiesce-stacks.ts";

export type SnapshotDeps = Omit<OperationDeps, "emit" | "backup"> & {
  backup: Pick<OperationDeps["backup"], "max_downtime_seconds">;
};

/** Like a backup's outcome, in the shape of the hub's events (without `kind`). */
export type SnapshotOutcome<K extends "snapshot.created" | "snapshot.deleted"> =
  | { ok: true; result: Omit<EventOf<K>, "kind"> }
  | { ok: false; failure: Omit<EventOf<"snapshot.failed">, "kind"> };

export const newOperationId = (): string => `op-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;

/** Snapshot names PVE accepts, minus the reserved ones; checked before anything is quiesced. */
export function assertSnapshotName(name: string): void {
  const problem = snapshotNameProblem(name);
  if (problem)
    throw new AgentError("invalid_params", `snapshot name "${name}": ${problem}`, {
      hint: "e.g. before-upgrade",
    });
}

function withLock<T>(deps: SnapshotDeps, operationId: string, fn: () => Promise<T>): Promise<T> {
  return withOperationLock(deps.stateDir, { kind: "snapshot", operationId }, "a snapshot", fn);
}

/**
 * "Snapshot before an upgrade" (brief §4): the same quiesce as a backup, then PVE's snapshot task; the
 * stacks resume when the task has ended (the storage snapshot is taken inside it, with the CT frozen).
 */
export async function createSnapshot(
  deps: SnapshotDeps,
  name: string,
  opts: {
    description?: string | undefined;
    operationId?: string;
    /**
     * The process is stopping: resume the stacks now and report the snapshot interrupted (PVE's task
     * may still finish; such a snapshot would be crash-consistent).
     */
    signal?: AbortSignal;
  } = {},
): Promise<SnapshotOutcome<"snapshot.created">> {
  const { description, operationId = newOperationId(), signal } = opts;
  assertSnapshotName(name);
  const tail = new LogTail(20);
  let upid: string | null = null;
  let handle: QuiesceHandle | undefined;
  let report: ResumeReport | undefined;
  try {
    return await withLock(deps, operationId, async () => {
      const { node, vmid } = await verifiedSelf(deps);
      await refuseSnapshotAhead(deps, node, vmid, name);
      const quiesceDeps = { engine: deps.engine, stateDir: deps.stateDir, logger: deps.log };
      await retryLeftoverResume(quiesceDeps);
      const { plan } = await prepareQuiesce(quiesceDeps, deps.projects ? { projects: deps.projects } : {});
      // Stopping already: do not take the stacks down only to bring them back.
      if (signal?.aborted) throw new AgentError("interrupted", "the agent is stopping; nothing was quiesced");
      const section = { kind: "snapshot", name } as const;
      const downtimeDeadlineMs = deps.backup.max_downtime_seconds * 1000;
      return await withQuiescedStacks(
        quiesceDeps,
        { operationId, plan, downtimeDeadlineMs, section },
        async (q) => {
          handle = q.handle;
          if (signal?.aborted)
            throw new AgentError("interrupted", "the agent is stopping; nothing was submitted");
          const submitted = await submitSnapshot(deps.pve, node, vmid, name, {
            logger: deps.log,
            ...(description === undefined ? {} : { description }),
          });
          upid = submitted.upid;
          // The storage snapshot is taken inside the task, with the CT frozen: the stacks wait for its end.
          const task = await followKeepingTail(deps, node, upid, tail, signal);
          report = await q.handle.resume();
          if (!isSuccess(task.classified)) {
            throw new AgentError("snapshot_failed", `snapshot task ${upid} ended with: ${task.exitstatus}`, {
              hint: "see the log tail (a running backup holds the guest's lock; names must be unique)",
            });
          }
          const consistency =
            quiesceConsistency(plan, q.handle) === "app" && report.trigger === "caller" ? "app" : "crash";
          return {
            ok: true as const,
            result: {
              operationId,
              name,
              upid,
              downtime: downtimeOf(report, plan),
              consistency,
              stacksResumed: report.finished,
            },
          };
        },
      );
    });
  } catch (err) {
    // withQuiescedStacks resumed them on the way out; the same resume, for its report.
    if (handle && !report) report = await handle.resume();
    report ??= err instanceof QuiesceFailedError ? (err.resumeReport as ResumeReport) : undefined;
    // A failed post hook is a failure too, but leaves nothing down: `finished` is the alarm. Nothing
    // quiesced: whatever an earlier operation left down (stacks_down) is still down.
    const stacksResumed = report ? report.finished : !(await journalLeftOpen(deps.stateDir));
    const interrupted = signal?.aborted === true;
    return failed(
      { operationId, action: "create", name, upid, tail },
      interrupted
        ? new AgentError(
            "interrupted",
            `the agent stopped while the snapshot was being taken; ${stacksResumed ? "stacks resumed" : "NOT every container started again"}${upid ? `; PVE task ${upid} may still finish (crash-consistent)` : ""}`,
          )
        : err,
      stacksResumed,
    );
  }
}

/**
 * What PVE would refuse inside the snapshot task, after the quiesce (pve-guest-common AbstractConfig.pm
 * `snapshot_prepare`: `check_lock`, `snapshot name '…' already used`, and a volume that cannot snapshot),
 * refused before it: a snapshot that cannot happen costs no downtime.
 */
async function refuseSnapshotAhead(
  deps: SnapshotDeps,
  node: string,
  vmid: number,
  name: string,
): Promise<void> {
  const { lock } = await deps.pve.lxcStatus(node, vmid);
  if (lock)
    throw new AgentError("guest_locked", `CT ${vmid} is locked (${lock}): PVE is busy with it`, {
      hint: "wait for the running operation (a backup, snapshot or migration) to finish",
    });
  if (!(await deps.pve.lxcHasFeature(node, vmid, "snapshot")))
    throw new AgentError(
      "snapshot_unsupported",
      `CT ${vmid} cannot be snapshotted: a volume is on a storage without snapshots, or a mount point is a bind mount`,
      {
        // AbstractConfig.pm snapshot_prepare → LXC/Config.pm has_feature over every mount point; pve-storage
        // volume_has_feature answers no for a bind mount's host path
        hint: "snapshots need every mount point to be a volume on a snapshot-capable storage (LVM-thin, ZFS, Ceph RBD, btrfs), bind mounts included; back up instead",
      },
    );
  if ((await deps.pve.snapshots(node, vmid)).some((s) => s.name === name))
    throw new AgentError("snapshot_exists", `CT ${vmid} already has a snapshot named ${name}`, {
      hint: "choose another name, or delete the old snapshot first",
    });
}

export async function deleteSnapshot(
  deps: SnapshotDeps,
  name: string,
  opts: {
    operationId?: string;
    /** Stop following (the lock is released; PVE's task goes on): nothing is down, nothing to undo. */
    signal?: AbortSignal;
  } = {},
): Promise<SnapshotOutcome<"snapshot.deleted">> {
  const { operationId = newOperationId(), signal } = opts;
  assertSnapshotName(name);
  const tail = new LogTail(20);
  let upid: string | null = null;
  try {
    return await withLock(deps, operationId, async () => {
      const { node, vmid } = await verifiedSelf(deps);
      upid = await deps.pve.deleteSnapshot(node, vmid, name);
      const task = await followKeepingTail(deps, node, upid, tail, signal);
      if (!isSuccess(task.classified)) {
        throw new AgentError(
          "snapshot_failed",
          `snapshot delete task ${upid} ended with: ${task.exitstatus}`,
        );
      }
      return { ok: true as const, result: { operationId, name, upid } };
    });
  } catch (err) {
    const interrupted = signal?.aborted === true;
    return failed(
      { operationId, action: "delete", name, upid, tail },
      interrupted
        ? new AgentError(
            "interrupted",
            `stopped following the delete${upid ? `; PVE task ${upid} may still finish` : ""}`,
          )
        : err,
      true,
    );
  }
}

/** Follows a snapshot task to its end, keeping the last log lines for a failure report. */
function followKeepingTail(
  deps: SnapshotDeps,
  node: string,
  upid: string,
  tail: LogTail,
  signal?: AbortSignal,
) {
  return followTaskToEnd(
    deps.pve,
    node,
    upid,
    { ...deps.follow, recognisePhases: false, ...(signal ? { signal } : {}) },
    (ev) => {
      if (ev.type === "line") tail.push(ev.text);
    },
  );
}

function failed(
  op: { operationId: string; action: "create" | "delete"; name: string; upid: string | null; tail: LogTail },
  err: unknown,
  stacksResumed: boolean,
): { ok: false; failure: Omit<EventOf<"snapshot.failed">, "kind"> } {
  return {
    ok: false,
    failure: {
      operationId: op.operationId,
      action: op.action,
      name: op.name,
      code: err instanceof AgentError ? err.code : "internal",
      message: describeError(err).slice(0, 2000),
      upid: op.upid,
      logTail: op.tail.lines(),
      stacksResumed,
    },
  };
}

export async function listSnapshots(deps: SnapshotDeps) {
  const identity = await resolveIdentity(deps.pve, {
    configuredVmid: deps.configuredVmid,
    local: deps.localFacts(),
  });
  if (identity.vmid === undefined || identity.node === undefined) {
    throw new AgentError(
      "identity_unverified",
      identity.state === "unverified" ? identity.reason : "no guest",
    );
  }
  const list = await deps.pve.snapshots(identity.node, identity.vmid);
  return list.filter((s) => s.name !== "current");
}

/**
 * Rollback kills the running CT (PVE stops it with lxc-stop --kill, this agent included). Only ever on an
 * operator's explicit, confirmed command: the CLI asks for --yes-kill-the-guest; nothing else calls it.
 */
export async function rollbackSnapshot(deps: SnapshotDeps, name: string): Promise<string> {
  assertSnapshotName(name);
  const { node, vmid } = await verifiedSelf(deps);
  return deps.pve.rollbackSnapshot(node, vmid, name, { start: true });
}
