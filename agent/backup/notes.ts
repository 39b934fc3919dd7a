import { BACKUP_ID_PATTERN } from "./backup-id.ts";

/**
 * The vzdump `notes-template` that ties an archive to the backup that made it. PVE substitutes only
 * {{cluster}} {{guestname}} {{node}} {{vmid}} and refuses raw newlines, so the id is literal text and the
 * template stays one line. Verification finds the archive by this tag, not by timestamps.
 */
export const NOTES_TAG = "felhom-backup";

export function notesTemplate(backupId: string): string {
  if (!BACKUP_ID_PATTERN.test(backupId)) throw new Error(`not a backup id: ${backupId}`);
  return `${NOTES_TAG}=${backupId} {{guestname}} (CT {{vmid}} on {{node}})`;
}

/** The backup id recorded in an archive's notes, if the agent made it. */
export function backupIdFromNotes(notes: string | undefined): string | undefined {
  const match = notes?.match(new RegExp(`${NOTES_TAG}=(bk-[0-9TZ]+-[0-9a-f]{6})`));
  return match?.[1];
}

export interface ListedVolume {
  volid: string;
  size: number;
  notes?: string | undefined;
  vmid?: number | undefined;
  ctime?: number | undefined;
}

export type ArchiveCheck<V extends ListedVolume> = { ok: true; volume: V } | { ok: false; reason: string };

/**
 * Verification (brief §3 step 11): the archive must be listed for our vmid, carry our backup id in its
 * notes, and have a size above zero. Anything less is a failed backup, whatever the task said.
 */
export function findArchive<V extends ListedVolume>(
  volumes: V[],
  backupId: string,
  vmid: number,
): ArchiveCheck<V> {
  const ours = volumes.filter((v) => backupIdFromNotes(v.notes) === backupId);
  if (ours.length === 0) {
    return { ok: false, reason: `no archive with notes "${NOTES_TAG}=${backupId}" is listed in the storage` };
  }
  const volume = ours[0]!;
  if (volume.vmid !== undefined && volume.vmid !== vmid) {
    return { ok: false, reason: `archive ${volume.volid} belongs to vmid ${volume.vmid}, not ${vmid}` };
  }
  if (!(volume.size > 0)) return { ok: false, reason: `archive ${volume.volid} has size ${volume.size}` };
  return { ok: true, volume };
}
