import type { Permissions } from "../pve/schemas.ts";

export interface Refusal {
  code: string;
  message: string;
  hint: string;
}

/**
 * What PVE would refuse only after the stacks were quiesced, found before: a backup PVE refuses costs no
 * downtime then. At POST time PVE checks Datastore.AllocateSpace on the storage (pve-manager
 * API2/VZDump.pm `vzdump`); inside the task, that the storage takes `backup` content (VZDump.pm
 * `storage_info`) and VM.Backup on the guest (`exec_backup`). `perms` are GET /access/permissions answers
 * for the two paths (for a privsep token already intersected with its user). Pure.
 */
export function backupRefusedAhead(o: {
  vmid: number;
  storage: string;
  /** The storage's `content` list as its status reports it (`backup,iso`); undefined: not reported. */
  storageContent: string | undefined;
  perms: Permissions;
}): Refusal | undefined {
  if (o.storageContent !== undefined && !o.storageContent.split(",").includes("backup")) {
    return {
      code: "storage_unavailable",
      message: `storage ${o.storage} does not take backups (content: ${o.storageContent || "none"}); PVE would fail the backup after the stacks were quiesced`,
      hint: `add "VZDump backup file" to the storage's content on the PVE host, or set backup.storage to one that has it`,
    };
  }
  const missing = [
    ["Datastore.AllocateSpace", `/storage/${o.storage}`],
    ["VM.Backup", `/vms/${o.vmid}`],
  ].filter(([priv, path]) => o.perms[path!]?.[priv!] === undefined);
  if (missing.length === 0) return undefined;
  return {
    code: "pve_permission_denied",
    message: `the token lacks ${missing.map(([priv, path]) => `${priv} on ${path}`).join(" and ")}; PVE would refuse the backup after the stacks were quiesced`,
    hint: "grant the FelhomGuest role on that path to BOTH the user and the token (felhom-guest doctor shows what is missing)",
  };
}
