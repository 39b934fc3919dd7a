import { z } from "zod";
import { isUpid } from "./upid.ts";

/**
 * Shapes of the PVE answers the agent reads. Unknown fields are dropped (PVE adds fields between
 * versions); numbers are coerced because some PVE handlers hand back Perl strings for integers.
 */
const num = z.coerce.number();
const flag = z.union([z.boolean(), z.coerce.number()]).transform((v) => v === true || v === 1);

export const upidSchema = z.string().refine(isUpid, "not a UPID");

export const versionSchema = z.object({
  version: z.string(),
  release: z.string(),
  repoid: z.string().optional(),
});
export type PveVersion = z.infer<typeof versionSchema>;

export const clusterVmSchema = z.object({
  id: z.string(),
  vmid: num,
  node: z.string(),
  type: z.string(),
  status: z.string().optional(),
  name: z.string().optional(),
  uptime: num.optional(),
  lock: z.string().optional(),
  tags: z.string().optional(),
  template: flag.optional(),
});
export type ClusterVm = z.infer<typeof clusterVmSchema>;

export const lxcStatusSchema = z.object({
  vmid: num,
  status: z.string(),
  name: z.string().optional(),
  pid: num.optional(),
  uptime: num.optional(),
  lock: z.string().optional(),
  tags: z.string().optional(),
  template: flag.optional(),
  maxdisk: num.optional(),
  disk: num.optional(),
});
export type LxcStatus = z.infer<typeof lxcStatusSchema>;

// The config is open-ended (mpN, unusedN, lxc.* …): keep every key.
export const lxcConfigSchema = z.looseObject({
  hostname: z.string().optional(),
  lock: z.string().optional(),
  digest: z.string().optional(),
  rootfs: z.string().optional(),
  unprivileged: flag.optional(),
  features: z.string().optional(),
});

export const taskStatusSchema = z.object({
  upid: z.string(),
  node: z.string(),
  pid: num,
  pstart: num,
  starttime: num,
  type: z.string(),
  id: z.string(),
  user: z.string(),
  tokenid: z.string().optional(),
  status: z.enum(["running", "stopped"]),
  exitstatus: z.string().optional(),
});
export type TaskStatus = z.infer<typeof taskStatusSchema>;

export const taskLogSchema = z.array(z.object({ n: num, t: z.string() }));

export const taskListItemSchema = z.object({
  upid: z.string(),
  node: z.string(),
  starttime: num,
  type: z.string(),
  id: z.string().default(""),
  user: z.string(),
  tokenid: z.string().optional(),
  endtime: num.optional(),
  status: z.string().optional(),
});
export type TaskListItem = z.infer<typeof taskListItemSchema>;

export const storageStatusSchema = z.object({
  type: z.string().optional(),
  content: z.string().optional(),
  total: num.optional(),
  used: num.optional(),
  avail: num.optional(),
  active: flag.optional(),
  enabled: flag.optional(),
});
export type StorageStatus = z.infer<typeof storageStatusSchema>;

export const backupVolumeSchema = z.object({
  volid: z.string(),
  content: z.string().optional(),
  format: z.string().optional(),
  size: num,
  ctime: num.optional(),
  subtype: z.string().optional(),
  vmid: num.optional(),
  notes: z.string().optional(),
  // PVE sends the integer 1, and only for protected volumes.
  protected: flag.optional().transform((v) => v === true),
});
export type BackupVolume = z.infer<typeof backupVolumeSchema>;

export const pruneItemSchema = z.object({
  volid: z.string(),
  ctime: num.optional(),
  mark: z.string(),
  type: z.string().optional(),
  vmid: num.optional(),
});
export type PruneItem = z.infer<typeof pruneItemSchema>;

export const snapshotSchema = z.object({
  name: z.string(),
  description: z.string().optional(),
  snaptime: num.optional(),
  parent: z.string().optional(),
  snapstate: z.string().optional(),
  running: flag.optional(),
});
export type LxcSnapshot = z.infer<typeof snapshotSchema>;

/** GET .../lxc/{vmid}/feature: `hasFeature` is a perl truth value (1, "" or 0), whatever the schema says. */
export const featureSchema = z.object({
  hasFeature: z
    .union([z.boolean(), z.number(), z.string(), z.null()])
    .transform((v) => Boolean(v) && v !== "0"),
});

export const permissionsSchema = z.record(z.string(), z.record(z.string(), num));
export type Permissions = z.infer<typeof permissionsSchema>;

export const certificateSchema = z.object({
  filename: z.string(),
  fingerprint: z.string().optional(),
  subject: z.string().optional(),
  issuer: z.string().optional(),
  notbefore: num.optional(),
  notafter: num.optional(),
  san: z.array(z.string()).optional(),
});
export type CertificateInfo = z.infer<typeof certificateSchema>;
