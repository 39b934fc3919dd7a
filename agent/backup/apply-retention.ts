import type { AgentConfig } from "../config/schema.ts";
import { describeError } from "../lib/errors.ts";
import { eventLine } from "../lib/report-text.ts";
import type { PveClient } from "../pve/client.ts";
import { isSuccess } from "../pve/exit-status.ts";
import { type FollowOptions, followTaskToEnd } from "../pve/task-follower.ts";
import { archivesToRemove, madeByAgent, retentionPolicy, retentionScope } from "./retention.ts";

export interface RetentionOutcome {
  /** The volids retention deleted. */
  removed: string[];
  /** What went wrong: a failure here is a warning on a good backup, not a failed one. */
  warnings: string[];
}

/**
 * Retention after a verified backup. Scope `agent` (the default): only archives with an agent backup id in
 * their notes, marked by PVE's own rules (retention.ts); scope `all`: what PVE's prune dry run marks over
 * every backup of the guest, the PVE admin's included. Either way each archive is deleted on its own
 * (`DELETE .../content/{volume}`, Datastore.AllocateSpace + VM.Backup on the owner: pve-storage
 * API2/Storage/Content.pm `delete`), so the result names exactly what was removed.
 */
export async function applyRetention(
  pve: PveClient,
  target: { node: string; storage: string; vmid: number },
  retention: NonNullable<AgentConfig["backup"]["retention"]>,
  follow: Pick<FollowOptions, "minIntervalMs" | "maxIntervalMs"> = {},
): Promise<RetentionOutcome> {
  const { node, storage, vmid } = target;
  const policy = retentionPolicy(retention)!;
  const outcome: RetentionOutcome = { removed: [], warnings: [] };
  let doomed: string[];
  try {
    doomed =
      retentionScope(retention) === "all"
        ? (await pve.pruneDryRun(node, storage, vmid, policy))
            .filter((item) => item.mark === "remove" && item.vmid === vmid)
            .map((item) => item.volid)
        : archivesToRemove(
            madeByAgent((await pve.backups(node, storage, vmid)).filter((v) => v.vmid === vmid)),
            policy,
          );
  } catch (err) {
    outcome.warnings.push(eventLine(`retention: could not list the backups: ${describeError(err)}`));
    return outcome;
  }
  for (const volid of doomed) {
    try {
      const upid = await pve.deleteVolume(node, storage, volid);
      const task = upid ? await followTaskToEnd(pve, node, upid, follow) : undefined;
      if (task && !isSuccess(task.classified))
        outcome.warnings.push(eventLine(`retention: deleting ${volid} ended with: ${task.exitstatus}`));
      else outcome.removed.push(volid);
    } catch (err) {
      outcome.warnings.push(eventLine(`retention: could not delete ${volid}: ${describeError(err)}`));
    }
  }
  return outcome;
}
