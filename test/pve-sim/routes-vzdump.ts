import { join } from "node:path";
import type { Route } from "./api-server.ts";
import type { Compression } from "./archive.ts";
import { readArchiveMember } from "./archive.ts";
import { parseBackupVolid } from "./backup-files.ts";
import { dieError, paramError } from "./http-error.ts";
import { parseKeep } from "./prune.ts";
import { formats, type ParamSchema, type PropSchema, stdProps } from "./schema.ts";
import type { PveSimulator } from "./simulator.ts";
import { assertBackupAccess, backupOwner } from "./volume-access.ts";
import { vzdumpWorker } from "./vzdump-task.ts";

const opt = (p: PropSchema): PropSchema => ({ ...p, optional: true });

/** pve-guest-common VZDump/Common.pm `$confdesc` (the keys a client can send through the API). */
const VZDUMP_SCHEMA: ParamSchema = {
  node: stdProps.node,
  vmid: opt({ type: "string", format: formats.vmidList }),
  all: opt({ type: "boolean" }),
  exclude: opt({ type: "string", format: formats.vmidList }),
  pool: opt({ type: "string" }),
  stop: opt({ type: "boolean" }),
  storage: opt(stdProps.storage),
  mode: opt({ type: "string", enum: ["snapshot", "suspend", "stop"] }),
  compress: opt({ type: "string", enum: ["0", "1", "gzip", "lzo", "zstd"] }),
  zstd: opt({ type: "integer", minimum: 0 }),
  pigz: opt({ type: "integer", minimum: 0 }),
  "notes-template": opt({ type: "string", maxLength: 1024, requires: "storage" }),
  protected: opt({ type: "boolean", requires: "storage" }),
  remove: opt({ type: "boolean" }),
  "prune-backups": opt({
    type: "string",
    format: (v) => {
      const k = parseKeep(v);
      return typeof k === "string" ? k.replace(/^invalid format - /, "").replace(/\n$/, "") : undefined;
    },
  }),
  bwlimit: opt({ type: "integer", minimum: 0 }),
  ionice: opt({ type: "integer", minimum: 0, maximum: 8 }),
  performance: opt({ type: "string" }),
  fleecing: opt({ type: "string" }),
  lockwait: opt({ type: "integer", minimum: 0 }),
  stopwait: opt({ type: "integer", minimum: 0 }),
  "exclude-path": opt({ type: "string" }),
  stdexcludes: opt({ type: "boolean" }),
  mailnotification: opt({ type: "string", enum: ["always", "failure"] }),
  mailto: opt({ type: "string" }),
  "notification-mode": opt({ type: "string", enum: ["auto", "legacy-sendmail", "notification-system"] }),
  "pbs-change-detection-mode": opt({ type: "string", enum: ["legacy", "data", "metadata"] }),
  tmpdir: opt({ type: "string" }),
  dumpdir: opt({ type: "string" }),
  script: opt({ type: "string" }),
  "job-id": opt({ type: "string" }),
  quiet: opt({ type: "boolean" }),
  stdout: opt({ type: "boolean" }),
};

/** VZDump.pm `$verify_notes_template`. */
export function verifyNotesTemplate(t: string): string | undefined {
  if (t.includes("\n")) return "contains a line feed";
  const problems: string[] = [];
  for (const m of t.matchAll(/\\(.)/g))
    if (!/^[n\\]$/.test(m[1] as string)) problems.push(`escape sequence '\\${m[1]}'`);
  for (const m of t.matchAll(/\{\{([^\s{}]+)\}\}/g))
    if (!["cluster", "guestname", "node", "vmid"].includes(m[1] as string))
      problems.push(`variable '${m[1]}'`);
  return problems.length ? `found unknown: ${problems.join(", ")}` : undefined;
}

/** PVE::Tools::shellquote */
function shellquote(v: string): string {
  return /^[-\w.,/:=@%+]+$/.test(v) ? v : `'${v.replace(/'/g, `'"'"'`)}'`;
}

/** VZDump/Common.pm `command_line`: vmids first, then `--key value` in parameter order. */
function commandLine(raw: Record<string, string>): string {
  let cmd = "vzdump";
  if (raw.vmid) cmd += ` ${raw.vmid.split(/[,;\s]+/).join(" ")}`;
  for (const [k, v] of Object.entries(raw)) {
    if (k === "vmid" || k === "stdout") continue;
    cmd += ` --${k} ${shellquote(v)}`;
  }
  return cmd;
}

