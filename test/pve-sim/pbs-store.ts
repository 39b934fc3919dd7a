import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BackupFile } from "./backup-files.ts";
import type { Storage } from "./cluster-model.ts";

/**
 * A Proxmox Backup Server datastore, at the surface PVE sees through pve-storage's PBSPlugin.pm (no real
 * PBS: the simulator stands at the same API surface). A snapshot is a directory `<path>/ct/<vmid>/<time>/`
 * as on a PBS datastore, holding `index.json.blob` (the manifest: file sizes, and the `unprotected.notes`
 * that PBS keeps the notes in), `.protected` when protected, and `root.pxar.didx`, which here is a tar
 * stream of the root (pxar and chunking are PBS's business, not PVE's) so that restores work.
 */

/** PBSPlugin.pm `print_volid`: `<storeid>:backup/ct/<vmid>/<strftime %FT%TZ, gmtime>`. */
export function pbsSnapshotName(vmid: number, backupTime: number): string {
  const iso = new Date(backupTime * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  return `ct/${vmid}/${iso}`;
}

// PBSPlugin.pm `parse_volname`
const VOLNAME_RE = /^(vm|ct)\/(\d+)\/(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)$/;

export function parsePbsName(name: string): { btype: string; vmid: number; time: number } | undefined {
  const m = VOLNAME_RE.exec(name);
  return m ? { btype: m[1]!, vmid: Number(m[2]), time: Date.parse(m[3]!) / 1000 } : undefined;
}

interface Manifest {
  "backup-type": string;
  "backup-id": string;
  "backup-time": number;
  files: Array<{ filename: string; size: number }>;
  unprotected: { notes?: string };
}

const dirOf = (s: Storage, name: string) => join(s.path, name);
const manifestPath = (s: Storage, name: string) => join(dirOf(s, name), "index.json.blob");

async function readManifest(s: Storage, name: string): Promise<Manifest | undefined> {
  const text = await readFile(manifestPath(s, name), "utf8").catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as Manifest);
}

export function pbsSnapshotExists(s: Storage, name: string): Promise<boolean> {
  return stat(dirOf(s, name)).then(
    () => true,
    () => false,
  );
}

/** Where the backup client writes the root archive and the manifest of a new snapshot. */
export async function startPbsSnapshot(s: Storage, name: string): Promise<{ dir: string; root: string }> {
  const dir = dirOf(s, name);
  await mkdir(dir, { recursive: true });
  return { dir, root: join(dir, "root.pxar.didx") };
}

/** The manifest that makes the snapshot listed: what `proxmox-backup-client backup` uploads last. */
export async function finishPbsSnapshot(
  s: Storage,
  name: string,
  files: Array<{ filename: string; size: number }>,
): Promise<void> {
  const p = parsePbsName(name)!;
  const manifest: Manifest = {
    "backup-type": p.btype,
    "backup-id": String(p.vmid),
    "backup-time": p.time,
    files,
    unprotected: {},
  };
  await writeFile(manifestPath(s, name), JSON.stringify(manifest));
}

/** `proxmox-backup-client snapshot notes update` (PBSPlugin.pm `update_volume_notes`). */
export async function setPbsNotes(s: Storage, name: string, notes: string): Promise<void> {
  const m = await readManifest(s, name);
  if (!m) throw new Error(`backup snapshot '${name}' does not exist`);
  if (notes === "") delete m.unprotected.notes;
  else m.unprotected.notes = notes;
  await writeFile(manifestPath(s, name), JSON.stringify(m));
}

export async function pbsNotes(s: Storage, name: string): Promise<string | undefined> {
  return (await readManifest(s, name))?.unprotected.notes;
}

/** PBS keeps the protection as a `.protected` file in the snapshot directory. */
export async function setPbsProtected(s: Storage, name: string, on: boolean): Promise<void> {
  const flag = join(dirOf(s, name), ".protected");
  if (on) await writeFile(flag, "");
  else await rm(flag, { force: true });
}

export async function removePbsSnapshot(s: Storage, name: string): Promise<void> {
  await rm(dirOf(s, name), { recursive: true, force: true });
}

/**
 * PBSPlugin.pm `list_volumes`: every `vm`/`ct` snapshot with a numeric id, `format` `pbs-<type>`, `size` the
 * sum of the manifest's file sizes, `notes` the snapshot's `comment` (PBS lists the first line of the
 * notes as the comment), `protected` 1 when set. A snapshot without a manifest is still being written
 * and not listed.
 */
export async function listPbsBackups(s: Storage): Promise<BackupFile[]> {
  const out: BackupFile[] = [];
  for (const btype of ["ct", "vm"]) {
    for (const id of await readdir(join(s.path, btype)).catch(() => [] as string[])) {
      if (!/^\d+$/.test(id)) continue;
      for (const time of await readdir(join(s.path, btype, id)).catch(() => [] as string[])) {
        const name = `${btype}/${id}/${time}`;
        const parsed = parsePbsName(name);
        const m = parsed && (await readManifest(s, name));
        if (!parsed || !m) continue;
        const size = m.files.reduce((a, f) => a + f.size, 0);
        const comment = m.unprotected.notes?.split("\n")[0];
        const isProtected = await stat(join(dirOf(s, name), ".protected")).then(
          () => true,
          () => false,
        );
        out.push({
          volid: `${s.id}:backup/${name}`,
          file: name,
          path: dirOf(s, name),
          format: `pbs-${btype}`,
          size: size || 1,
          ctime: parsed.time,
          subtype: btype === "vm" ? "qemu" : "lxc",
          vmid: parsed.vmid,
          ...(comment !== undefined ? { notes: comment } : {}),
          ...(isProtected ? { protected: 1 as const } : {}),
          // PBS prunes every snapshot of a group: there are no "renamed" archives
          isStdName: true,
        });
      }
    }
  }
  return out.sort((a, b) => a.volid.localeCompare(b.volid));
}
