import { z } from "zod";
import {
  backupMode,
  hostname,
  id,
  identityState,
  nodeName,
  quiesceStrategy,
  seqOrZero,
  serviceName,
  shortText,
  stackName,
  timestamp,
  vmid,
  volid,
} from "./common.ts";

export const identity = z.object({
  state: identityState,
  /**
   * The CT the identity check is about, whatever its verdict (a mismatch names the CT it compared with; a
   * restored copy, its original); null only when no CT was found (PVE unreachable, the token sees none).
   */
  vmid: vmid.nullable(),
  node: nodeName.nullable(),
  /** This system's own hostname (the one compared with the CT config's), never PVE's name for the CT. */
  hostname,
});

const serviceStatus = z.object({
  name: serviceName,
  state: z.enum(["created", "running", "paused", "restarting", "removing", "exited", "dead", "missing"]),
  quiesce: quiesceStrategy,
});

const stackStatus = z.object({
  project: stackName,
  state: z.enum(["running", "partial", "stopped", "unknown"]),
  services: z.array(serviceStatus).max(256),
});

const lastBackup = z.object({
  backupId: id,
  mode: backupMode,
  ok: z.boolean(),
  finishedAt: timestamp,
  volid: volid.nullable(),
  sizeBytes: z.int().min(0).nullable(),
  downtimeMs: z.int().min(0).nullable(),
});

/** The same body serves the periodic `status` event and the `status.get` result. */
export const statusBody = z.object({
  identity,
  agentVersion: shortText,
  uptimeSeconds: z.int().min(0),
  stacks: z.array(stackStatus).max(256),
  lastBackup: lastBackup.nullable(),
  nextScheduledRun: timestamp.nullable(),
  /** Events persisted but not yet acknowledged. */
  outboxDepth: z.int().min(0),
  /** Highest seq the agent has assigned so far (0 if none). */
  lastSeq: seqOrZero,
  runningOperation: z
    .object({ kind: z.enum(["backup", "snapshot.create", "snapshot.delete", "stacks.up", "restore"]), id })
    .nullable(),
});
