import { readdir, stat, statfs } from "node:fs/promises";
import { join } from "node:path";
import type { Route } from "./api-server.ts";
import {
  backupNotes,
  listBackups,
  parseBackupVolid,
  setBackupNotes,
  setBackupProtected,
} from "./backup-files.ts";
import type { Storage } from "./cluster-model.ts";
import { dieError } from "./http-error.ts";
import { type KeepOptions, markBackups, parseKeep } from "./prune.ts";
import { stdProps } from "./schema.ts";
import type { PveSimulator } from "./simulator.ts";
import { TaskError } from "./task-registry.ts";
import { assertBackupAccess, backupOwner, canAccessBackup, volidOf } from "./volume-access.ts";
import { prunePbsGroups, removeArchive } from "./vzdump-task.ts";

const pruneProp = {
  type: "string",
  optional: true,
  format: (v: string) => {
    const k = parseKeep(v);
    return typeof k === "string" ? k.replace(/^invalid format - /, "").replace(/\n$/, "") : undefined;
  },
} as const;

/** Storage status, content (with per-volume visibility), volume deletion and pruning (pve-storage API2). */
export function storageRoutes(sim: PveSimulator): Route[] {
  const auditOrSpace = (user: string, raw: Record<string, string>) =>
    sim.access.checkAny(user, `/storage/${raw.storage}`, ["Datastore.Audit", "Datastore.AllocateSpace"]);

  /** The volume id from `volume` (full volid or `backup/<file>` with the URL storage) and its listing entry. */
  const volumeFor = async (node: string, storage: unknown, volume: string) => {
    const volid = volidOf(volume, storage);
    const parsed = parseBackupVolid(volid);
    if (!parsed) throw dieError(`unable to parse volume ID '${volid}'`);
    const s = sim.storageOn(node, parsed.storage);
    const backup = (await listBackups(s)).find((b) => b.volid === volid);
    if (!backup) throw dieError(`volume '${volid}' does not exist`);
    return { s, backup };
  };

  const keepFor = (s: Storage, param: unknown): KeepOptions => {
    const raw = typeof param === "string" ? param : s.pruneBackups;
    if (raw === undefined) throw new TaskError(`no prune-backups options configured for storage '${s.id}'`);
    const keep = parseKeep(raw);
    if (typeof keep === "string") throw new TaskError(keep);
    return keep;
  };

  return [
    {
      method: "GET",
      path: "/nodes/{node}/storage",
      schema: {
        node: stdProps.node,
        content: { type: "string", optional: true },
        storage: { ...stdProps.storage, optional: true },
        enabled: { type: "boolean", optional: true },
      },
      handler: async ({ user, params }) => {
        const node = String(params.node);
        sim.assertNode(node);
        const out: Record<string, unknown>[] = [];
        for (const s of sim.storages.values()) {
          if (s.nodes && !s.nodes.includes(node)) continue;
          if (params.storage !== undefined && s.id !== params.storage) continue;
          if (typeof params.content === "string" && !s.content.includes(params.content)) continue;
          const path = `/storage/${s.id}`;
          if (
            !sim.access.has(user, path, "Datastore.Audit") &&
            !sim.access.has(user, path, "Datastore.AllocateSpace")
          )
            continue;
          out.push({
            storage: s.id,
            type: s.type,
            ...(await usage(s, sim.opts.storageUsedFrom)),
            content: s.content.join(","),
            active: 1,
            enabled: 1,
            shared: s.nodes ? 0 : 1,
          });
        }
        return out;
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/storage/{storage}/status",
      schema: { node: stdProps.node, storage: stdProps.storage },
      permission: auditOrSpace,
      handler: async ({ params }) => {
        const s = sim.storageOn(String(params.node), String(params.storage));
        // pve-storage PVE/Storage.pm storage_info: every storage starts as total, avail and used 0 and
        // active 0, and keeps that when activate_storage or the plugin's status fails (it only warns).
        const unreadable = s.unreadable?.() === true;
        return {
          type: s.type,
          content: s.content.join(","),
          ...(unreadable ? { total: 0, avail: 0, used: 0 } : await usage(s, sim.opts.storageUsedFrom)),
          active: unreadable ? 0 : 1,
          enabled: 1,
          shared: s.nodes ? 0 : 1,
        };
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/storage/{storage}/content",
      schema: {
        node: stdProps.node,
        storage: stdProps.storage,
        content: { type: "string", optional: true },
        vmid: { ...stdProps.vmid, optional: true },
      },
      permission: auditOrSpace,
      handler: async ({ user, params }) => {
        const s = sim.storageOn(String(params.node), String(params.storage));
        if (params.content !== undefined && params.content !== "backup") return [];
        const vmid = params.vmid === undefined ? undefined : Number(params.vmid);
        return (
          (await listBackups(s))
            // Plugin.pm matches the vmid in the file name; PBSPlugin.pm `list_volumes` asks PBS for the backup-id
            .filter(
              (b) =>
                vmid === undefined || (s.type === "pbs" ? b.vmid === vmid : b.file.includes(`-${vmid}-`)),
            )
            .filter((b) => canAccessBackup(sim.access, user, s.id, b.vmid))
            .map((b) => ({
              volid: b.volid,
              content: "backup",
              format: b.format,
              size: b.size,
              ctime: b.ctime,
              subtype: b.subtype,
              ...(b.vmid !== undefined ? { vmid: b.vmid } : {}),
              ...(b.notes !== undefined ? { notes: b.notes } : {}),
              ...(b.protected ? { protected: 1 } : {}),
            }))
        );
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/storage/{storage}/content/{volume}",
      schema: {
        node: stdProps.node,
        storage: { ...stdProps.storage, optional: true },
        volume: { type: "string" },
      },
      handler: async ({ user, params }) => {
        const { s, backup } = await volumeFor(String(params.node), params.storage, String(params.volume));
        assertBackupAccess(sim.access, user, s.id, backup.vmid);
        const notes = await backupNotes(s, backup);
        return {
          // PBSPlugin.pm `path`: an artificial pbs:// URL
          path: s.pbs
            ? `pbs://${s.pbs.username}@${s.pbs.server}:${s.pbs.datastore}/${backup.file}`
            : backup.path,
          size: backup.size,
          used: backup.size,
          format: backup.format,
          ...(notes !== undefined ? { notes } : {}),
          ...(backup.protected ? { protected: 1 } : {}),
        };
      },
    },
    {
      method: "PUT",
      path: "/nodes/{node}/storage/{storage}/content/{volume}",
      schema: {
        node: stdProps.node,
        storage: { ...stdProps.storage, optional: true },
        volume: { type: "string" },
        notes: { type: "string", optional: true },
        protected: { type: "boolean", optional: true },
      },
      handler: async ({ user, params }) => {
        const { s, backup } = await volumeFor(String(params.node), params.storage, String(params.volume));
        assertBackupAccess(sim.access, user, s.id, backup.vmid);
        if (typeof params.notes === "string") await setBackupNotes(s, backup, params.notes);
        if (params.protected === 1 || params.protected === 0)
          await setBackupProtected(s, backup, params.protected === 1);
        return null;
      },
    },
    {
      method: "DELETE",
      path: "/nodes/{node}/storage/{storage}/content/{volume}",
      schema: {
        node: stdProps.node,
        storage: { ...stdProps.storage, optional: true },
        volume: { type: "string" },
        delay: { type: "integer", minimum: 1, maximum: 30, optional: true },
      },
      handler: async ({ user, params }) => {
        const node = String(params.node);
        const volume = String(params.volume);
        const volid = volidOf(volume, params.storage);
        const parsed = parseBackupVolid(volid);
        if (!parsed) throw dieError(`unable to parse volume ID '${volid}'`);
        const s = sim.storageOn(node, parsed.storage);
        const file = parsed.file;
        const owner = backupOwner(file);
        // Content.pm delete: an owned backup needs AllocateSpace + VM.Backup (Allocate alone does not do)
        if (owner !== undefined) {
          sim.access.check(user, `/storage/${s.id}`, ["Datastore.AllocateSpace"]);
          sim.access.check(user, `/vms/${owner}`, ["VM.Backup"]);
        } else sim.access.check(user, `/storage/${s.id}`, ["Datastore.Allocate"]);
        const task = sim.taskRegistry.start(node, "imgdel", `${owner ?? ""}@${s.id}`, user, async (ctx) => {
          const isProtected = (await listBackups(s)).find((b) => b.volid === volid)?.protected;
          if (isProtected)
            throw new TaskError(`cannot remove protected volume 'backup/${file}' on '${s.id}'`);
          await removeArchive(s, volid);
          await ctx.log(`Removed volume '${volid}'`);
        });
        if (params.delay === undefined) return task.upid;
        const finished = await Promise.race([
          task.done.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), Number(params.delay) * 1000)),
        ]);
        if (!finished) return task.upid;
        if (task.exitstatus !== "OK") throw dieError(task.exitstatus ?? "unexpected status");
        return null;
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/storage/{storage}/prunebackups",
      schema: {
        node: stdProps.node,
        storage: stdProps.storage,
        "prune-backups": pruneProp,
        type: { type: "string", enum: ["qemu", "lxc"], optional: true },
        vmid: { ...stdProps.vmid, optional: true },
      },
      permission: auditOrSpace,
      handler: async ({ params }) => {
        const s = sim.storageOn(String(params.node), String(params.storage));
        if (!s.content.includes("backup")) throw dieError(`storage '${s.id}' does not support backups`);
        let keep: KeepOptions;
        try {
          keep = keepFor(s, params["prune-backups"]);
        } catch (e) {
          throw dieError((e as Error).message);
        }
        return markBackups(await listBackups(s), keep, {
          ...(params.vmid !== undefined ? { vmid: Number(params.vmid) } : {}),
          ...(typeof params.type === "string" ? { type: params.type } : {}),
        });
      },
    },
    {
      method: "DELETE",
      path: "/nodes/{node}/storage/{storage}/prunebackups",
      schema: {
        node: stdProps.node,
        storage: stdProps.storage,
        "prune-backups": pruneProp,
        type: { type: "string", enum: ["qemu", "lxc"], optional: true },
        vmid: { ...stdProps.vmid, optional: true },
      },
      handler: ({ user, params }) => {
        // PruneBackups.pm checks inside the handler, after parameter validation
        if (params.vmid !== undefined) {
          sim.access.check(user, `/storage/${params.storage}`, ["Datastore.AllocateSpace"]);
          sim.access.check(user, `/vms/${params.vmid}`, ["VM.Backup"]);
        } else sim.access.check(user, `/storage/${params.storage}`, ["Datastore.Allocate"]);
        const node = String(params.node);
        const s = sim.storageOn(node, String(params.storage));
        const vmid = params.vmid === undefined ? undefined : Number(params.vmid);
        const id = vmid === undefined ? s.id : `${vmid}@${s.id}`;
        return sim.taskRegistry.start(node, "prunebackups", id, user, async (ctx) => {
          if (!s.content.includes("backup"))
            throw new TaskError(`storage '${s.id}' does not support backups`);
          const keep = keepFor(s, params["prune-backups"]);
          const marked = markBackups(await listBackups(s), keep, {
            ...(vmid !== undefined ? { vmid } : {}),
            ...(typeof params.type === "string" ? { type: params.type } : {}),
          });
          if (s.type === "pbs") {
            await prunePbsGroups(s, marked, (line) => ctx.log(line));
            return;
          }
          for (const e of marked.filter((x) => x.mark === "remove")) {
            await ctx.log(`removing backup '${e.volid}'`);
            await removeArchive(s, e.volid);
          }
        }).upid;
      },
    },
  ];
}

/**
 * df of the storage's directory, read on every call as PVE does: pve-storage PVE/API2/Storage/Status.pm
 * `read_status` → PVE/Storage.pm `storage_info` → the plugin's `status` (PVE/Storage/Plugin.pm `status`,
 * PVE::Tools::df of the path, for dir/NFS/CIFS/CephFS/btrfs; no pvestatd cache), so `used` grows while an
 * archive is written. (A PBS's is the datastore's status, PBSPlugin.pm `status`; here its directory's df.)
 */
async function usage(
  s: Storage,
  from: "df" | "files",
): Promise<{ total: number; used: number; avail: number }> {
  const st = await statfs(s.path);
  const total = st.blocks * st.bsize;
  const avail = st.bavail * st.bsize;
  return { total, used: from === "files" ? await bytesIn(s.path) : total - st.bfree * st.bsize, avail };
}

/** The sizes of the files under `dir` (a file removed while counted counts 0). */
async function bytesIn(dir: string): Promise<number> {
  let sum = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    sum += await stat(join(e.parentPath, e.name)).then(
      (x) => x.size,
      () => 0,
    );
  }
  return sum;
}
