import { requireVerified, resolveIdentity, type VerifiedIdentity } from "../identity/identity-service.ts";
import { refuseAsRestoredCopy } from "../identity/restore-record.ts";
import { AgentError, describeError } from "../lib/errors.ts";
import type { PveClient } from "../pve/client.ts";
import type { CtMountPoint } from "../pve/mount-points.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import { prepareQuiesce, retryLeftoverResume } from "../quiesce/quiesce-stacks.ts";
import type { BackupDeps, BackupRequest } from "./backup-types.ts";
import { type OutsideArchive, outsideArchive, readMountPoints } from "./outside-archive.ts";
import { PROTECTED_LIMIT_HINT, protectedLimitProblem } from "./protected-limit.ts";
import { backupRefusedAhead } from "./refused-ahead.ts";
import { planRun, type RunPlan, type SnapshotVerdict, snapshotVerdict } from "./snapshot-plan.ts";

/** How long the feature check may take before the backup goes on without its answer. */
const FEATURE_CHECK_TIMEOUT_MS = 15_000;

/**
 * Everything that can fail without downtime, checked before the first container is touched: who we are
 * (only a verified identity may write to PVE), that PVE is not busy with this guest, that the storage is
 * usable, whether snapshot mode will snapshot (and the plan for a CT where it will not), and a valid
 * quiesce plan.
 */
export async function preflight(
  deps: BackupDeps,
  { backupId, mode }: Pick<BackupRequest, "backupId" | "mode">,
): Promise<{
  identity: VerifiedIdentity;
  plan: QuiescePlan;
  outside: OutsideArchive;
  /** The backup storage's type (`dir`, `pbs`…): the stall watch's bounds depend on it. */
  storageType: string | undefined;
  /** How the run goes (snapshot-plan.ts), and what it says about that in the result. */
  runPlan: RunPlan;
  planWarnings: string[];
}> {
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
  const verdict = mode === "snapshot" ? await checkSnapshot(pve, node, vmid, mountPoints) : undefined;
  const planned = planRun(mode, verdict ?? { can: "yes" }, {
    policy: cfg.no_snapshot.policy,
    maxDowntimeSeconds: cfg.max_downtime_seconds,
    maxHoldSeconds: cfg.no_snapshot.max_hold_seconds,
  });
  if (!planned.ok) throw new AgentError("snapshot_unsupported", planned.message, { hint: planned.hint });
  const runPlan = planned.plan;
  const planWarnings: string[] = [];
  if (verdict?.can === "unknown") {
    log.info({ backupId, why: verdict.why }, "whether PVE will snapshot the CT is learned from its log");
    // PVE gave no answer at all (not the known over-cautious "no"): the hub should hear it.
    if (verdict.why.startsWith("PVE did not say"))
      planWarnings.push(
        `${verdict.why}; grant VM.Audit on /vms/${vmid}, or the fallback to suspend mode is only met in the task log`,
      );
  } else if (verdict?.can === "no")
    log.warn(
      { backupId, volumes: verdict.volumes, policy: cfg.no_snapshot.policy, mode: runPlan.mode },
      "the CT cannot be snapshotted: PVE would fall back to suspend mode; acting on backup.no_snapshot.policy",
    );
  const prepared = await prepareQuiesce(
    { engine: deps.engine, stateDir: deps.stateDir, logger: log },
    {
      guestGoesDown: runPlan.mode === "stop",
      ...(deps.projects ? { projects: deps.projects } : {}),
      ...(mountPoints ? { mountPoints } : {}),
    },
  );
  for (const w of prepared.warnings) log.warn({ backupId, code: w.code }, w.message);
  return {
    identity,
    plan: runPlan.quiesce ? prepared.plan : nothingQuiesced(prepared.plan),
    outside: outsideArchive(prepared),
    storageType: storage.type,
    runPlan,
    planWarnings,
  };
}

/** PVE's feature check, bounded, read against the CT's mount points (snapshot-plan.ts `snapshotVerdict`). */
export async function checkSnapshot(
  pve: Pick<PveClient, "lxcHasFeature">,
  node: string,
  vmid: number,
  mountPoints: readonly CtMountPoint[] | undefined,
): Promise<SnapshotVerdict> {
  const answer = await pve
    .lxcHasFeature(node, vmid, "snapshot", AbortSignal.timeout(FEATURE_CHECK_TIMEOUT_MS))
    .then(
      (hasFeature) => ({ hasFeature }),
      (err) => ({ error: describeError(err) }),
    );
  return snapshotVerdict(answer, mountPoints);
}

/** Policy `crash`: every service is left running, as if its strategy were `none`. */
function nothingQuiesced(plan: QuiescePlan): QuiescePlan {
  const services = plan.levels.flat().map((s) => ({ project: s.project, service: s.service }));
  return { levels: [], untouched: [...plan.untouched, ...services] };
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