export function vzdumpRoutes(sim: PveSimulator): Route[] {
  return [
    {
      method: "GET",
      path: "/nodes/{node}/vzdump/defaults",
      schema: { node: stdProps.node, storage: opt(stdProps.storage) },
      handler: ({ user, params }) => {
        // API2/VZDump.pm `defaults`: the check is inside the handler, on the storage or `local`
        const node = String(params.node);
        sim.assertNode(node);
        const storageId = String(params.storage ?? "local");
        sim.access.checkAny(user, `/storage/${storageId}`, ["Datastore.Audit", "Datastore.AllocateSpace"]);
        const s = sim.storages.get(storageId);
        if (!s) throw dieError(`storage '${storageId}' does not exist`);
        const defaults: Record<string, unknown> = {
          mode: "snapshot",
          compress: "0",
          ionice: 7,
          lockwait: 180,
          stopwait: 10,
          remove: 1,
          stdexcludes: 1,
          "prune-backups": s.pruneBackups ?? "keep-all=1",
          storage: storageId,
          dumpdir: join(s.path, "dump"),
        };
        if (!sim.access.has(user, `/nodes/${node}`, "Sys.Audit"))
          for (const k of ["mailto", "tmpdir", "dumpdir", "script", "ionice"]) delete defaults[k];
        return defaults;
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/vzdump/extractconfig",
      schema: { node: stdProps.node, volume: { type: "string" } },
      handler: async ({ user, params }) => {
        const node = String(params.node);
        const volid = String(params.volume);
        const parsed = parseBackupVolid(volid);
        if (!parsed) throw dieError(`unable to parse volume ID '${volid}'`);
        const s = sim.storageOn(node, parsed.storage);
        assertBackupAccess(sim.access, user, s.id, backupOwner(parsed.file));
        return readArchiveMember(join(s.path, "dump", parsed.file), "./etc/vzdump/pct.conf");
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/vzdump",
      schema: VZDUMP_SCHEMA,
      handler: ({ user, params }) => {
        const node = String(params.node);
        const raw: Record<string, string> = {};
        for (const [k, v] of Object.entries(params)) if (v !== undefined && k !== "node") raw[k] = String(v);
        raw.node = node;
        if (params.stdout)
          throw paramError({ stdout: "option is only allowed on the command line interface." });
        // assert_param_permission_common + assert_param_permission_vzdump (root@pam only skips them; a root token does not)
        if (user !== "root@pam") {
          for (const key of ["tmpdir", "dumpdir", "script", "job-id"])
            if (raw[key] !== undefined) throw paramError({ [key]: "Only root may set this option." });
          if (["bwlimit", "ionice", "performance"].some((k) => raw[k] !== undefined))
            sim.access.check(user, "/", ["Sys.Modify"]);
          const fleecingStorage = /(?:^|,)storage=([^,]+)/.exec(raw.fleecing ?? "")?.[1];
          if (fleecingStorage)
            sim.access.check(user, `/storage/${fleecingStorage}`, ["Datastore.AllocateSpace"]);
          if (raw["prune-backups"] !== undefined)
            sim.access.check(user, `/storage/${raw.storage ?? "local"}`, ["Datastore.Allocate"]);
          if (params.stop) sim.access.check(user, `/nodes/${node}`, ["Sys.Modify"]);
        }
        // verify_vzdump_parameters
        for (const k of ["all", "exclude", "pool"])
          if (raw[k] !== undefined && params[k] !== 0 && raw.vmid)
            throw paramError({ [k]: "option conflicts with option 'vmid'" });
        if (!(params.all || params.stop || raw.pool) && !raw.vmid)
          throw paramError({ vmid: "property is missing" });
        if (raw["notes-template"] !== undefined) {
          const err = verifyNotesTemplate(raw["notes-template"]);
          if (err) throw paramError({ "notes-template": `${err}\n` });
        }
        sim.assertNode(node);
        // get_included_guests: vmids on other nodes are dropped, unknown ones kept ("orphaned")
        const all = Boolean(params.all) || (raw.exclude !== undefined && !raw.pool);
        const excluded = new Set(
          (raw.exclude ?? "")
            .split(/[,;\s]+/)
            .filter(Boolean)
            .map(Number),
        );
        const requested = all
          ? [...sim.guests.values()].map((g) => g.vmid).filter((v) => !excluded.has(v))
          : (raw.vmid ?? "")
              .split(/[,;\s]+/)
              .filter(Boolean)
              .map(Number);
        const local: number[] = [];
        const skip: number[] = [];
        for (const vmid of [...new Set(requested)].sort((a, b) => a - b)) {
          const g = sim.guests.get(vmid);
          if (g && g.node !== node) skip.push(vmid);
          else local.push(vmid);
        }
        if (params.stop) {
          for (const t of sim.taskRegistry.all)
            if (t.type === "vzdump" && t.node === node && t.running) sim.taskRegistry.stop(t.upid);
          if (local.length === 0) return "OK";
        }
        if (local.length === 0 && !all) return "OK";
        const storageId = raw.storage ?? "local";
        sim.access.check(user, `/storage/${storageId}`, ["Datastore.AllocateSpace"]);
        const compressRaw = raw.compress ?? "0";
        const compression: Compression | "lzo" =
          compressRaw === "0"
            ? "none"
            : compressRaw === "1" || compressRaw === "lzo"
              ? "lzo"
              : (compressRaw as Compression);
        const keep = raw["prune-backups"] !== undefined ? parseKeep(raw["prune-backups"]) : undefined;
        const zstd = params.zstd === undefined ? 1 : Number(params.zstd);
        const worker = vzdumpWorker(sim, {
          node,
          vmids: local,
          skiplist: skip,
          all,
          storageId,
          mode: (raw.mode ?? "snapshot") as "snapshot" | "stop" | "suspend",
          compression,
          zstdThreads: zstd === 0 ? 1 : zstd,
          ionice: params.ionice === undefined ? 7 : Number(params.ionice),
          ...(params.bwlimit ? { bwlimit: Number(params.bwlimit) } : {}),
          lockwait: params.lockwait === undefined ? 180 : Number(params.lockwait),
          ...(raw["notes-template"] ? { notesTemplate: raw["notes-template"] } : {}),
          protected: Boolean(params.protected),
          remove: params.remove === undefined ? true : Boolean(params.remove),
          ...(keep && typeof keep !== "string" ? { pruneBackups: keep } : {}),
          ...(raw["notification-mode"] ? { notificationMode: raw["notification-mode"] } : {}),
          ...(raw.mailnotification ? { mailnotification: raw.mailnotification } : {}),
          ...(raw.mailto ? { mailto: raw.mailto.split(/[,;\s]+/).filter(Boolean) } : {}),
          cmdline: commandLine(raw),
          user,
        });
        return sim.taskRegistry.start(
          node,
          "vzdump",
          local.length === 1 ? String(local[0]) : "",
          user,
          worker,
        ).upid;
      },
    },
  ];
}
