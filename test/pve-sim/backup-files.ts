import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Storage } from "./cluster-model.ts";
import { listPbsBackups, pbsNotes, setPbsNotes, setPbsProtected } from "./pbs-store.ts";

/** Backup archives on a directory storage, as pve-storage's Plugin.pm `$get_subdir_files` + `archive_info` see them. */
export interface BackupFile {
  volid: string;
  file: string;
  path: string;
  format: string;
  size: number;
  ctime: number;
  subtype: string;
  vmid?: number;
  notes?: string;
  protected?: 1;
  /** Standard `vzdump-<type>-<vmid>-YYYY_MM_DD-HH_MM_SS` name (only those are pruned). */
  isStdName: boolean;
}

const EXT_RE = /\.(tgz|(tar|vma)(\.(gz|lzo|zst|bz2))?)$/;
const STD_RE = /^vzdump-(openvz|lxc|qemu)-([1-9][0-9]{2,8})-(\d{4})_(\d\d)_(\d\d)-(\d\d)_(\d\d)_(\d\d)\./;
const TYPED_RE = /^vzdump-(openvz|lxc|qemu)-([1-9][0-9]{2,8})-/;

/** `vzdump-lxc-<vmid>-YYYY_MM_DD-HH_MM_SS` in node local time. */
export function backupBaseName(vmid: number, at: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  const ts = `${at.getFullYear()}_${p(at.getMonth() + 1)}_${p(at.getDate())}-${p(at.getHours())}_${p(at.getMinutes())}_${p(at.getSeconds())}`;
  return `vzdump-lxc-${vmid}-${ts}`;
}

/** `file` is the archive's name on a dir storage, the snapshot path `ct/<vmid>/<time>` on a PBS one. */
export function parseBackupVolid(volid: string): { storage: string; file: string } | undefined {
  const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):backup\/([^/]+|(?:ct|vm)\/\d+\/[^/]+)$/i.exec(volid);
  return m ? { storage: m[1] as string, file: m[2] as string } : undefined;
}

export async function listBackups(storage: Storage): Promise<BackupFile[]> {
  if (storage.type === "pbs") return listPbsBackups(storage);
  const dir = join(storage.path, "dump");
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: BackupFile[] = [];
  for (const file of names) {
    const ext = EXT_RE.exec(file);
    if (!ext) continue;
    const path = join(dir, file);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    const std = STD_RE.exec(file);
    const typed = TYPED_RE.exec(file);
    const item: BackupFile = {
      volid: `${storage.id}:backup/${file}`,
      file,
      path,
      format: ext[1] as string,
      size: st.size,
      ctime: std
        ? Math.floor(
            new Date(+std[3]!, +std[4]! - 1, +std[5]!, +std[6]!, +std[7]!, +std[8]!).getTime() / 1000,
          )
        : Math.floor(st.ctimeMs / 1000),
      subtype: typed ? (typed[1] as string) : "unknown",
      isStdName: std !== null,
      ...(typed ? { vmid: Number(typed[2]) } : {}),
    };
    const notes = await readFile(`${path}.notes`, "utf8").catch(() => undefined);
    if (notes !== undefined) item.notes = notes.split("\n")[0] as string;
    if (
      await stat(`${path}.protected`).then(
        () => true,
        () => false,
      )
    )
      item.protected = 1;
    out.push(item);
  }
  return out.sort((a, b) => a.volid.toLowerCase().localeCompare(b.volid.toLowerCase()));
}

/** The full notes (the listing shows the first line only): a `.notes` file, or the PBS manifest's. */
export function backupNotes(s: Storage, b: BackupFile): Promise<string | undefined> {
  if (s.type === "pbs") return pbsNotes(s, b.file);
  return readFile(`${b.path}.notes`, "utf8").catch(() => undefined);
}

/** PVE::Storage::update_volume_attribute 'notes': an empty text removes them. */
export async function setBackupNotes(s: Storage, b: BackupFile, notes: string): Promise<void> {
  if (s.type === "pbs") return setPbsNotes(s, b.file, notes);
  if (notes === "") await rm(`${b.path}.notes`, { force: true });
  else await writeFile(`${b.path}.notes`, notes);
}

/** PVE::Storage::update_volume_attribute 'protected'. */
export async function setBackupProtected(s: Storage, b: BackupFile, on: boolean): Promise<void> {
  if (s.type === "pbs") return setPbsProtected(s, b.file, on);
  if (on) await writeFile(`${b.path}.protected`, "");
  else await rm(`${b.path}.protected`, { force: true });
}
