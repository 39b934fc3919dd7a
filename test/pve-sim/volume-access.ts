import type { AccessModel } from "./access-model.ts";

/**
 * The guest that owns a backup (`vzdump-<type>-<vmid>-...`, or a PBS snapshot `ct/<vmid>/<time>`), as
 * pve-storage's parse_volname (Plugin.pm, PBSPlugin.pm) reports it.
 */
export function backupOwner(file: string): number | undefined {
  const m = /^(?:vzdump-(?:lxc|qemu|openvz)-([1-9][0-9]{2,8})-|(?:ct|vm)\/(\d+)\/)/.exec(file);
  if (m?.[2] !== undefined) return Number(m[2]);
  return m ? Number(m[1]) : undefined;
}

/** A `volume` parameter as the API takes it: a full volid, or `backup/<file>` relative to the URL storage. */
export function volidOf(volume: string, storage: unknown): string {
  return volume.includes(":") ? volume : `${storage}:${volume}`;
}

/**
 * Storage.pm `check_volume_access` for a backup volume: root and Datastore.Allocate see everything; an owned
 * backup needs Datastore.AllocateSpace on the storage and VM.Backup on its owner; anything else needs Allocate.
 */
export function assertBackupAccess(
  access: AccessModel,
  user: string,
  storageId: string,
  owner: number | undefined,
): void {
  if (user === "root@pam" || access.has(user, `/storage/${storageId}`, "Datastore.Allocate")) return;
  if (owner === undefined) {
    access.check(user, `/storage/${storageId}`, ["Datastore.Allocate"]);
    return;
  }
  access.check(user, `/storage/${storageId}`, ["Datastore.AllocateSpace"]);
  access.check(user, `/vms/${owner}`, ["VM.Backup"]);
}

/** The non-raising form, used to filter content listings silently. */
export function canAccessBackup(
  access: AccessModel,
  user: string,
  storageId: string,
  owner: number | undefined,
): boolean {
  try {
    assertBackupAccess(access, user, storageId, owner);
    return true;
  } catch {
    return false;
  }
}
