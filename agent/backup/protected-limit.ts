import type { BackupVolume } from "../pve/schemas.ts";

type Archive = Pick<BackupVolume, "vmid" | "protected">;

export const PROTECTED_LIMIT_HINT =
  "unprotect or delete old protected backups, raise the storage's max-protected-backups together with backup.max_protected_backups, or set backup.protected: false";

/** This guest's protected archives among `archives` (PVE counts them per guest and storage). */
export function countProtected(archives: readonly Archive[], vmid: number): number {
  return archives.filter((a) => a.vmid === vmid && a.protected).length;
}

/**
 * Whether a backup with `protected=1` can succeed. PVE caps protected archives per guest and storage at the
 * storage's `max-protected-backups`, 5 when unset for a caller without Datastore.Allocate (this role), and
 * fails the task over it — after the stacks were quiesced for nothing. Retention cannot free a slot: prune
 * never removes a protected archive. `limit` is `backup.max_protected_backups`; the agent cannot read the
 * storage option itself (storage.cfg needs more than this role), so the config mirrors it.
 *
 * Returns what is wrong and what to do, or undefined when there is room for one more.
 */
export function protectedLimitProblem(
  archives: readonly Archive[],
  vmid: number,
  limit: number,
): string | undefined {
  const count = countProtected(archives, vmid);
  if (count < limit) return undefined;
  return (
    `CT ${vmid} already has ${count} protected backup${count === 1 ? "" : "s"} on the backup storage, and PVE ` +
    `allows ${limit} per guest (backup.max_protected_backups), so it would refuse this one after the stacks ` +
    "were quiesced; retention never removes protected backups. Unprotect or delete old protected backups, or " +
    "have the PVE admin raise the storage's max-protected-backups and set backup.max_protected_backups to " +
    "match, or set backup.protected: false"
  );
}
