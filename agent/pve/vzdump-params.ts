import { AgentError } from "../lib/errors.ts";
import { notesTemplateProblem } from "./notes-template.ts";

/**
 * The only vzdump parameters the agent may send. The role (VM.Backup + Datastore.AllocateSpace) cannot
 * set ionice/bwlimit/performance (Sys.Modify on /), prune-backups (Datastore.Allocate), and
 * tmpdir/dumpdir/script/job-id are root-only; sending them fails the POST, so they are refused here at
 * the type level (`never`) and again at run time for values built without the type.
 */
export interface VzdumpRequest {
  vmid: number;
  /** Always sent: without it PVE checks /storage/local, and the role has no rights there. */
  storage: string;
  mode?: "snapshot" | "suspend" | "stop";
  compress?: "0" | "1" | "gzip" | "lzo" | "zstd";
  /** Minutes to wait for the per-node global vzdump lock. */
  lockwait?: number;
  notesTemplate?: string;
  protected?: boolean;
  /** Prune by the storage's own retention after the backup (PVE default: true). */
  remove?: boolean;
  /** How PVE tells its admin about the job (VZDump.pm `send_notification`); not privilege-checked. */
  notificationMode?: "auto" | "legacy-sendmail" | "notification-system";
  /** With legacy mail: mail on every job end, or on failures only. */
  mailNotification?: "always" | "failure";
  ionice?: never;
  bwlimit?: never;
  performance?: never;
  "prune-backups"?: never;
  pruneBackups?: never;
  tmpdir?: never;
  dumpdir?: never;
  script?: never;
  "job-id"?: never;
  all?: never;
  exclude?: never;
  pool?: never;
  stop?: never;
}

const ALLOWED = new Set([
  "vmid",
  "storage",
  "mode",
  "compress",
  "lockwait",
  "notesTemplate",
  "protected",
  "remove",
  "notificationMode",
  "mailNotification",
]);
const MODES = new Set(["snapshot", "suspend", "stop"]);
const NOTIFICATION_MODES = new Set(["auto", "legacy-sendmail", "notification-system"]);
const COMPRESS = new Set(["0", "1", "gzip", "lzo", "zstd"]);
// pve-storage-id: `[a-z][a-z0-9\-_.]*[a-z0-9]`, case-insensitive.
const STORAGE_ID_RE = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;

function refuse(message: string): never {
  throw new AgentError("pve_vzdump_param_refused", message, {
    hint: "the agent only sends vmid, storage, mode, compress, lockwait, notes-template, protected, remove, notification-mode and mailnotification",
  });
}

export function isValidVmid(vmid: number): boolean {
  return Number.isInteger(vmid) && vmid >= 100 && vmid <= 999_999_999;
}

export function isValidStorageId(storage: string): boolean {
  return STORAGE_ID_RE.test(storage);
}

/** The form body of POST /nodes/{node}/vzdump, after checking every value as PVE would. */
export function buildVzdumpParams(request: VzdumpRequest): Record<string, string> {
  const extra = Object.keys(request).filter((k) => !ALLOWED.has(k));
  if (extra.length > 0) refuse(`vzdump parameters not allowed for the agent: ${extra.join(", ")}`);
  if (!isValidVmid(request.vmid))
    refuse(`vzdump vmid must be an integer 100..999999999, got ${request.vmid}`);
  if (typeof request.storage !== "string" || !isValidStorageId(request.storage)) {
    refuse(`vzdump storage must be a PVE storage id, got ${JSON.stringify(request.storage)}`);
  }
  const params: Record<string, string> = { vmid: String(request.vmid), storage: request.storage };
  if (request.mode !== undefined) {
    if (!MODES.has(request.mode))
      refuse(`vzdump mode must be snapshot, suspend or stop, got ${request.mode}`);
    params.mode = request.mode;
  }
  if (request.compress !== undefined) {
    if (!COMPRESS.has(request.compress))
      refuse(`vzdump compress must be 0, 1, gzip, lzo or zstd, got ${request.compress}`);
    params.compress = request.compress;
  }
  if (request.lockwait !== undefined) {
    if (!Number.isInteger(request.lockwait) || request.lockwait < 0) {
      refuse(`vzdump lockwait must be a non-negative integer (minutes), got ${request.lockwait}`);
    }
    params.lockwait = String(request.lockwait);
  }
  if (request.notesTemplate !== undefined) {
    const problem = notesTemplateProblem(request.notesTemplate);
    if (problem) refuse(`vzdump notes-template ${problem}`);
    params["notes-template"] = request.notesTemplate;
  }
  if (request.protected !== undefined) params.protected = request.protected ? "1" : "0";
  if (request.remove !== undefined) params.remove = request.remove ? "1" : "0";
  if (request.notificationMode !== undefined) {
    if (!NOTIFICATION_MODES.has(request.notificationMode))
      refuse(
        `vzdump notification-mode must be auto, legacy-sendmail or notification-system, got ${request.notificationMode}`,
      );
    params["notification-mode"] = request.notificationMode;
  }
  if (request.mailNotification !== undefined) {
    if (request.mailNotification !== "always" && request.mailNotification !== "failure")
      refuse(`vzdump mailnotification must be always or failure, got ${request.mailNotification}`);
    params.mailnotification = request.mailNotification;
  }
  return params;
}
