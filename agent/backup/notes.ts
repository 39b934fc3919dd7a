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

export type ArchiveCheck<V extends ListedVolume> =
  | {
      ok: true;
      volume: V;
      /**
       * Set when the archive carries no notes with the backup id and was identified by the task log instead
       * (PVE only warns when it cannot add notes, VZDump.pm `exec_backup_task`): why, for the report.
       */
      warning?: string;
    }
  | { ok: false; reason: string };

/** Where the task log says vzdump wrote the archive: what the notes would have said. */
export interface TaskArchiveHint {
  storage: string;
  lines: readonly string[];
}

// VZDump.pm exec_backup_task: "creating $archive_txt archive '$task->{target}'"; the volid is
// "$storeid:backup/" plus the file's basename, or the PBS snapshot path (ct/N/<time>) as it stands.
const ARCHIVE_LINE_RE = /^INFO: creating (vzdump|Proxmox Backup Server) archive '(.+)'$/;

/** The volid the task log names for its archive, or undefined when it names none. */
export function archiveVolidFromLog({ storage, lines }: TaskArchiveHint): string | undefined {
  for (const line of lines) {
    const m = ARCHIVE_LINE_RE.exec(line);
    if (m) return `${storage}:backup/${m[1] === "vzdump" ? m[2]!.split("/").at(-1) : m[2]}`;
  }
  return undefined;
}

/**
 * Verification (brief §3 step 11): the archive must be listed for our vmid, carry our backup id in its
 * notes, and have a size above zero. Anything less is a failed backup, whatever the task said. When no
 * listed archive carries the id, the one the task log names counts if it has no notes of another backup:
 * PVE finishes a backup whose notes it could not write with `WARNINGS: 1`, and that archive is good.
 */
export function findArchive<V extends ListedVolume>(
  volumes: V[],
  backupId: string,
  vmid: number,
  fromLog?: TaskArchiveHint,
): ArchiveCheck<V> {
  const ours = volumes.filter((v) => backupIdFromNotes(v.notes) === backupId);
  let warning: string | undefined;
  if (ours.length === 0) {
    const volid = fromLog && archiveVolidFromLog(fromLog);
    const named = volid === undefined ? undefined : volumes.find((v) => v.volid === volid);
    if (!named || backupIdFromNotes(named.notes) !== undefined) {
      return {
        ok: false,
        reason: `no archive with notes "${NOTES_TAG}=${backupId}" is listed in the storage`,
      };
    }
    ours.push(named);
    warning = `archive ${named.volid} has no notes with the backup id (PVE could not add them); identified by the task log. Retention will not remove it: it removes only archives whose notes carry an id of this agent`;
  }
  const volume = ours[0]!;
  if (volume.vmid !== undefined && volume.vmid !== vmid) {
    return { ok: false, reason: `archive ${volume.volid} belongs to vmid ${volume.vmid}, not ${vmid}` };
  }
  if (!(volume.size > 0)) return { ok: false, reason: `archive ${volume.volid} has size ${volume.size}` };
  return warning ? { ok: true, volume, warning } : { ok: true, volume };
}
