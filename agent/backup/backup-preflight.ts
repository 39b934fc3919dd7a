import { requireVerified, resolveIdentity, type VerifiedIdentity } from "../identity/identity-service.ts";
import { refuseAsRestoredCopy } from "../identity/restore-record.ts";
import { AgentError } from "../lib/errors.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import { prepareQuiesce, retryLeftoverResume } from "../quiesce/quiesce-stacks.ts";
import type { BackupDeps, BackupRequest } from "./backup-types.ts";
import { type OutsideArchive, outsideArchive, readMountPoints } from "./outside-archive.ts";
import { PROTECTED_LIMIT_HINT, protectedLimitProblem } from "./protected-limit.ts";
import { backupRefusedAhead } from "./refused-ahead.ts";

/**
 * Everything that can fail without downtime, checked before the first container is touched: who we are
 * (only a verified identity may write to PVE), that PVE is not busy with this guest, that the storage is
 * usable, and a valid quiesce plan.
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
  const prepared = await prepareQuiesce(
    { engine: deps.engine, stateDir: deps.stateDir, logger: log },
    {
      guestGoesDown: mode === "stop",
      ...(deps.projects ? { projects: deps.projects } : {}),
      ...(mountPoints ? { mountPoints } : {}),
    },
  );
  for (const w of prepared.warnings) log.warn({ backupId, code: w.code }, w.message);
  return { identity, plan: prepared.plan, outside: outsideArchive(prepared), storageType: storage.type };
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
