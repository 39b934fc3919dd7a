import { z } from "zod";
import { MAX_LOG_LINE_CHARS } from "../limits.ts";

/** Ids chosen by the sender (command ids, ping ids, backup ids): opaque, printable, bounded. */
export const id = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
    "must be 1-128 chars of A-Z a-z 0-9 . _ : - (starting alphanumeric)",
  );

/** Event sequence numbers: per agent, start at 1, never reused. */
export const seq = z.int().min(1);

/** A cumulative position: 0 means "nothing yet". */
export const seqOrZero = z.int().min(0);

/** RFC 3339 timestamps; agents send UTC (`Z`), other hubs may send an offset. */
export const timestamp = z.iso.datetime({ offset: true });

export const shortText = z.string().max(256);
export const message = z.string().max(2_000);
export const logLine = z.string().max(MAX_LOG_LINE_CHARS);
export const logTail = z.array(logLine).max(100);

/** Informative codes that may grow without a protocol bump (agent error codes, identity signals). */
export const openCode = z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/, "must be a lower-case code");

export const vmid = z.int().min(100).max(999_999_999);
export const nodeName = z.string().min(1).max(64);
export const hostname = z.string().min(1).max(253);
export const stackName = z.string().min(1).max(128);
export const serviceName = z.string().min(1).max(128);

/**
 * PVE `pve-snapshot-name`, minus the names PVE reserves ("current", "vzdump"). Lower-case only, as we
 * create them. The reservation is in the pattern (a lookahead), so the JSON Schema carries it too.
 */
export const snapshotName = z
  .string()
  .min(2)
  .max(40)
  .regex(
    /^(?!(?:current|vzdump)$)[a-z][a-z0-9_-]+$/,
    "must match ^[a-z][a-z0-9_-]+$ and not be current or vzdump",
  );

export const backupMode = z.enum(["snapshot", "stop"]);
export const identityState = z.enum(["verified", "unverified", "restored-copy"]);
export const quiesceStrategy = z.enum(["stop", "pause", "exec", "none"]);
export const consistency = z.enum(["app", "crash"]);

/** JSON scalars only, so `details` cannot smuggle structures (or depth) past the schema. */
export const details = z.record(
  z.string().max(64),
  z.union([z.string().max(1_000), z.number(), z.boolean(), z.null()]),
);

/** PVE ids as PVE prints them. */
export const upid = z
  .string()
  .regex(/^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[^:]+:[^:]*:[^:]+:$/, "must be a PVE UPID");
export const volid = z
  .string()
  .min(3)
  .max(512)
  .regex(/^[^:\s]+:\S/, "must be a PVE volid <storage>:<volume>");

export const stackOutcome = z.object({
  project: stackName,
  outcome: z.enum(["started", "already-running", "failed", "skipped"]),
  message: message.optional(),
});
